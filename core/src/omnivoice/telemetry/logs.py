"""Logging: the call's ids on every record, secrets taken out, text or JSON lines.

Two filters and a formatter, usable in any logging set-up (``logging.config`` included):

- :class:`CallContextFilter` puts ``call_id``, ``carrier_call_id`` and ``stream_id`` on each
  record, from the call the logging code runs in (:mod:`omnivoice.telemetry.context`);
- :class:`RedactingFilter` replaces secrets in the message and its traceback
  (:mod:`omnivoice.telemetry.redact`);
- :class:`JsonFormatter` writes one JSON object per line.

:func:`configure_logging` installs all three on the root logger, as ``omnivoice serve
--log-format json|text`` does.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal, TextIO

from omnivoice.telemetry.context import current_call
from omnivoice.telemetry.redact import redact

__all__ = ["CallContextFilter", "JsonFormatter", "RedactingFilter", "configure_logging"]

LogFormat = Literal["text", "json"]

_IDS = ("call_id", "carrier_call_id", "stream_id")
_TEXT_FORMAT = "%(levelname)s %(name)s%(call)s: %(message)s"
# Attributes every LogRecord has: the rest were passed through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "call",
    *_IDS,
}


class CallContextFilter(logging.Filter):
    """Adds the current call's ids to each record (empty strings outside a call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = current_call()
        if scope is not None:
            record.call_id = scope.call_id
            record.carrier_call_id = scope.carrier_call_id
            record.stream_id = scope.stream_id
            record.call = f" [{scope.call_id}]"
        else:
            for name in _IDS:
                if not hasattr(record, name):
                    setattr(record, name, "")
            record.call = ""
        return True


class RedactingFilter(logging.Filter):
    """Replaces secrets in a record's message and traceback before any handler sees it.

    The message is formatted here (``msg % args``) and the traceback rendered, so that
    nothing of either reaches a formatter unredacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    Keys: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``,
    ``call_id``, ``carrier_call_id`` and ``stream_id`` (when known), ``exception`` (the
    traceback) and every field given through ``extra=``.
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        document: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _IDS:
            value = getattr(record, name, "")
            if value:
                document[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        return json.dumps(document, default=str, ensure_ascii=False)


def configure_logging(
    level: str | int = "INFO", log_format: LogFormat = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Log to ``stream`` (standard error) at ``level``, in ``log_format``, with the call's
    ids and without secrets. Replaces the root logger's handlers; returns the new one."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {log_format!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(CallContextFilter())
    handler.addFilter(RedactingFilter())
    text = logging.Formatter(_TEXT_FORMAT)
    handler.setFormatter(JsonFormatter() if log_format == "json" else text)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
