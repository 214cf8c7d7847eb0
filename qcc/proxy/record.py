"""The running proxy's record (``proxy.json`` in the state dir) and a small sync client for it.

One proxy per state dir: the serving process holds an exclusive lock on ``proxy.lock`` for its
whole life (:func:`hold_lock`) and writes the record only while holding it, so a second
``qcc proxy start`` - on any port, detached or not, even racing the first - cannot start or
overwrite the record; it is refused with a line naming the one that runs.

The foreground server writes the record once it accepts connections and removes it on exit;
``qcc proxy status|stop``, ``qcc health``, ``qcc top`` and ``qcc run`` read it. A record whose
process is gone (killed, machine rebooted) is *stale*: it is detected and cleaned up.

:func:`fetch_json` talks to the proxy's own admin routes and never through an HTTP proxy
(``http_proxy`` in the environment would otherwise capture ``127.0.0.1`` too).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from qcc.config.store import atomic_write
from qcc.errors import ProxyError
from qcc.paths import state_dir

RECORD_NAME = "proxy.json"
LOCK_NAME = "proxy.lock"
# A short wait for the lock: someone may hold it for an instant (never longer) while it checks.
LOCK_WAIT = 0.5
# How long a refused start waits for the winner's record, to name it (the winner may be binding).
RECORD_WAIT = 3.0


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


def ensure_state_dir() -> Path:
    """The state dir, created private (0700) if missing."""
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def hold_lock() -> FileLock:
    """Take the state dir's proxy lock for the life of this process, or refuse in one line.

    The caller keeps the returned lock and releases it on exit (the OS does so on a crash).
    """
    directory = ensure_state_dir()
    lock = FileLock(str(directory / LOCK_NAME), mode=0o600)
    try:
        lock.acquire(timeout=LOCK_WAIT)
    except Timeout:
        raise ProxyError(already_running(wait=RECORD_WAIT)) from None
    return lock


def already_running(record: ProxyRecord | None = None, wait: float = 0.0) -> str:
    """One line naming the proxy that holds this state dir, and how to stop it."""
    deadline = time.monotonic() + wait
    while record is None:
        record = read_record()
        if record is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if record is None:
        return (
            f"another qcc proxy is starting with state dir {state_dir()}; "
            "see 'qcc proxy status', stop it with 'qcc proxy stop'"
        )
    return (
        f"a qcc proxy (pid {record.pid}) already serves cluster '{record.cluster}' at "
        f"{record.url} from state dir {state_dir()}; only one runs per state dir: "
        "stop it with 'qcc proxy stop' (or use another QCC_STATE_DIR)"
    )


def client_url(host: str, port: int) -> str:
    """The URL clients on this machine use for a proxy bound to ``host``: a wildcard bind
    address becomes loopback."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


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


# The proxy's own admin routes are never reached through an HTTP proxy: an empty ProxyHandler
# ignores http_proxy/HTTP_PROXY (which urllib would otherwise apply to 127.0.0.1 as well).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_json(
    url: str, access_key: str | None = None, timeout: float = 3.0, method: str = "GET"
) -> tuple[int, Any]:
    """GET (or ``method``) a JSON document from a running proxy (admin routes only), directly."""
    data = b"" if method == "POST" else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"accept": "application/json"}
    )
    if access_key:
        request.add_header("x-api-key", access_key)
    try:
        with _DIRECT.open(request, timeout=timeout) as response:
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
