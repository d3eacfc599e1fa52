"""Request bodies: strict JSON, bounded before it is parsed.

Python's `json` module accepts more than JSON and fails in ways a client can choose: `NaN`
and `Infinity` (not JSON), `1e400` (a float that becomes inf), a 5000-digit integer (over
Python's int-digits limit: ValueError), 100,000 nested arrays (RecursionError) and `"\\ud800"`
(a lone surrogate that breaks later encoding). Each of these is a 400 here, naming the
problem, before anything reads the body's values.

Forms (the OSS-style API) are parsed by aiohttp; what it raises on a malformed one (no
boundary, a field without a name, an unknown charset, bytes that aren't UTF-8, a body cut
short) is a 400 too.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from livetx.errors import BodyTooLarge, ParameterError

MAX_BODY = 16 * 1024  # bytes of a JSON (or form) body
MAX_DEPTH = 32  # nested objects and arrays
MAX_INT_DIGITS = 32  # digits of an integer: beyond any 64-bit value, far below Python's limit

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string, escapes included
_BRACKETS = frozenset("[]{}")
_LONG_NUMBER = re.compile(f"[0-9]{{{MAX_INT_DIGITS + 1}}}")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _refuse(problem: str) -> ParameterError:
    return ParameterError("body", f"a JSON object ({problem})")


def _too_deep(outside_strings: str) -> bool:
    """Objects and arrays nested deeper than MAX_DEPTH (in JSON text whose strings are taken
    out). Cheap on a bounded body, and run before the recursive parser: a body with few
    brackets can't be deep; otherwise the scan stops at the first level too deep, or at the
    first unbalanced close (which the parser then names)."""
    if outside_strings.count("[") + outside_strings.count("{") <= MAX_DEPTH:
        return False
    # every other character deleted (str.translate: C speed, where a regex would be slow here)
    brackets = outside_strings.translate(dict.fromkeys(map(ord, set(outside_strings) - _BRACKETS)))
    depth = 0
    for char in brackets:
        depth += 1 if char in "[{" else -1
        if depth > MAX_DEPTH:
            return True
        if depth < 0:
            return False  # unbalanced: the parser names it
    return False


def _constant(name: str) -> Any:
    raise _refuse(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _refuse(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


def _check_strings(value: Any) -> None:
    """Every string (keys too) must be encodable: `\\ud800` escapes parse into lone surrogates."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _refuse("a string holds a lone UTF-16 surrogate") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse_json(raw: bytes) -> Any:
    """Strict JSON from at most MAX_BODY bytes of UTF-8; ParameterError naming the problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("the body is not UTF-8") from None
    outside_strings = _STRING.sub('""', text)
    if _too_deep(outside_strings):
        raise _refuse(f"nested deeper than {MAX_DEPTH} levels")
    if _LONG_NUMBER.search(outside_strings):  # Python's int() refuses beyond 4300 digits (ValueError)
        raise _refuse(f"a number has more than {MAX_INT_DIGITS} digits")
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float)
    except json.JSONDecodeError as exc:
        raise _refuse(f"the body is not valid JSON: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError):  # belt and braces: the bounds above should rule these out
        raise _refuse("the body is not valid JSON") from None
    if _SURROGATE_ESCAPE.search(text):  # only then can a string hold a lone surrogate
        _check_strings(value)
    return value


async def json_body(request: web.Request) -> Any:
    """The request's JSON body: at most MAX_BODY bytes (413 beyond), strict (400 otherwise)."""
    too_large = BodyTooLarge("body", f"a JSON object of at most {MAX_BODY} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    # read until the end: one read() may return only what has arrived so far
    while chunk := await request.content.read(MAX_BODY + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
    return parse_json(b"".join(chunks))


async def form_body(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The request's form (urlencoded or multipart): at most MAX_BODY bytes, 400 when malformed."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLarge("body", f"a form of at most {MAX_BODY} bytes")
    try:
        return await request.post()
    except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError; LookupError: a charset
        raise ParameterError("body", "a well-formed form (application/x-www-form-urlencoded or multipart/form-data)") from None
