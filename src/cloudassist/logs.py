"""The server's log: one stream on stderr, as text or as one JSON object a line (`--log-format json`).

Access lines (logger `cloudassist.access`, level INFO) say one thing each: an ECS API call answered, or an
agent request answered. Their fields travel in the record's `fields` (the JSON format writes them as keys;
the text format has them in the message already). Nothing here ever receives a secret: the API line names
the AccessKeyId and the account, never a parameter value or a signature.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Final

ACCESS: Final = logging.getLogger("cloudassist.access")
FORMATS: Final = ("text", "json")
TEXT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Libraries that log SQL parameters (secrets among them) at DEBUG: never below WARNING.
QUIET: Final = ("aiosqlite", "asyncpg", "sqlalchemy", "alembic", "websockets", "httpx", "httpcore")


#: A secret in a logged URL: the Session Manager WebSocketUrl's `token=` (uvicorn logs each websocket's path).
_URL_SECRET: Final = re.compile(r"(?i)(token=)[^&\s\"']+")


class Redact(logging.Filter):
    """Replace URL secrets (`token=…`) in every record's message before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "oken=" in message:
            record.msg, record.args = _URL_SECRET.sub(r"\1<redacted>", message), None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, then the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str, fmt: str = "text", *, access: bool = True) -> None:
    """Send every log record at `level` or above to stderr in format `fmt`; access lines (INFO) come with the
    rest unless `access` is False."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    handler.addFilter(Redact())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    ACCESS.setLevel(logging.NOTSET if access else logging.CRITICAL + 1)


def access(message: str, *args: object, **fields: object) -> None:
    """One access line: `message % args` as text, `fields` as JSON keys."""
    if ACCESS.isEnabledFor(logging.INFO):
        ACCESS.info(message, *args, extra={"fields": fields})
