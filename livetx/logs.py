"""Structured logs: one JSON object per line, with the request id of the request being served.

The request id lives in a context variable set by the error middleware, so every record
logged while serving a request carries it, whatever module logs it. Records never carry
query strings, tokens or keys: the access log writes the path only.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetx_request_id", default=None)

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
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
        # ASCII only: client-chosen paths may hold U+2028, \x85 and the like, which some line
        # readers (Python's str.splitlines among them) take for line breaks
        return json.dumps(entry, ensure_ascii=True)


class LineFormatter(logging.Formatter):
    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return self.inner.format(record) + "\n"


def configure(fmt: str = "json", level: int = logging.INFO) -> None:
    """Root logging for `livetx serve`: JSON lines (the default) or plain text."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    # one write per record, newline included: worker processes (FFmpeg's own messages) share
    # the stream, and two writes per line let their output land between a line and its newline
    handler.terminator = ""
    if fmt == "json":
        handler.setFormatter(LineFormatter(JsonFormatter()))
    else:
        handler.setFormatter(LineFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
