"""Structured logs: one JSON object per line, with the request id of the request being served.

The request id lives in a context variable set by the error middleware, so every record
logged while serving a request carries it, whatever module logs it. Records never carry
query strings, tokens or keys: the access log writes the path only, and `Redact`, a filter on
the handler (and on aiohttp's own loggers), takes query strings, token parameters, bearer
values and raw request lines out of every record's message, fields and exception text, so a
request that aiohttp's parser refuses (and logs with its raw request line) leaks nothing.

Text lines escape control characters and other line breaks (\\n, \\x85, U+2028...): a client
that puts `%0A` in a URL cannot forge a log line. JSON lines escape them by being JSON.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from aiohttp.http_exceptions import HttpProcessingError

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetx_request_id", default=None)

_DONE = "livetx_redacted"  # marks a record the filter has rewritten (a record may pass two filters)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", _DONE}


REDACTED = "<redacted>"
ACCESS_TEXTS = 4096  # string fields of access lines kept as written (then forgotten all at once)
WRITE_BYTES = 4096  # access lines written at once, at most (whole lines: PIPE_BUF, atomic on a pipe)
TOKEN_NAMES = ("sig", "exp", "nbf", "kid", "scope", "ip", "token")  # URL token parameters and the like
_SECRETS = [
    # a raw request line (or any bytes) as aiohttp's parser quotes it: b'GET /...?sig=... HTTP/1.1'
    (re.compile(r"""\bb'(?:[^'\\\n]|\\.)*'?|\bb"(?:[^"\\\n]|\\.)*"?"""), "b'" + REDACTED + "'"),
    # a query string: everything from "?" to the next space or quote
    (re.compile(r"""\?[^\s'"<>]+"""), "?" + REDACTED),
    # token parameters wherever they stand (a decoded path may hold one)
    (re.compile(r"(?i)\b(" + "|".join(TOKEN_NAMES) + r""")=[^&\s'"<>]*"""), r"\1=" + REDACTED),
    # credentials in headers
    (re.compile(r"(?i)\b(bearer|basic|digest)\s+[^\s'\"]+"), r"\1 " + REDACTED),
    (re.compile(r"(?i)\b(authorization|cookie|x-livetx-origin-auth)(['\"]?\s*[:=,]\s*['\"]?)[^\s'\"]+"), r"\1\2" + REDACTED),
]


# cheap test first: most records (access lines of plain paths) hold nothing to redact
_MAYBE_SECRET = re.compile(r"""[?=]|\bb['"]|(?i:bearer|basic|digest|authorization|cookie|origin-auth)""")
_SECRET_WORDS = re.compile("bearer|basic|digest|authorization|cookie|origin-auth")


def _maybe_secret(text: str) -> bool:
    """True whenever `_MAYBE_SECRET` finds something (and sometimes when it would not). For
    ASCII text by substring tests and a case-sensitive search of the lowered text, several
    times cheaper than the pattern: for ASCII words in ASCII text, that is what ignoring case
    means."""
    if not text.isascii():
        return _MAYBE_SECRET.search(text) is not None
    if "?" in text or "=" in text or "b'" in text or 'b"' in text:
        return True
    return _SECRET_WORDS.search(text.lower()) is not None


def redact(text: str) -> str:
    """`text` without query strings, token parameters, credentials or quoted raw bytes."""
    if not _maybe_secret(text):
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    """Rewrites each record so no token can reach a log line: its message (args merged), its
    string fields and its exception text are redacted. The exceptions of aiohttp's HTTP parser
    quote the raw request line (signature included); they are logged as one summary line."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _DONE, False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not let the raw args through
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if isinstance(exc, HttpProcessingError):
                # the first line of the parser's message names the problem; the rest quotes the request
                first = (exc.message or "").strip().splitlines()[:1]
                record.exc_text = redact(f"{type(exc).__name__}: {exc.code} {''.join(first)}".strip())
            else:
                record.exc_text = redact(self._formatter.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        setattr(record, _DONE, True)
        return True


REDACT = Redact()
SERVER_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.internal", "asyncio")


def protect_loggers() -> None:
    """Redact on aiohttp's own loggers too, for apps embedded without `configure`."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if REDACT not in logger.filters:
            logger.addFilter(REDACT)


# control characters, Unicode line and paragraph separators (NEL \x85 is a C1 control) and
# bidirectional overrides, which could forge or disguise a line of a text log
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


class TextFormatter(logging.Formatter):
    """One line per record: a traceback's line breaks are escaped like a client's."""

    def __init__(self, process: bool = False) -> None:
        where = " [%(proc)s %(pid)s]" if process else ""
        super().__init__(f"%(asctime)s %(levelname)s{where} %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class ProcessFilter(logging.Filter):
    """Marks each record with the server process it comes from (`proc`: its index among the
    processes of `livetx serve`, or "supervisor") and its process id (`pid`)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def filter(self, record: logging.LogRecord) -> bool:
        record.proc = self.process
        record.pid = record.process  # the standard attribute, left out of JSON lines as such
        return True


def _stamp(created: float) -> str:
    """UTC ISO 8601 with milliseconds."""
    second = int(created)
    return f"{_second(second)}.{int((created - second) * 1000):03d}Z"


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:
    """A second's text, made once however many lines are stamped within it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _entry(created: float, level: str, name: str, message: str, fields: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON line's object: time, level, logger and message, then each field that is not None."""
    entry: dict[str, Any] = {"ts": _stamp(created), "level": level, "logger": name, "message": message}
    for key, value in fields:
        if value is not None:
            entry[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return entry


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = ((key, value) for key, value in record.__dict__.items() if key not in _STANDARD)
        entry = _entry(record.created, record.levelname.lower(), record.name, record.getMessage(), fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted (and redacted) by `Redact`
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return _json(entry)


# ASCII only: client-chosen paths may hold U+2028, \x85 and the like, which some line readers
# (Python's str.splitlines among them) take for line breaks
_json = json.JSONEncoder(ensure_ascii=True).encode
_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _scalar(value: object) -> str:
    """A field that is not a string, as `_entry` and `_json` write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    return _json(value if isinstance(value, float) else str(value))


class LineFormatter(logging.Formatter):
    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return self.inner.format(record) + "\n"


class LineHandler(logging.StreamHandler[TextIO]):
    """`configure`'s handler: one line per record, written whole.

    Access lines (one per request) have a way in of their own, `access`, which makes exactly
    the JSON line a record would give (`JsonFormatter`, `Redact`) without the machinery each
    record costs on its way (the caller's frame looked up, the record built, two filters and
    the formatter walking its attributes). `direct` says when it may be used: when a record
    would reach this handler, as configured, and nothing else. On an event loop, the access
    lines of one turn of the loop go out together, in writes of whole lines of at most
    `WRITE_BYTES` (atomic on a pipe, so a worker's output never lands inside a line); any
    other record, `flush` and `close` write them first, so lines keep their order."""

    def __init__(self, fmt: str, process: str | None = None) -> None:
        super().__init__()
        self.json = fmt == "json"
        self.process = process  # one of several server processes, or their supervisor: each line says which
        # one write per record, newline included: worker processes (FFmpeg's own messages) share
        # the stream, and two writes per line let their output land between a line and its newline
        self.terminator = ""
        self.setFormatter(LineFormatter(JsonFormatter() if self.json else TextFormatter(process is not None)))
        self.addFilter(RequestIdFilter())
        if process is not None:
            self.addFilter(ProcessFilter(process))
        self.addFilter(REDACT)
        # the fields `ProcessFilter` adds to a record, as `access` appends them to its line
        self._process_fields = "" if process is None else f', "proc": {_string(process)}, "pid": {os.getpid()}'
        self.configured = (self.formatter, list(self.filters))
        self._pending: list[str] = []  # access lines of this turn of the event loop
        self._texts: dict[tuple[str, str], str] = {}  # (field, string) -> its text in a line
        self._heads: dict[tuple[str | None, str, str], tuple[str, str, str]] = {}  # access lines' repeated parts

    def access(self, name: str, message: str, fields: dict[str, Any]) -> None:
        """The line of an INFO record of logger `name` with `message` and `fields` (its
        `extra`), as `JsonFormatter` would make it after `Redact` (only for JSON lines: see
        `direct`), written at the end of this turn of the event loop."""
        # the text `_json(_entry(...))` gives, piece by piece (a third faster than a dict through
        # the encoder); tests/test_ops.py holds the two lines equal
        parts = ['{"ts": "', _stamp(time.time()), '", "level": "info", "logger": ', _string(name)]
        parts += (', "message": ', _string(redact(message)))
        for key, value in fields.items():
            if isinstance(value, str):  # a path, a method: the same few again and again
                text = self._texts.get((key, value))
                if text is None:
                    if len(self._texts) >= ACCESS_TEXTS:
                        self._texts.clear()
                    text = self._texts[key, value] = f", {_string(key)}: {_string(redact(value))}"
                parts.append(text)
            elif value is not None:
                parts += (", ", _string(key), ": ", _scalar(value))
        parts.append(self._process_fields)
        parts.append("}\n")
        self._add("".join(parts))

    def access_line(
        self, name: str, remote: str | None, method: str, path: str, status: int, seconds: float, size: int, request_id: str | None
    ) -> None:
        """`access` of the record `access_record` makes, with what repeats from request to
        request (the client's address, the method and the path, redacted and escaped) made
        once: the rest of the message is the status and the milliseconds, digits that need
        neither. A head that would need redacting goes the long way."""
        head = self._heads.get((remote, method, path))
        if head is None:
            message_head = f'{remote} "{method} {path}"'
            if _maybe_secret(message_head):  # redact the whole message, as `access` would
                message, fields = access_record(remote, method, path, status, seconds, size, request_id)
                self.access(name, message, fields)
                return
            if len(self._heads) >= ACCESS_TEXTS:
                self._heads.clear()
            head = self._heads[remote, method, path] = (
                _string(name),
                _string(message_head)[:-1],  # the message's opening quote and head; its tail follows
                f'", "event": "access", "method": {_string(method)}, "path": {_string(path)}, "status": ',
            )
        ms = seconds * 1000
        rid = "" if request_id is None else f', "request_id": {_string(redact(request_id))}'
        line = (
            f'{{"ts": "{_stamp(time.time())}", "level": "info", "logger": {head[0]}, "message": {head[1]} {status} {ms:.1f}ms'
            f'{head[2]}{status}, "ms": {round(ms, 1)!r}, "bytes": {size}{rid}{self._process_fields}}}\n'
        )
        self._add(line)

    def _add(self, line: str) -> None:
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.write_pending)
            except RuntimeError:  # no event loop here: at once
                self._pending.append(line)
                self.write_pending()
                return
        self._pending.append(line)

    def write_pending(self) -> None:
        """Write the access lines not written yet, whole lines at most `WRITE_BYTES` a write."""
        if not self._pending:
            return
        self.acquire()
        try:
            lines, self._pending = self._pending, []
            chunk: list[str] = []
            size = 0
            for line in lines:
                if chunk and size + len(line) > WRITE_BYTES:
                    self.stream.write("".join(chunk))
                    self.stream.flush()
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line)
            self.stream.write("".join(chunk))
            self.stream.flush()
        except Exception:  # noqa: BLE001 - as logging's own emit: a broken stream must not break requests
            self.handleError(logging.makeLogRecord({"msg": "access lines not written"}))
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        self.write_pending()  # what came first goes first
        super().emit(record)

    def flush(self) -> None:
        self.write_pending()
        super().flush()


def access_record(
    remote: str | None, method: str, path: str, status: int, seconds: float, size: int, request_id: str | None
) -> tuple[str, dict[str, Any]]:
    """An access line's message and fields (its `extra`): the path only, never the query."""
    message = f'{remote} "{method} {path}" {status} {seconds * 1000:.1f}ms'
    fields = {
        "event": "access",
        "method": method,
        "path": path,
        "status": status,
        "ms": round(seconds * 1000, 1),
        "bytes": size,
        "request_id": request_id,
    }
    return message, fields


def direct(logger: logging.Logger) -> LineHandler | None:
    """The `LineHandler` an INFO record of `logger` would reach, if it is the only handler the
    record would reach, writes JSON, and still has the formatter, filters and level `configure`
    gave it, and the logger filters with nothing but `REDACT`: then `LineHandler.access` writes
    the very line the record would have given. None otherwise (logging configured otherwise,
    or a test capturing records): the record goes the usual way."""
    if logger.disabled or not logger.isEnabledFor(logging.INFO) or any(f is not REDACT for f in logger.filters):
        return None
    found: LineHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None or not isinstance(handler, LineHandler):
                return None
            found = handler
        current = current.parent if current.propagate else None
    if found is None or not found.json or found.level > logging.INFO or (found.formatter, found.filters) != found.configured:
        return None
    return found


def configure(fmt: str = "json", level: int = logging.INFO, process: str | None = None) -> None:
    """Root logging for `livetx serve`: JSON lines (the default) or plain text. `process`: one
    of several server processes (its index) or their supervisor; each line says which."""
    root = logging.getLogger()
    root.handlers[:] = [LineHandler(fmt, process)]
    root.setLevel(level)
    protect_loggers()
