"""Hot reload: config edits (by the CLI or by hand) reach a running proxy within about a second.

A cheap ``stat`` every ``interval`` seconds; only a changed file is read and validated, in a
worker thread (a large file never stalls the event loop). An invalid edit is refused with one
logged error (``reload_error``, shown in ``/accounts/stats``) and the running config keeps
serving; so is a valid one that would break the bind rule for the address the proxy listens on
(removing ``access_key`` beyond loopback). ``reload_error`` clears as soon as the file again holds
a config the proxy accepts, the running one included. In-flight requests are unaffected: they
hold their own account objects.
"""

from __future__ import annotations

import asyncio
import logging
import os

from qcc.config.model import Config
from qcc.config.store import ConfigStore
from qcc.errors import QccError
from qcc.proxy.guard import check_bind
from qcc.proxy.runtime import Runtime

log = logging.getLogger("qcc.reload")


def _signature(store: ConfigStore) -> tuple[int, int, int] | None:
    try:
        st = os.stat(store.path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def watch_config(runtime: Runtime, store: ConfigStore, interval: float = 0.5) -> None:
    """Run until cancelled; the app's cleanup context owns this task."""
    seen = _signature(store)
    while True:
        await asyncio.sleep(interval)
        current = _signature(store)
        if current == seen:
            continue
        seen = current
        try:
            config = await asyncio.to_thread(_load, store, runtime)
        except QccError as exc:
            runtime.reload_error = str(exc)
            log.error("config change refused, still serving the previous config: %s", exc)
            continue
        if config == runtime.config:
            if runtime.reload_error is not None:
                log.info("config file holds the running config again")
            runtime.reload_error = None
            continue
        runtime.apply(config)
        runtime.reload_error = None
        log.info(
            "config reloaded (cluster %s: %d accounts)",
            runtime.cluster_name,
            len(runtime.pool.members),
        )


def _load(store: ConfigStore, runtime: Runtime) -> Config:
    """Read, validate and check a changed file (in a worker thread; reads nothing mutable)."""
    config = store.load()
    config.cluster(runtime.cluster_name)
    check_bind(config, runtime.listen_host, running=True, cluster=runtime.cluster_name)
    return config
