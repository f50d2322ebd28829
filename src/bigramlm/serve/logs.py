"""The desk's log lines: one format for bigramlm's lines and uvicorn's, plain text or JSON.

Configuring logging is the application's business, not a library's: ``bigramlm serve``
calls ``configure_logging`` (``--log-format``), and ``serve.server.serve`` leaves the
logging of a program that embeds it as that program set it. uvicorn is started without a
logging configuration of its own, so its lines go through the same handler.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Attributes a log call may add (``extra=``) that a JSON line carries as fields.
JSON_FIELDS = ("request_id", "status")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the
    request's id and status where the line has them."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update({k: getattr(record, k) for k in JSON_FIELDS if hasattr(record, k)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every logger's lines (bigramlm's, uvicorn's) to ``stream`` (stderr) in one format."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "bigramlm"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)  # the root's level decides
