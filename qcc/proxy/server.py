"""Running the proxy in the foreground: bind, announce, serve, and shut down with a deadline.

On SIGINT/SIGTERM the listening socket closes first (no new connections), in-flight requests get
``proxy.drain_timeout`` seconds to finish, and whatever is left is cancelled. Then the app's
cleanup context stops the monitor and closes the upstream client.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Callable

from aiohttp import web

from qcc.config.model import Config
from qcc.config.store import ConfigStore
from qcc.errors import ProxyError
from qcc.proxy.app import create_app
from qcc.proxy.runtime import Runtime

log = logging.getLogger("qcc.proxy")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(config: Config, host: str) -> None:
    """Refuse to expose accounts beyond this machine without an access key."""
    if not is_loopback(host) and config.proxy.access_key is None:
        raise ProxyError(
            f"refusing to listen on {host} without an access key: anyone who can reach it "
            "could spend your accounts; set proxy.access_key in config.toml, or use 127.0.0.1"
        )


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
    check_bind(config, host)
    runtimes: list[Runtime] = []
    app = create_app(config, cluster_name, store=store, on_ready=runtimes.append)
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
    """Run a coroutine function on uvloop when it is installed, else on asyncio's loop."""
    factory = None
    if sys.platform != "win32":
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())  # type: ignore[arg-type]
