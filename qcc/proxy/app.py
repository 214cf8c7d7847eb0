"""The aiohttp application: routes, and the one cleanup context that owns long-lived things.

Inside :func:`lifecycle`, before ``yield``: the :class:`UpstreamClient` (traffic and health
probes share it: one HTTP path, same proxies and TLS), the :class:`Runtime`, the health monitor
task and the config watcher task. After ``yield``: the tasks are cancelled and awaited, then the
client is closed. Nothing outlives the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from qcc import logs
from qcc.config.model import Config
from qcc.config.store import ConfigStore
from qcc.health.monitor import HealthMonitor
from qcc.net.client import UpstreamClient
from qcc.proxy import admin, usage
from qcc.proxy.forward import handle_api
from qcc.proxy.pool import AccountPool
from qcc.proxy.reload import watch_config
from qcc.proxy.runtime import RUNTIME_KEY, Runtime
from qcc.routing.budget import RetryBudget

log = logging.getLogger("qcc.proxy")

MAX_REQUEST_BODY = 64 * 1024 * 1024  # the Messages API takes up to 32 MB


def _owned(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    task.add_done_callback(_report_crash)
    return task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s crashed: %r", task.get_name(), task.exception())


def create_app(
    config: Config,
    cluster_name: str,
    *,
    store: ConfigStore | None = None,
    monitor: bool = True,
    reload_interval: float = 0.5,
    persist_usage: bool = True,
    on_ready: Callable[[Runtime], None] | None = None,
) -> web.Application:
    """Build the proxy app for one cluster. ``store`` enables hot reload of that file."""
    config.cluster(cluster_name)  # fail early on an unknown cluster

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        client = UpstreamClient()
        pool = AccountPool(config.cluster(cluster_name), config.health, now=loop.time())
        runtime = Runtime(
            access=logs.access_writer(),
            config=config,
            cluster_name=cluster_name,
            pool=pool,
            budget=RetryBudget(config.retry),
            client=client,
        )
        app[RUNTIME_KEY] = runtime
        tasks: list[asyncio.Task[None]] = []
        health_monitor = HealthMonitor(runtime)
        if monitor:
            tasks.append(_owned(health_monitor.run(), "qcc-health-monitor"))
        if store is not None:
            tasks.append(_owned(watch_config(runtime, store, reload_interval), "qcc-config-watch"))
        if persist_usage:
            path = usage.usage_path(cluster_name)
            usage.load_into(pool, path)
            tasks.append(_owned(usage.keep_saved(pool, path), "qcc-usage-saver"))
        if on_ready is not None:
            on_ready(runtime)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel("proxy shutting down")
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            client.close()

    app = web.Application(client_max_size=MAX_REQUEST_BODY)
    app.cleanup_ctx.append(lifecycle)
    # Exact paths first: the router finds them by dict lookup, without a regex.
    for hot in ("/v1/messages", "/v1/messages/count_tokens"):
        app.router.add_route("*", hot, handle_api)
    app.router.add_route("*", "/v1/{tail:.*}", handle_api)
    app.router.add_get("/health", admin.health)
    app.router.add_get("/accounts/stats", admin.accounts_stats)
    app.router.add_get("/metrics", admin.metrics)
    app.router.add_get("/", admin.root)  # GET also answers HEAD
    app.router.add_route("*", "/{tail:.*}", admin.not_forwarded)
    return app
