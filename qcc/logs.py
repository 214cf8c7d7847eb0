"""Logging for a running proxy: one line per event, to stderr (foreground) and a rotating file.

No secret and no request body is ever logged: the forwarder logs names, statuses and timings only.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from qcc.paths import log_dir

LOG_FILE_NAME = "proxy.log"
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def log_file() -> Path:
    return log_dir() / LOG_FILE_NAME


def setup(*, to_stderr: bool, level: int = logging.INFO) -> Path | None:
    """Configure the ``qcc`` loggers; returns the log file path (None if it cannot be opened)."""
    root = logging.getLogger("qcc")
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(FORMAT)
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    path: Path | None = log_file()
    try:
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=10 * 1024 * 1024, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(formatter)
        root.addHandler(handler)
    except OSError:
        path = None
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return path
