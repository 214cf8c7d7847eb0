"""Hot reload: config edits (by the CLI or by hand) reach a running proxy within about a second.

A cheap ``stat`` every ``interval`` seconds; only a changed file is read and validated. An invalid
edit is refused with one logged error and the running config keeps serving. In-flight requests
are unaffected: they hold their own account objects.
"""

from __future__ import annotations

import asyncio
import logging
import os

from qcc.config.store import ConfigStore
from qcc.errors import QccError
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
            config = store.load()
            config.cluster(runtime.cluster_name)
        except QccError as exc:
            runtime.reload_error = str(exc)
            log.error("config change refused, still serving the previous config: %s", exc)
            continue
        if config == runtime.config:
            continue
        runtime.apply(config)
        runtime.reload_error = None
        log.info(
            "config reloaded (cluster %s: %d accounts)",
            runtime.cluster_name,
            len(runtime.pool.members),
        )
