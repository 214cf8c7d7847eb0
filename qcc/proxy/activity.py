"""Recent activity for the dashboard: small bounded rings, fed once per request.

:func:`record` is called from the access line (``Exchange.log`` in :mod:`qcc.proxy.forward`) and
costs O(1): a few counter increments in the current time bucket and one tuple appended to a
``deque(maxlen=50)``. Nothing grows with traffic: :data:`BUCKETS` buckets of :data:`BUCKET`
seconds (15 minutes) per account, and the last :data:`RECENT` request summaries.

Reading (:meth:`Activity.series`, :meth:`Activity.recent_requests`) is done at most once per
dashboard refresh interval, whatever the number of open pages: O(accounts x buckets) list
copies, plus the closed buckets' columns once per bucket (a bucket's TTFB median is computed
once in its life). A request stamped into an already closed bucket (the wall clock stepped
back) shows from the next bucket on.

What is kept of a request: time, account, status, outcome, the accounts that failed over with
qcc's one-line reason (``HTTP 529 overloaded_error``), TTFB, duration and token counts. Never a
body, a header or anything an account said.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from aiohttp import web

from qcc.stats import LATENCY_BUCKETS

if TYPE_CHECKING:
    from qcc.proxy.forward import Exchange

BUCKET = 5.0  # seconds per chart point
BUCKETS = 180  # 15 minutes
RECENT = 50  # rows of the last-requests table


class AccountBucket:
    """One account's requests in one time bucket; TTFB as a fixed histogram."""

    __slots__ = ("p50", "requests", "ttfb")

    def __init__(self) -> None:
        self.requests = 0
        self.ttfb: list[int] | None = None  # counts per LATENCY_BUCKETS slot, made on first use
        self.p50: float | None = None  # cached once the bucket is closed

    def median(self) -> float | None:
        counts = self.ttfb
        if counts is None:
            return None
        total = sum(counts)
        rank = total / 2
        seen = 0
        for i, n in enumerate(counts):
            if n and seen + n >= rank:
                lower = LATENCY_BUCKETS[i - 1] if i else 0.0
                upper = LATENCY_BUCKETS[i] if i < len(LATENCY_BUCKETS) else lower * 2
                return lower + (upper - lower) * ((rank - seen) / n)
            seen += n
        return None  # pragma: no cover - total > 0 always finds a slot


class Slot:
    """One bucket of the ring: which bucket number it holds now, and its counts."""

    __slots__ = ("accounts", "epoch", "errors", "failovers", "settled")

    def __init__(self) -> None:
        self.epoch = -1
        self.accounts: dict[str, AccountBucket] = {}
        self.errors: Counter[str] = Counter()
        self.failovers = 0
        self.settled = False  # the medians of this (closed) bucket are cached

    def reset(self, epoch: int) -> None:
        self.epoch = epoch
        self.accounts = {}
        self.errors = Counter()
        self.failovers = 0
        self.settled = False


_Columns = tuple[dict[str, list[int]], dict[str, list[int | None]], dict[str, list[int]]]


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


class Activity:
    """The rings of one proxy. ``clock`` (wall seconds) is injectable for tests."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self.slots = [Slot() for _ in range(BUCKETS)]
        self.current = self.slots[0]  # the slot last written
        self._closed_key: tuple[tuple[str, ...], int] | None = None
        self._closed: _Columns = ({}, {}, {})
        self.recent: deque[tuple[Any, ...]] = deque(maxlen=RECENT)

    def _slot(self, epoch: int) -> Slot:
        slot = self.slots[epoch % BUCKETS]
        if slot.epoch != epoch:
            slot.reset(epoch)
        return slot

    def add(
        self,
        wall: float,
        account: str | None,
        status: int,
        outcome: str,
        failures: list[Any],
        ttfb: float | None,
        duration: float,
        usage: dict[str, int],
    ) -> None:
        """Count one finished request (O(1) but for its failed attempts, at most one per
        account)."""
        epoch = int(wall // BUCKET)
        slot = self.current
        if slot.epoch != epoch:
            slot = self.current = self._slot(epoch)
        if account is not None:
            bucket = slot.accounts.get(account)
            if bucket is None:
                bucket = slot.accounts[account] = AccountBucket()
            bucket.requests += 1
            if ttfb is not None:
                counts = bucket.ttfb
                if counts is None:
                    counts = bucket.ttfb = [0] * (len(LATENCY_BUCKETS) + 1)
                counts[bisect.bisect_left(LATENCY_BUCKETS, ttfb)] += 1
        if failures:
            slot.failovers += len(failures)
            for failure in failures:
                slot.errors[str(failure.outcome)] += 1
        if outcome == "ok":
            if status >= 400:
                slot.errors["client_error"] += 1  # passed through: the request was at fault
        elif outcome != "client_closed":
            slot.errors[outcome] += 1  # broken, failed
        self.recent.append((wall, account, status, outcome, failures, ttfb, duration, usage))

    # ---- reading (once per refresh, shared by every open page) ------------------------------

    def _window(self, now: float) -> list[tuple[int, Slot | None]]:
        current = int(now // BUCKET)
        out: list[tuple[int, Slot | None]] = []
        for epoch in range(current - BUCKETS + 1, current + 1):
            slot = self.slots[epoch % BUCKETS]
            out.append((epoch, slot if slot.epoch == epoch else None))
        return out

    def series(self, names: list[str], now: float) -> dict[str, Any]:
        """The 15-minute charts, one value per bucket, oldest first: per account the requests
        (a count; the page divides by ``bucket_s``) and the TTFB p50 in ms (None: no sample),
        and errors by outcome (counts).

        The closed buckets' part is built once per bucket (every ``BUCKET`` seconds); each call
        copies it and adds the current bucket's column.
        """
        current = int(now // BUCKET)
        key = (tuple(names), current)
        if self._closed_key != key:
            self._closed = self._closed_part(names, current)
            self._closed_key = key
        requests, p50, errors = self._closed
        slot = self.slots[current % BUCKETS]
        live = slot if slot.epoch == current else None
        out_requests: dict[str, list[int]] = {}
        out_p50: dict[str, list[int | None]] = {}
        for name in names:
            bucket = None if live is None else live.accounts.get(name)
            out_requests[name] = [*requests[name], 0 if bucket is None else bucket.requests]
            out_p50[name] = [*p50[name], None if bucket is None else _ms(bucket.median())]
        kinds = set(errors) | (set() if live is None else set(live.errors))
        out_errors: dict[str, list[int]] = {}
        for kind in sorted(kinds):
            before = errors.get(kind) or [0] * (BUCKETS - 1)
            out_errors[kind] = [*before, 0 if live is None else live.errors.get(kind, 0)]
        return {
            "bucket_s": BUCKET,
            "end": (current + 1) * BUCKET,
            "requests": out_requests,
            "ttfb_p50_ms": out_p50,
            "errors": out_errors,
        }

    def _closed_part(self, names: list[str], current: int) -> _Columns:
        """The series of the BUCKETS - 1 closed buckets before ``current``."""
        requests: dict[str, list[int]] = {n: [] for n in names}
        p50: dict[str, list[int | None]] = {n: [] for n in names}
        window: list[Slot | None] = []
        kinds: set[str] = set()
        for epoch in range(current - BUCKETS + 1, current):
            slot = self.slots[epoch % BUCKETS]
            if slot.epoch != epoch:
                window.append(None)
                continue
            window.append(slot)
            kinds.update(slot.errors)
            if not slot.settled:  # each closed bucket's medians are computed once
                for closing in slot.accounts.values():
                    closing.p50 = closing.median()
                slot.settled = True
        errors: dict[str, list[int]] = {k: [] for k in kinds}
        for held in window:
            for name in names:
                bucket = None if held is None else held.accounts.get(name)
                requests[name].append(0 if bucket is None else bucket.requests)
                p50[name].append(None if bucket is None else _ms(bucket.p50))
            for kind, values in errors.items():
                values.append(0 if held is None else held.errors.get(kind, 0))
        return requests, p50, errors

    def summary(self, now: float) -> dict[str, float | int]:
        """Cluster requests/s (over the last full bucket and the current one) and failovers in
        the last minute (to the bucket)."""
        current = int(now // BUCKET)
        slots = {epoch: slot for epoch, slot in self._window(now)[-13:] if slot is not None}

        def requests(slot: Slot | None) -> int:
            return 0 if slot is None else sum(b.requests for b in slot.accounts.values())

        elapsed = BUCKET + (now - current * BUCKET)
        rate = (requests(slots.get(current)) + requests(slots.get(current - 1))) / elapsed
        return {
            "requests_per_s": round(rate, 2),
            "failovers_last_minute": sum(s.failovers for s in slots.values()),
        }

    def recent_requests(self) -> list[dict[str, Any]]:
        """The last requests, newest first, as the dashboard's table shows them."""
        rows = []
        for wall, account, status, outcome, failures, ttfb, duration, usage in reversed(
            self.recent
        ):
            get = usage.get
            rows.append(
                {
                    "at": round(wall, 3),
                    "account": account,
                    "status": status,
                    "outcome": outcome,
                    "failovers": [
                        {"account": f.account, "outcome": str(f.outcome), "reason": f.reason}
                        for f in failures
                    ],
                    "ttfb_ms": None if ttfb is None else round(ttfb * 1000, 1),
                    "duration_ms": round(duration * 1000, 1),
                    "input_tokens": get("input_tokens", 0),
                    "output_tokens": get("output_tokens", 0),
                    "cache_read_input_tokens": get("cache_read_input_tokens", 0),
                    "cache_creation_input_tokens": get("cache_creation_input_tokens", 0),
                }
            )
        return rows


ACTIVITY_KEY = web.AppKey("qcc_activity", Activity)


def record(
    exchange: Exchange, account: str | None, status: int, outcome: str, duration: float
) -> None:
    """The access line's one call: count ``exchange`` in its app's rings (about a microsecond).

    The exchange's ``failures`` list and ``usage`` dict are kept by reference: nothing changes
    them after the access line.
    """
    first = exchange.first_byte
    activity = exchange.request.app[ACTIVITY_KEY]
    activity.add(
        activity.clock(),
        account,
        status,
        outcome,
        exchange.failures,
        None if first is None else first - exchange.started,
        duration,
        exchange.usage,
    )
