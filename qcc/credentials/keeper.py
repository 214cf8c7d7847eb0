"""Building an account's :class:`CredentialSource`, and the task that keeps sources fresh.

:func:`source_for` turns a dynamic credential (``*_command``, ``oauth``) into a source;
:func:`keep_fresh` is the proxy's owned background task: it refreshes each source a little
before its value goes stale (and retries a failed one after its backoff), so traffic almost
never waits for a credential. :func:`prime` fetches them all once at start-up, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from qcc.config.model import Credential
from qcc.credentials.command import COMMAND_TIMEOUT, run_command
from qcc.credentials.oauth import OAuthFetcher
from qcc.credentials.source import CredentialSource, Fetched
from qcc.credentials.tokens import TokenStore, tokens_dir

MAX_SLEEP = 1.0  # wake at least this often to notice reloaded accounts


async def _command(command: str, ttl: float, timeout: float) -> Fetched:  # noqa: ASYNC109
    return Fetched(await run_command(command, timeout), ttl)


def source_for(
    credential: Credential,
    cluster: str,
    account: str,
    *,
    environ: Mapping[str, str] | None = None,
    token_dir: Path | None = None,
    clock: Callable[[], float] | None = None,
    command_timeout: float = COMMAND_TIMEOUT,
) -> CredentialSource | None:
    """The source of a dynamic credential; None for a static one (inline or env)."""
    if credential.kind.endswith("_command"):
        fetch = partial(_command, credential.value, credential.ttl, command_timeout)
        return CredentialSource("command", credential.header_name, fetch, clock=clock)
    if credential.kind == "oauth" and credential.oauth is not None:
        path = (token_dir or tokens_dir()) / f"{cluster}.{account}.json"
        fetcher = OAuthFetcher(credential.oauth, TokenStore(path, None), environ)
        return CredentialSource("oauth", credential.header_name, fetcher, clock=clock)
    return None


async def prime(sources: Iterable[CredentialSource], timeout: float) -> None:  # noqa: ASYNC109
    """Fetch every source that has no value yet, waiting at most ``timeout`` for them (those
    still running go on in the background; failures are reported by each source's listener)."""
    flights = [s.refresh() for s in sources if s.header is None]
    if flights:
        await asyncio.wait(flights, timeout=timeout)


async def keep_fresh(
    sources: Callable[[], Iterable[CredentialSource]],
    clock: Callable[[], float] | None = None,
    changed: asyncio.Event | None = None,
) -> None:
    """Refresh each source when due, until cancelled; then cancel the refreshes in flight.
    Wakes when one is due, when a refresh ends, and when ``changed`` is set (new accounts)."""
    loop = asyncio.get_running_loop()
    clock = clock or loop.time
    try:
        while True:
            now = clock()
            wake = now + MAX_SLEEP
            waits: set[asyncio.Future[Any]] = set()
            for source in sources():
                if source.due(now) or source.refreshing:
                    waits.add(source.refresh())  # the one in flight, or a new one
                else:
                    wake = min(wake, source.next_due())
            watcher = None
            if changed is not None:
                changed.clear()  # no await since the scan: nothing set meanwhile is missed
                watcher = loop.create_task(changed.wait())
                waits.add(watcher)
            try:
                delay = max(wake - clock(), 0.01)
                await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if watcher is not None:
                    watcher.cancel()
    finally:
        for source in sources():
            with contextlib.suppress(Exception):
                await source.aclose()
