"""Running the proxy in the foreground: bind, announce, serve, and shut down with a deadline.

On SIGINT/SIGTERM the listening socket closes first (no new connections), in-flight requests get
``proxy.drain_timeout`` seconds to finish, and whatever is left is cancelled. Then the app's
cleanup context stops the monitor and closes the upstream client.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from qcc.config.model import Config
from qcc.config.store import ConfigStore
from qcc.errors import ProxyError
from qcc.proxy import loops
from qcc.proxy.app import create_app
from qcc.proxy.guard import check_bind as check_bind  # re-exported for the CLI
from qcc.proxy.runtime import Runtime

log = logging.getLogger("qcc.proxy")


# Errors of accept() that mean "out of resources": the loop reports each one (asyncio retries
# the listening socket every second), so they are logged once per interval, with a count.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RESOURCE_LOG_INTERVAL = 60.0


class LoopErrors:
    """The event loop's exception handler: out-of-descriptor errors rate-limited, the rest as
    asyncio would report them (to the ``qcc`` log, not to a bare stderr)."""

    def __init__(
        self, interval: float = RESOURCE_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.suppressed = 0
        self._last: float | None = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            now = self.clock()
            if self._last is not None and now - self._last < self.interval:
                self.suppressed += 1
                return
            more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
            self._last, self.suppressed = now, 0
            log.error(
                "cannot accept connections: %s%s; clients are refused until descriptors free "
                "up (raise the limit with 'ulimit -n'); reported at most every %gs",
                os.strerror(exc.errno or 0),
                more,
                self.interval,
            )
            return
        message = context.get("message") or "unhandled error in the event loop"
        log.error("%s", message, exc_info=exc if isinstance(exc, BaseException) else None)


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(
    config: Config,
    cluster_name: str,
    host: str,
    port: int,
    *,
    store: ConfigStore | None = None,
    announce: Callable[[str, Runtime], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set or SIGINT/SIGTERM arrives."""
    check_bind(config, host, cluster=cluster_name)
    runtimes: list[Runtime] = []
    app = create_app(config, cluster_name, host=host, store=store, on_ready=runtimes.append)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,  # a client that goes away cancels its upstream request
        access_log=None,  # one structured line per request comes from the forwarder
        shutdown_timeout=config.proxy.drain_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                raise ProxyError(
                    f"port {port} on {host} is already in use; stop what uses it "
                    f"(maybe 'qcc proxy stop') or pick another with --port"
                ) from None
            if isinstance(exc, socket.gaierror) or exc.errno in (
                errno.EADDRNOTAVAIL,
                errno.EAFNOSUPPORT,
            ):
                raise ProxyError(f"cannot listen on {host}: {exc.strerror}; check --host") from None
            raise ProxyError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(LoopErrors())
        if sys.platform != "win32":
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        # Start-up objects (modules, config, app) never die: keep them out of every GC pass,
        # and collect the young generation less often; the request path allocates a lot.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        if announce is not None:
            announce(url_for(host, port), runtimes[0])
        await stop.wait()
        log.info(
            "shutting down: no new connections; draining in-flight requests (up to %gs)",
            config.proxy.drain_timeout,
        )
    finally:
        if sys.platform != "win32":
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        await runner.cleanup()


def run(main: Callable[[], object]) -> None:
    """Run a coroutine function on uvloop when it is installed, else on asyncio's loop.

    ``QCC_LOOP=asyncio`` forces asyncio's loop (see :mod:`qcc.proxy.loops`).
    """
    with asyncio.Runner(loop_factory=loops.factory()) as runner:
        runner.run(main())  # type: ignore[arg-type]
