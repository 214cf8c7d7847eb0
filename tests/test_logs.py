"""The proxy's log handler: one line per record, buffered, flushed, rotated by size."""

from __future__ import annotations

import io
import logging
import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from qcc import logs


def test_lines_reach_file_and_stream_and_rotate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    stream = io.StringIO()
    handler = logs.LineHandler(tmp_path / "proxy.log", stream)
    logger = logging.getLogger("qcc.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info("rid=000001 status=200")
        handler.flush()
        first = (tmp_path / "proxy.log").read_text()
        assert first.endswith(" INFO qcc.test-logs rid=000001 status=200\n")
        assert stream.getvalue() == first
        logger.warning("account a failed")  # warnings are written at once
        assert "WARNING qcc.test-logs account a failed" in (tmp_path / "proxy.log").read_text()
        for i in range(200):
            logger.info("line %d %s", i, "x" * 40)
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert (tmp_path / "proxy.log.1").exists()
    assert (tmp_path / "proxy.log").stat().st_size < 2100
    assert not (tmp_path / f"proxy.log.{logs.BACKUPS + 1}").exists()


def test_flusher_thread_writes_without_more_records(tmp_path: Path) -> None:
    handler = logs.LineHandler(tmp_path / "proxy.log", None)
    logger = logging.getLogger("qcc.test-flusher")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("quiet line")
        import time

        deadline = time.monotonic() + 2
        while "quiet line" not in (tmp_path / "proxy.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_no_line_is_lost_to_a_concurrent_flush() -> None:
    """The event loop appends while the flusher thread drains: every line must come out once."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to hit the window
    stream = io.StringIO()
    handler = logs.LineHandler(None, stream)
    stop = threading.Event()

    def flush_constantly() -> None:
        while not stop.is_set():
            handler.flush()

    flusher = threading.Thread(target=flush_constantly)
    flusher.start()
    try:
        for i in range(30_000):
            handler.line("qcc.access", f"n={i}")
    finally:
        stop.set()
        flusher.join()
        sys.setswitchinterval(previous)
        handler.close()
    lines = stream.getvalue().splitlines()
    assert [line.rsplit("=", 1)[1] for line in lines] == [str(i) for i in range(30_000)]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_log_file_and_its_rotations_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "MAX_BYTES", 500)
    log_dir = tmp_path / "state" / "logs"  # neither exists yet
    old_umask = os.umask(0o022)
    try:
        handler = logs.LineHandler(log_dir / "proxy.log", None)
        try:
            for i in range(60):
                handler.line("qcc.access", f"rid={i:06d} status=200 account=main")
                handler.flush()
        finally:
            handler.close()
    finally:
        os.umask(old_umask)
    assert _mode(tmp_path / "state") == 0o700
    assert _mode(log_dir) == 0o700
    files = sorted(p.name for p in log_dir.iterdir())
    assert files == ["proxy.log", *(f"proxy.log.{i}" for i in range(1, logs.BACKUPS + 1))]
    assert {name: _mode(log_dir / name) for name in files} == dict.fromkeys(files, 0o600)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_loose_files_from_an_older_qcc_are_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QCC_STATE_DIR", str(tmp_path / "state"))
    log_dir = tmp_path / "state" / "logs"
    log_dir.mkdir(parents=True)
    (tmp_path / "state").chmod(0o755)
    log_dir.chmod(0o755)
    (log_dir / "proxy.log").write_text("old line\n")
    (log_dir / "proxy.log").chmod(0o644)
    path = logs.setup(to_stderr=False)
    logs.shutdown()
    assert path == log_dir / "proxy.log"
    assert (_mode(tmp_path / "state"), _mode(log_dir), _mode(path)) == (0o700, 0o700, 0o600)
    assert path.read_text() == "old line\n"  # appended to, never truncated


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
