"""One account's credential from a source that changes: a command's output or an OAuth2 token.

:class:`CredentialSource` keeps the current header value and when it goes stale. Reading it is
a plain attribute read (the proxy's hot path reads ``stale_at`` and ``header``); fetching a new
one is *single-flight*: the first caller starts one task and every other caller awaits that same
task (through :func:`asyncio.shield`, so a caller that gives up never cancels it for the
others). No lock is held across a refresh, so nothing a refresh does — or anything that runs
while it is in flight, including another refresh request — can wait on itself (the tool qcc grew
from deadlocked on an ``asyncio.Lock`` taken again by its holder).

A refresh that fails is remembered: until ``retry_at`` callers get the same error at once
instead of starting another run (a dead token endpoint is not hammered by traffic). Its result,
good or bad, goes to ``listener`` once per refresh (the pool turns it into the account's health).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from qcc.config.model import header_for
from qcc.errors import CredentialError
from qcc.routing.classify import Outcome

RETRY_BASE = 1.0  # seconds before a failed refresh is tried again, doubled per failure...
RETRY_MAX = 300.0  # ...up to this
EARLY = 0.2  # share of a value's lifetime before its end when the background refresh starts


class FetchError(CredentialError):
    """A refresh failed; ``outcome`` says what it means for the account's health
    (``auth_failed`` for a failing command or a refused grant; ``server_error``, ``timeout`` or
    ``network`` for a token endpoint that is down)."""

    def __init__(self, message: str, outcome: Outcome = Outcome.AUTH_FAILED) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched secret and how long it may be used (seconds, already less any margin)."""

    secret: str
    lifetime: float


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one refresh did, for the listener: ``error`` is None on success."""

    at: float  # the source's clock
    error: FetchError | None


Fetcher = Callable[[], Awaitable[Fetched]]
Listener = Callable[[RefreshResult], None]


class CredentialSource:
    """The current credential of one account and its single-flight refresh."""

    def __init__(
        self,
        kind: str,
        header_name: str,
        fetch: Fetcher,
        *,
        clock: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.kind = kind  # "command" | "oauth"
        self.header_name = header_name
        self._fetch = fetch
        self.clock = clock or _loop_time  # the proxy's clock: what ``now`` means everywhere
        self.wall = wall
        self.listener: Listener | None = None
        self.header: tuple[str, str] | None = None  # the last good value (kept when stale)
        self.stale_at = float("-inf")  # clock time from which ``header`` must be fetched again
        self.refresh_at = float("-inf")  # clock time from which the background refreshes it
        self.retry_at = float("-inf")  # after a failure: no new run before then
        self.failures = 0  # refreshes failed in a row
        self.error: FetchError | None = None  # the last refresh's error, if it failed
        self.fetches = 0  # refreshes started
        self.last_refresh: float | None = None  # unix time of the last refresh's end
        self.last_ms: float | None = None  # how long it took
        self.expires: float | None = None  # unix time the current value goes stale
        self._flight: asyncio.Task[tuple[str, str]] | None = None

    # ---- reading -------------------------------------------------------------------------

    def current(self, now: float) -> tuple[str, str] | None:
        """The header while it is fresh at ``now``; None when it must be fetched."""
        return self.header if now < self.stale_at else None

    def due(self, now: float) -> bool:
        """Whether the background should refresh it now (nothing in flight, and near its end,
        or past the wait after a failed refresh)."""
        return self._flight is None and now >= self.next_due()

    def next_due(self) -> float:
        return self.refresh_at if self.error is None else self.retry_at

    @property
    def refreshing(self) -> bool:
        return self._flight is not None

    def last_result(self) -> str:
        if self.last_refresh is None:
            return "never fetched" if self._flight is None else "fetching"
        return "ok" if self.error is None else f"failed: {self.error}"

    # ---- refreshing ----------------------------------------------------------------------

    def refresh(self) -> asyncio.Task[tuple[str, str]]:
        """The refresh in flight, started now if none is."""
        flight = self._flight
        if flight is None:
            self.fetches += 1
            flight = self._flight = asyncio.get_running_loop().create_task(
                self._run(), name=f"qcc-credential-{self.kind}"
            )
            flight.add_done_callback(_retrieve)
        return flight

    async def fresh(self, now: float, timeout: float) -> tuple[str, str]:  # noqa: ASYNC109
        """A fresh header: the cached one, else the refresh's (awaited at most ``timeout``).
        Raises :class:`FetchError` (or TimeoutError while the refresh is still running)."""
        header = self.current(now)
        if header is not None:
            return header
        return await self._join(now, timeout)

    async def refetch(self, used: tuple[str, str], now: float, timeout: float) -> tuple[str, str]:  # noqa: ASYNC109
        """A new header after ``used`` was refused (401/403): one fetched since, the refresh in
        flight, or a new one. However many requests were refused, one run serves them all."""
        if self._flight is None and self.header is not None and self.header != used:
            return self.header  # refreshed since that request was sent
        return await self._join(now, timeout)

    async def _join(self, now: float, timeout: float) -> tuple[str, str]:  # noqa: ASYNC109
        if self._flight is None and self.error is not None and now < self.retry_at:
            raise self.error  # failed a moment ago: not run again before retry_at
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self.refresh())

    async def _run(self) -> tuple[str, str]:
        started = self.clock()
        try:
            fetched = await self._fetch()
        except asyncio.CancelledError:
            self._flight = None
            raise
        except Exception as exc:  # every failure is the account's, told in words
            error = exc if isinstance(exc, FetchError) else _as_fetch_error(exc)
            self._done(started, error)
            raise error from None
        header = header_for(self.header_name, fetched.secret)
        now = self.clock()
        self.header = header
        self.stale_at = now + fetched.lifetime
        self.refresh_at = now + fetched.lifetime * (1 - EARLY)
        self.expires = self.wall() + fetched.lifetime
        self._done(started, None)
        return header

    def _done(self, started: float, error: FetchError | None) -> None:
        """Record a refresh's end; the flight is cleared *before* the listener runs, so a
        listener that asks for a refresh starts a new one instead of awaiting this one."""
        now = self.clock()
        self._flight = None
        self.error = error
        self.last_refresh = self.wall()
        self.last_ms = (now - started) * 1000
        if error is None:
            self.failures = 0
            self.retry_at = float("-inf")
        else:
            self.failures += 1
            self.retry_at = now + min(RETRY_BASE * 2 ** (self.failures - 1), RETRY_MAX)
        if self.listener is not None:
            self.listener(RefreshResult(now, error))

    def close(self) -> None:
        """Cancel the refresh in flight (the account is gone, or the proxy stops)."""
        if self._flight is not None:
            self._flight.cancel("credential source closed")
            self._flight = None

    async def aclose(self) -> None:
        flight = self._flight
        self.close()
        if flight is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flight


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _retrieve(task: asyncio.Task[tuple[str, str]]) -> None:
    """Mark a refresh's exception as seen: its waiters got it, and the listener reported it."""
    if not task.cancelled():
        task.exception()


def _as_fetch_error(exc: Exception) -> FetchError:
    if isinstance(exc, CredentialError):
        return FetchError(str(exc))
    return FetchError(f"credential refresh failed ({type(exc).__name__})", Outcome.NETWORK)
