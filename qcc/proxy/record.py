"""The running proxy's record (``proxy.json`` in the state dir) and a small sync client for it.

The foreground server writes the record once it accepts connections and removes it on exit;
``qcc proxy status|stop``, ``qcc health``, ``qcc top`` and ``qcc run`` read it. A record whose
process is gone (killed, machine rebooted) is *stale*: it is detected and cleaned up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qcc.config.store import atomic_write
from qcc.errors import ProxyError
from qcc.paths import state_dir

RECORD_NAME = "proxy.json"


@dataclass(frozen=True)
class ProxyRecord:
    pid: int
    url: str
    host: str
    port: int
    cluster: str
    config_path: str
    log_file: str | None
    started_at: float

    def save(self) -> Path:
        path = record_path()
        atomic_write(path, json.dumps(asdict(self), indent=2) + "\n")
        return path


def record_path() -> Path:
    return state_dir() / RECORD_NAME


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - signal 0 does not exist there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_record() -> ProxyRecord | None:
    """The live proxy's record; a stale one is removed and None returned."""
    path = record_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = ProxyRecord(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    if not pid_alive(record.pid):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return record


def remove_record(pid: int) -> None:
    """Remove the record if it is still ours (another proxy may have replaced it)."""
    path = record_path()
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()


def require_record() -> ProxyRecord:
    record = read_record()
    if record is None:
        raise ProxyError("no qcc proxy is running; start one with 'qcc proxy start'")
    return record


def fetch_json(url: str, access_key: str | None = None, timeout: float = 3.0) -> tuple[int, Any]:
    """GET a JSON document from a running proxy (admin routes only)."""
    request = urllib.request.Request(url, headers={"accept": "application/json"})
    if access_key:
        request.add_header("x-api-key", access_key)
    try:
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
        with direct.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProxyError(f"the proxy at {url} does not answer ({reason})") from None


def terminate(pid: int) -> None:
    sig = signal.SIGTERM
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
