"""The aiohttp application: routes, and the one cleanup context that owns long-lived things.

Inside :func:`lifecycle`, before ``yield``: the :class:`UpstreamClient` (traffic and health
probes share it: one HTTP path, same proxies and TLS), the :class:`Runtime`, the health monitor
task, the config watcher task, the credential keeper (fetched credentials: first fetch awaited,
bounded by the connect timeout, then refreshed before they expire) and the usage ledger (its
recorder's writer thread). After ``yield``: the tasks are cancelled and awaited, the ledger
commits what is pending and its thread is joined (off the loop), then the client is closed.
Nothing outlives the app.

Every request first passes :func:`edge` (the rules of :mod:`qcc.proxy.guard`): Host and Origin,
the normalised target, and for API requests the access key, the body read within
``timeouts.client_read`` and the decoded copy of an encoded body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from qcc import logs
from qcc.accounts.monitor import HealthMonitor
from qcc.accounts.pool import AccountPool
from qcc.config.model import Config
from qcc.config.store import ConfigStore
from qcc.credentials import keeper as credentials
from qcc.net.client import UpstreamClient
from qcc.proxy import admin, metrics, probing, ui, usage
from qcc.proxy.forward import handle_api
from qcc.proxy.guard import (
    CALLER,
    TARGET,
    VIEW,
    Refusal,
    api_target,
    decoded_view,
    same_origin,
)
from qcc.proxy.members import Denied
from qcc.proxy.messages import error_body
from qcc.proxy.reload import watch_config
from qcc.proxy.runtime import RUNTIME_KEY, Runtime
from qcc.routing.budget import RetryBudget
from qcc.shared.settings import target as shared_target
from qcc.usage.pricing import price_table
from qcc.usage.store import usage_db_path

log = logging.getLogger("qcc.proxy")
edge_log = logging.getLogger("qcc.edge")

MAX_REQUEST_BODY = 64 * 1024 * 1024  # the Messages API takes up to 32 MB


def _owned(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    task.add_done_callback(_report_crash)
    return task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s crashed: %r", task.get_name(), task.exception())


def _refuse(refusal: Refusal) -> web.Response:
    return web.Response(
        status=refusal.status,
        body=error_body(refusal.kind, refusal.message),
        content_type="application/json",
    )


def _forbidden(message: str) -> web.Response:
    return _refuse(Refusal(403, "permission_error", message))


def _denied(denied: Denied) -> web.Response:
    """A member key's 401, or its 429 with ``retry-after`` (no account was tried)."""
    edge_log.info("refused a request: %s", denied.message.removeprefix("qcc: "))
    response = _refuse(Refusal(denied.status, denied.kind, denied.message))
    if denied.retry_after is not None:
        response.headers["retry-after"] = str(denied.retry_after)
    return response


class _ClosingResponse(web.Response):
    """Closes the connection once sent: the rest of a body that came too slowly is not waited
    for (aiohttp would otherwise linger up to 10 s reading it)."""

    def __init__(self, request: web.Request, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._closing = request

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        self._closing.protocol.force_close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The proxy's edge rules, for every route (see :mod:`qcc.proxy.guard`)."""
    rt = request.app[RUNTIME_KEY]
    headers = request.headers
    host = headers.get("host")
    if not rt.edge.host_ok(host, request.protocol.sockname):
        shown = (host or "")[:100]
        edge_log.warning("refused a request for Host %r: not this proxy's address", shown)
        return _forbidden(
            f"qcc: Host {shown!r} is not this proxy's address; if you reach the proxy under "
            "that name, add it to [proxy] allowed_hosts in config.toml"
        )
    origin = headers.get("origin")
    if origin is not None and not rt.edge.origin_ok(origin) and not same_origin(origin, host):
        shown = origin[:100]
        edge_log.warning("refused a request from a web page (Origin %r)", shown)
        return _forbidden(
            f"qcc: requests from web pages (Origin {shown!r}) are refused; to allow this one, "
            "add it to [proxy] allowed_origins in config.toml"
        )
    target = api_target(request.raw_path)
    if isinstance(target, Refusal):
        edge_log.warning("refused a request: %s", target.message.removeprefix("qcc: "))
        return _refuse(target)
    if request.match_info.handler is not handle_api:
        return await handler(request)
    if target is None:
        return _refuse(
            Refusal(404, "not_found_error", "qcc: only paths inside /v1/ are forwarded to accounts")
        )
    request[TARGET] = target
    if rt.keys.active:  # member keys (qcc.proxy.members): who calls, within their limits?
        caller = rt.keys.check(
            headers, rt.config.proxy.access_key, asyncio.get_running_loop().time(), time.time()
        )
        if isinstance(caller, Denied):
            return _denied(caller)
        request[CALLER] = caller
    elif not rt.authorized(request):
        return admin.unauthorized()
    if not request.content.is_eof():  # the body did not come with the head: bound its wait
        try:
            async with asyncio.timeout(rt.config.timeouts.client_read):
                await request.read()
        except TimeoutError:
            edge_log.warning(
                "cut a client that did not send its request body within %gs (timeouts.client_read)",
                rt.config.timeouts.client_read,
            )
            refusal = Refusal(408, "timeout_error", "qcc: the request body did not arrive in time")
            return _ClosingResponse(
                request,
                status=refusal.status,
                body=error_body(refusal.kind, refusal.message),
                content_type="application/json",
            )
    encoding = headers.get("content-encoding")
    if encoding is not None:
        view = decoded_view(await request.read(), encoding, request.app[BODY_LIMIT])
        if isinstance(view, Refusal):
            edge_log.warning("refused a request body: %s", view.message.removeprefix("qcc: "))
            return _refuse(view)
        request[VIEW] = view
    return await handler(request)


class ParseErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger for this app: a request it cannot parse is one warning line that
    names the error's kind only. aiohttp's own report quotes the offending bytes (a header line,
    the client's key with it) and a traceback."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            self.logger.warning(
                "refused a malformed request (%s, HTTP %s); its content is not logged",
                type(exc).__name__,
                exc.code,
            )
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kw)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs


BODY_LIMIT = web.AppKey("qcc_body_limit", int)


def create_app(
    config: Config,
    cluster_name: str,
    *,
    host: str | None = None,
    store: ConfigStore | None = None,
    monitor: bool = True,
    reload_interval: float = 0.5,
    persist_usage: bool = True,
    on_ready: Callable[[Runtime], None] | None = None,
) -> web.Application:
    """Build the proxy app for one cluster. ``store`` enables hot reload of that file.

    ``host``: the address the proxy listens on (default: ``proxy.host``), for the Host rule and
    the bind rule on reload.
    """
    listen_host = host or config.proxy.host
    config.cluster(cluster_name)  # fail early on an unknown cluster
    shared = shared_target(config.shared)  # [shared] or QCC_REDIS_URL; None: not shared

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
            listen_host=listen_host,
        )
        app[RUNTIME_KEY] = runtime
        app[metrics.REGISTRY_KEY] = metrics.new_registry(runtime)  # read by /metrics
        tasks: list[asyncio.Task[None]] = []
        health_monitor = HealthMonitor(pool, probing.prober(runtime))
        if monitor:
            tasks.append(_owned(health_monitor.run(), "qcc-health-monitor"))
            app[ui.DASHBOARD_KEY].monitor = health_monitor  # for "probe now"
        if store is not None:
            tasks.append(_owned(watch_config(runtime, store, reload_interval), "qcc-config-watch"))
        # Credentials fetched while running (commands, OAuth2): refreshed before they expire.
        keeper = credentials.keep_fresh(pool.sources, changed=pool.credentials_changed)
        tasks.append(_owned(keeper, "qcc-credentials"))
        try:
            await credentials.prime(pool.sources(), config.timeouts.connect)
            if persist_usage:  # before the first request, so every one is recorded
                prices = price_table(config.pricing)
                runtime.ledger = await usage.open_ledger(usage_db_path(), prices, pool, time.time())
                await usage.seed_member_spend(
                    runtime.ledger, runtime.keys, usage_db_path(), time.time()
                )
            if shared is not None:  # after the ledger's seeds; redis is imported only here
                from qcc.shared import sync

                runtime.shared = await sync.start(pool, shared)
                runtime.shared.members = runtime.keys
                if runtime.ledger is not None:
                    runtime.ledger.shared = runtime.shared
                tasks.append(_owned(runtime.shared.run(), "qcc-shared-sync"))
            if on_ready is not None:
                on_ready(runtime)
            yield
        finally:
            for task in tasks:
                task.cancel("proxy shutting down")
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if runtime.shared is not None:
                from qcc.shared import sync

                await sync.stop(runtime.shared)
            if runtime.ledger is not None:
                await usage.close_ledger(runtime.ledger)
            client.close()

    app = web.Application(
        client_max_size=MAX_REQUEST_BODY,
        middlewares=[edge],
        handler_args={
            # The client's bytes are forwarded as sent, Content-Encoding and all.
            "auto_decompress": False,
            # A request head must arrive within client_read of the connection opening or of
            # the previous response (aiohttp's keep-alive timer also cuts a slow head).
            "keepalive_timeout": config.timeouts.client_read,
            "logger": ParseErrorLog(edge_log, {}),
        },
    )
    app[BODY_LIMIT] = MAX_REQUEST_BODY
    app.cleanup_ctx.append(lifecycle)
    # Exact paths first: the router finds them by dict lookup, without a regex.
    for hot in ("/v1/messages", "/v1/messages/count_tokens"):
        app.router.add_route("*", hot, handle_api)
    app.router.add_route("*", "/v1/{tail:.*}", handle_api)
    app.router.add_get("/health", admin.health)
    app.router.add_get("/accounts/stats", admin.accounts_stats)
    app.router.add_post("/accounts/{name}/reset", admin.reset_account)
    app.router.add_get("/metrics", admin.metrics)
    ui.install(app, store)  # /ui/: the dashboard
    app.router.add_get("/", admin.root)  # GET also answers HEAD
    app.router.add_route("*", "/{tail:.*}", admin.not_forwarded)
    return app
