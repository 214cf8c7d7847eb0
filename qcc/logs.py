"""Logging for a running proxy: one line per event, to stderr (foreground) and a rotating file.

The file is ``proxy.log`` in the log directory, mode 0600 in a 0700 directory; at
``MAX_BYTES`` (10 MiB) it becomes ``proxy.log.1`` and older files shift up to
``proxy.log.{BACKUPS}`` (3), so the logs never take more than about 40 MiB.

The proxy logs one line per request, so the handler is built for the hot path: the line is
formatted once (with a timestamp cached per second), appended to a buffer, and written out by a
small flusher thread every ``FLUSH_EVERY`` seconds, at once for warnings and errors, and at
close. Rotation is decided from a byte count kept in memory, not a ``stat`` per line.

No secret and no request body is ever logged: the forwarder logs names, statuses and timings only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from qcc.paths import log_dir, private_dir, state_dir

LOG_FILE_NAME = "proxy.log"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 3
FLUSH_EVERY = 0.25


def log_file() -> Path:
    return log_dir() / LOG_FILE_NAME


class LineHandler(logging.Handler):
    """Buffered ``time level logger message`` lines to a rotating file and, optionally, stderr."""

    def __init__(self, path: Path | None, stream: TextIO | None) -> None:
        super().__init__()
        self.path = path
        self.stream = stream
        self._file: TextIO | None = None
        self._size = 0
        # Appended to by any thread, drained by flush(): deque's append and popleft are atomic,
        # so a line added while a flush is under way waits for the next one, never lost.
        self._buffer: deque[str] = deque()
        self._stamp = (-1, "")  # (second, its formatted time): one tuple, so threads agree
        self._stop = threading.Event()
        if path is not None:
            self._open()
        self._flusher = threading.Thread(target=self._flush_loop, name="qcc-log", daemon=True)
        self._flusher.start()

    def _open(self) -> None:
        assert self.path is not None
        private_dir(self.path.parent, tighten=True)
        # 0600 from the first byte (request lines name accounts and clients); a file left
        # looser by an older qcc is tightened.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if hasattr(os, "fchmod") and os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        self._file = open(fd, "a", encoding="utf-8")  # noqa: SIM115 - owned until close
        self._size = self._file.tell()

    def _timestamp(self, created: float) -> str:
        second = int(created)
        cached, stamp = self._stamp
        if second != cached:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._stamp = (second, stamp)
        return f"{stamp},{int((created - second) * 1000):03d}"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            line = f"{self._timestamp(record.created)} {record.levelname} {record.name} {message}\n"
        except Exception:
            self.handleError(record)
            return
        self._buffer.append(line)
        if record.levelno >= logging.WARNING or len(self._buffer) >= 256:
            self.flush()

    def line(self, name: str, message: str) -> None:
        """The hot path's shortcut: an INFO line without building a LogRecord."""
        now = time.time()
        self._buffer.append(f"{self._timestamp(now)} INFO {name} {message}\n")
        if len(self._buffer) >= 256:
            self.flush()

    def flush(self) -> None:
        with self.lock if self.lock else contextlib.nullcontext():
            buffer = self._buffer
            if not buffer:
                return
            text = "".join([buffer.popleft() for _ in range(len(buffer))])
            if self.stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.stream.write(text)
                    self.stream.flush()
            if self._file is not None:
                try:
                    self._file.write(text)
                    self._file.flush()
                    self._size += len(text)
                    if self._size >= MAX_BYTES:
                        self._rotate()
                except OSError:
                    pass

    def _rotate(self) -> None:
        assert self._file is not None and self.path is not None
        self._file.close()
        for i in range(BACKUPS - 1, 0, -1):
            source = self.path.with_name(f"{self.path.name}.{i}")
            if source.exists():
                os.replace(source, self.path.with_name(f"{self.path.name}.{i + 1}"))
                with contextlib.suppress(OSError):  # one written by an older, looser qcc
                    os.chmod(self.path.with_name(f"{self.path.name}.{i + 1}"), 0o600)
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._open()

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


def setup(*, to_stderr: bool, level: int = logging.INFO) -> Path | None:
    """Configure the ``qcc`` loggers; returns the log file path (None if it cannot be opened)."""
    root = logging.getLogger("qcc")
    root.setLevel(level)
    root.propagate = False
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    path: Path | None = log_file()
    try:
        private_dir(state_dir(), tighten=True)  # pid record, usage, backups: ours alone
        handler = LineHandler(path, sys.stderr if to_stderr else None)
    except OSError:
        path = None
        handler = LineHandler(None, sys.stderr if to_stderr else None)
    root.addHandler(handler)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return path


def access_writer(name: str = "qcc.access") -> Callable[[str], None]:
    """How the forwarder writes its one line per request.

    With the proxy's :class:`LineHandler` in place, lines go straight into its buffer; otherwise
    (tests, embedding) through the ``logging`` module like everything else.
    """
    logger = logging.getLogger(name)
    handlers = logging.getLogger("qcc").handlers
    direct = [h for h in handlers if isinstance(h, LineHandler)]
    if len(direct) == len(handlers) == 1 and logger.isEnabledFor(logging.INFO):
        handler = direct[0]
        return lambda message: handler.line(name, message)
    return logger.info


def shutdown() -> None:
    """Flush and close the ``qcc`` handlers (the proxy calls this on exit)."""
    root = logging.getLogger("qcc")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
