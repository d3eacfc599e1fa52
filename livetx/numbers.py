"""Numbers from outside (API bodies, OSS process strings, query values), parsed safely.

Every numeric field is matched against a strict pattern before anything converts it:
Python's own parsers accept far too much (`int(" 1_0 ")`, `float("nan")`, and
`Fraction("1e6000000")`, which builds a six-million-digit integer and holds the event loop
for seconds). A JSON number that arrived as an int or float is checked for being finite and
for its magnitude instead. Anything else raises ValueError; callers turn that into a
ParameterError that names the field.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

MAX_INTEGER_DIGITS = 12  # 10**12: more than any bitrate, duration in ms or size we accept
MAX_MAGNITUDE = 10**MAX_INTEGER_DIGITS
INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,11})")  # no sign but '-', no leading zeros, no '_' or spaces
DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,9})?")  # no exponent
RATIO = re.compile(r"[1-9][0-9]{0,5}/[1-9][0-9]{0,5}")  # a frame rate such as 30000/1001


def integer(raw: Any) -> int:
    """An integer given as a JSON int, an integral finite float, or a string matching INTEGER."""
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer():
            raise ValueError("not an integer")
        value = int(raw)
    elif isinstance(raw, str) and INTEGER.fullmatch(raw):
        value = int(raw)
    else:
        raise ValueError("not an integer")
    if abs(value) >= MAX_MAGNITUDE:
        raise ValueError("out of range")
    return value


def decimal(raw: Any, ratio: bool = False) -> Fraction:
    """An exact number given as a JSON int or finite float, or a string matching DECIMAL (or
    RATIO when `ratio`). Floats are taken at their shortest decimal spelling (29.97, not the
    binary value nearest it)."""
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(raw, int):
        value = Fraction(raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            raise ValueError("not a finite number")
        value = Fraction(repr(raw)) if abs(raw) < MAX_MAGNITUDE else Fraction(MAX_MAGNITUDE)
    elif isinstance(raw, str) and (DECIMAL.fullmatch(raw) or (ratio and RATIO.fullmatch(raw))):
        value = Fraction(raw)
    else:
        raise ValueError("not a number")
    if abs(value) >= MAX_MAGNITUDE:
        raise ValueError("out of range")
    return value
