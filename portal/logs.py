"""Logging: one line per event, as JSON (`LOG_FORMAT=json`) for a log collector,
or as readable `key=value` text otherwise.

Code logs with the standard library and puts the event's facts in `extra`:

    log.info("request", extra={"request_id": rid, "status": 200, "duration_ms": 3.1})

Both formats write the message and every `extra` field; an exception's
traceback goes into the same line (`exc`), so one event is one line whatever
collects it. `portal serve` hands `logging_config()` to uvicorn, which applies
it in every web process it starts; `portal worker` calls `configure_logging()`.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_BARE = re.compile(r"[^\s\"=]+")


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(_extra(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-11-23T12:00:00.123Z INFO portal.web.request: request method=GET status=200 …`;
    values with spaces, quotes or newlines are quoted with escapes, so a
    traceback stays on its event's line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _extra(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        message = record.getMessage().replace("\n", "\\n")
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {message}"
        if fields:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        return line


def log_format() -> str:
    """The LOG_FORMAT setting ("text" or "json", checked when settings are read)."""
    from portal.settings import get_settings

    return get_settings().log_format


def logging_config(fmt: str | None = None, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary (uvicorn takes it as `log_config`)."""
    fmt = fmt or log_format()
    formatter = "portal.logs.JsonFormatter" if fmt == "json" else "portal.logs.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"portal": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "portal", "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # Our request log has the request id, user and duration; uvicorn's
            # access line would say the same thing again, with less.
            "uvicorn.access": {"level": "WARNING"},
            # portal.jobs.retry logs each job's start, end and failure with the
            # job id; arq's own lines repeat them (and print the arguments).
            # Its warnings (a job out of tries, a lost Redis connection) stay.
            "arq.worker": {"level": "WARNING"},
            # Uvicorn configures these with handlers of its own unless told not to.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
        },
    }


def configure_logging(fmt: str | None = None, level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(fmt, level))
    # A library's warning (a deprecation printed at import) is a log line like any
    # other, not bare text in the middle of a JSON log.
    logging.captureWarnings(True)
