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

import contextvars
import json
import logging
import re
import time
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetx_request_id", default=None)

_DONE = "livetx_redacted"  # marks a record the filter has rewritten (a record may pass two filters)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", _DONE}


REDACTED = "<redacted>"
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


def redact(text: str) -> str:
    """`text` without query strings, token parameters, credentials or quoted raw bytes."""
    if not _MAYBE_SECRET.search(text):
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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None:
                entry[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted (and redacted) by `Redact`
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        # ASCII only: client-chosen paths may hold U+2028, \x85 and the like, which some line
        # readers (Python's str.splitlines among them) take for line breaks
        return json.dumps(entry, ensure_ascii=True)


class LineFormatter(logging.Formatter):
    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return self.inner.format(record) + "\n"


def configure(fmt: str = "json", level: int = logging.INFO, process: str | None = None) -> None:
    """Root logging for `livetx serve`: JSON lines (the default) or plain text. `process`: one
    of several server processes (its index) or their supervisor; each line says which."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if process is not None:
        handler.addFilter(ProcessFilter(process))
    handler.addFilter(REDACT)
    # one write per record, newline included: worker processes (FFmpeg's own messages) share
    # the stream, and two writes per line let their output land between a line and its newline
    handler.terminator = ""
    if fmt == "json":
        handler.setFormatter(LineFormatter(JsonFormatter()))
    else:
        handler.setFormatter(LineFormatter(TextFormatter(process is not None)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    protect_loggers()
