"""The one owned task per cluster that shares the pool through Redis, and the request path's
one optional lookup.

Each tick (every :data:`TICK` seconds, or at most :data:`MIN_SPACING` after a new verdict or
session binding) sends one pipeline — one round trip, queued by :mod:`qcc.shared.pipeline`:

    writes   verdicts this instance decided (SET PX: they expire with the verdict; DEL when the
             account is healthy again), announced limits that changed, session bindings, the
             pending usage/spend batch (:mod:`qcc.shared.counters`), the heartbeat
    reads    every account's verdict and limits (MGET), today's and this month's spend (HGETALL),
             the live instances

and applies what others decided: a verdict through :meth:`AccountPool.apply_shared_verdict` (once
per verdict, never our own), limits through :meth:`AccountPool.note_limits`, the team's spend into
each account's budget. Polling, not pub/sub: a poll of a few keys every 250 ms is one round trip
an instance makes anyway for its counters and heartbeat, it needs no second connection held in a
blocking read, and an instance that starts late or reconnects after Redis restarted reads the
verdicts still in force (a published message is gone once sent). It meets "within 1 s" with room.

On the request path, :meth:`SharedSync.recall` looks up a session missing from the local sticky
table: one GET, skipped while Redis is down, given up after :data:`RECALL_WAIT` seconds.

Redis down or slow: the tick fails within :data:`TICK_TIMEOUT`, ``up`` turns False (``/health``
says ``shared: down``), the next attempts back off (0.25 s doubling to 2 s), and everything to
write waits here (sessions bounded by :data:`MAX_PENDING_SESSIONS`); requests are served on local
state throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from qcc.accounts.member import Member
from qcc.accounts.pool import AccountPool
from qcc.health.state import State
from qcc.routing.ratelimit import Limits
from qcc.shared import keys as K
from qcc.shared.client import ERRORS, SharedClient
from qcc.shared.counters import Batch, Counters, account_field, key_field
from qcc.shared.facts import SHARED_STATES, Announced, Verdict, decode_announced, decode_verdict
from qcc.shared.pipeline import queue_read, queue_writes
from qcc.shared.reads import LIMITS_EVERY, parse
from qcc.shared.settings import Target

log = logging.getLogger("qcc.shared")

TICK = 0.25
MIN_SPACING = 0.02  # a burst of new sessions is written in one go, at most 50 times a second
TICK_TIMEOUT = 0.5
RECALL_WAIT = 0.05
MAX_PENDING_SESSIONS = 10_000


class MemberSpend(Protocol):
    """Member keys' spend today (:class:`qcc.proxy.members.KeyGate`), for their budgets."""

    def spent_today(self, name: str, wall_now: float) -> float: ...

    def add_spend(self, name: str, usd: float, wall_now: float) -> None: ...


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:4]}"


class SharedSync:
    """What one proxy shares of one cluster's pool. The pool's listener (see
    :class:`~qcc.accounts.pool.PoolListener`); :meth:`run` is its task."""

    def __init__(self, pool: AccountPool, client: SharedClient, ident: str | None = None) -> None:
        self.pool = pool
        self.client = client
        self.keys = K.Keys(pool.cluster.name)
        self.id = ident or instance_id()
        self.counters = Counters()
        self.instances: list[tuple[str, float]] = []  # (id, last heartbeat, unix s)
        self.team_spend: dict[str, tuple[float, float]] = {}  # field -> (today, month) in Redis
        self.members: MemberSpend | None = None  # member keys: budgets judged on the team's spend
        self._verdicts: dict[str, Verdict | None] = {}  # to write (None: delete)
        self._sessions: dict[str, str] = {}  # to write
        self._limits_known: dict[str, Limits] = {}  # sent or adopted: not sent again
        self._limits_at: dict[str, float] = {}  # unix s of the newest limits known per account
        self._adopted: dict[str, tuple[str, float]] = {}  # account -> (by, at) of its verdict
        self._wake = asyncio.Event()
        self._gens: tuple[str, str, str] | None = None  # generations last read (None: read all)
        self._limits_read = -LIMITS_EVERY  # loop time limits were last read
        self._raw: dict[tuple[str, str], bytes | None] = {}  # (kind, account) -> value last seen

    # ---- PoolListener ---------------------------------------------------------------------

    def changed(self, member: Member, now: float, wall_now: float) -> None:
        health = member.health
        if health.state in SHARED_STATES and health.until is not None:
            until = wall_now + (health.until - now)
            verdict = Verdict(health.state, until, health.reason, self.id, wall_now)
            self._verdicts[member.name] = verdict
        elif health.state is State.HEALTHY:
            self._verdicts[member.name] = None
        else:
            return
        self._wake.set()

    def session(self, session: str, account: str) -> None:
        sessions = self._sessions
        sessions[session] = account
        if len(sessions) > MAX_PENDING_SESSIONS:  # Redis down for long: keep the newest
            del sessions[next(iter(sessions))]
        self._wake.set()

    # ---- the request path --------------------------------------------------------------------

    def add(
        self, account: str, usage: Mapping[str, int], usd: float, key_name: str | None = None
    ) -> None:
        """One request's usage and cost (from the ledger); sent with the next tick, at once
        when a budget depends on it (the team's total is what budgets are judged on)."""
        self.counters.add(account, usage, usd, key_name)
        member = self.pool.members.get(account)
        if key_name is not None or (
            member is not None
            and (
                member.account.budget_daily_usd is not None
                or member.account.budget_monthly_usd is not None
            )
        ):
            self._wake.set()

    async def recall(self, session: str) -> None:
        """A session unknown here: its account from Redis, if another instance served it."""
        pool = self.pool
        loop = asyncio.get_running_loop()
        if not self.client.up or pool.sticky.get(session, loop.time()) is not None:
            return
        try:
            async with asyncio.timeout(RECALL_WAIT):
                raw = await self.client.redis.get(self.keys.sticky(session))
        except ERRORS:
            return
        if raw:
            name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            if name in pool.members and pool.sticky.get(session, loop.time()) is None:
                pool.sticky.set(session, name, loop.time())

    def member_spend_today(self, key_name: str) -> float:
        """What the member key spent today across all instances (as of the last tick, plus
        what this instance has not sent yet)."""
        name = key_field(key_name)
        return self.team_spend.get(name, (0.0, 0.0))[0] + self.counters.unsent_usd(name)

    # ---- the task ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick until cancelled; while Redis is down, back off between attempts."""
        while True:
            if self.client.up:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK)
                await asyncio.sleep(MIN_SPACING)
            try:
                await self.tick()
            except Exception as exc:  # a bug or a foreign value must not end sharing silently
                log.exception("shared state: a tick failed; retrying")
                self.client.failed(exc)
            if not self.client.up:
                await asyncio.sleep(self.client.backoff.current)

    async def tick(self) -> bool:
        """One round trip: write what is pending, read what others decided, apply it."""
        self._wake.clear()
        client, pool = self.client, self.pool
        wall_now = time.time()
        names = list(pool.members)
        verdicts, sessions = dict(self._verdicts), dict(self._sessions)
        limits = self._limits_to_send(wall_now)
        batch = self.counters.freeze(wall_now)
        loop_now = asyncio.get_running_loop().time()
        limits_due = loop_now - self._limits_read >= LIMITS_EVERY
        pipe = client.redis.pipeline(transaction=False)
        queue_writes(pipe, self.keys, self.id, verdicts, sessions, limits, batch, wall_now)
        queue_read(pipe, self.keys, names, self._gens or ("", "", ""), limits_due, wall_now)
        try:
            async with asyncio.timeout(TICK_TIMEOUT):
                replies = await pipe.execute()
        except ERRORS as exc:
            self._gens = None  # Redis may come back empty: read everything again
            was_up = client.up
            client.failed(exc)
            if was_up:
                log.warning(
                    "shared state: Redis at %s is unreachable (%s); serving on local state, "
                    "retrying every %gs at most",
                    client.target.shown,
                    client.last_error,
                    client.backoff.most,
                )
            return False
        if not client.up:
            log.info("shared state: Redis at %s is reachable again", client.target.shown)
        client.ok()
        self._sent(verdicts, sessions, limits, batch)
        snapshot = parse(replies[-1])
        verdicts_gen, limits_gen, spend_gen = snapshot.gens
        if limits_due:
            self._limits_read = loop_now
        else:  # not read: the generation last read still stands
            limits_gen = "" if self._gens is None else self._gens[1]
        self._gens = (verdicts_gen, limits_gen, spend_gen)
        loop_now, wall_now = asyncio.get_running_loop().time(), time.time()
        if snapshot.verdicts is not None:
            self._adopt_verdicts(names, snapshot.verdicts, loop_now, wall_now)
        if snapshot.limits is not None:
            self._adopt_limits(names, snapshot.limits, loop_now, wall_now)
        if snapshot.day is not None and snapshot.month is not None:
            self._adopt_spend(snapshot.day, snapshot.month, loop_now, wall_now)
        instances = replies[-2]
        live = wall_now - K.HEARTBEAT_LIVE
        self.instances = [(i.decode(), s) for i, s in instances if s >= live]
        return True

    # ---- writes ------------------------------------------------------------------------------

    def _limits_to_send(self, wall_now: float) -> dict[str, Announced]:
        out: dict[str, Announced] = {}
        for name, member in self.pool.members.items():
            limits = member.limits
            if limits is not None and limits is not self._limits_known.get(name):
                out[name] = Announced(limits, self.id, wall_now)
        return out

    def _sent(
        self,
        verdicts: dict[str, Verdict | None],
        sessions: dict[str, str],
        limits: dict[str, Announced],
        batch: Batch | None,
    ) -> None:
        """Forget what was written, unless it changed again while the tick was in flight."""
        for name, verdict in verdicts.items():
            if self._verdicts.get(name, ...) is verdict:
                del self._verdicts[name]
        for session, account in sessions.items():
            if self._sessions.get(session) == account:
                del self._sessions[session]
        for name, announced in limits.items():
            self._limits_known[name] = announced.limits
            self._limits_at[name] = announced.at
        if batch is not None:
            self.counters.applied(batch)

    # ---- reads -------------------------------------------------------------------------------

    def _unchanged(self, kind: str, name: str, raw: bytes | None) -> bool:
        """Whether ``raw`` is what was read for ``name`` last time (not decoded again)."""
        key = (kind, name)
        if self._raw.get(key, b"") == raw:
            return True
        self._raw[key] = raw
        return False

    def _adopt_verdicts(
        self, names: list[str], raws: list[Any], now: float, wall_now: float
    ) -> None:
        for name, raw in zip(names, raws, strict=False):
            if self._unchanged("verdict", name, raw):
                continue
            verdict = decode_verdict(raw)
            if verdict is None or verdict.by == self.id:
                continue
            seen = (verdict.by, verdict.at)
            if self._adopted.get(name) == seen:
                continue
            self._adopted[name] = seen
            reason = f"{verdict.reason} (from instance {verdict.by})"
            until = now + (verdict.until - wall_now)
            self.pool.apply_shared_verdict(name, verdict.state, until, reason, now)

    def _adopt_limits(self, names: list[str], raws: list[Any], now: float, wall_now: float) -> None:
        pool = self.pool
        for name, raw in zip(names, raws, strict=False):
            if self._unchanged("limits", name, raw):
                continue
            announced = decode_announced(raw)
            if announced is None or announced.by == self.id:
                continue
            member = pool.members.get(name)
            if member is None or announced.at <= self._limits_at.get(name, 0.0):
                continue
            if member.limits is not None and member.limits is not self._limits_known.get(name):
                continue  # this instance heard newer limits itself since its last tick
            self._limits_at[name] = announced.at
            self._limits_known[name] = announced.limits
            pool.note_limits(member, announced.limits, now, wall_now)

    def _adopt_spend(
        self, day: dict[str, float], month: dict[str, float], now: float, wall_now: float
    ) -> None:
        """The team's spend today and this month; each account's budget judged on it."""
        totals = {name: (usd, month.get(name, 0.0)) for name, usd in day.items()}
        for name, usd in month.items():
            if name not in totals:
                totals[name] = (0.0, usd)
        self.team_spend = totals
        gate = self.members
        if gate is not None:  # raised to the team's total (never lowered: see accounts below)
            for name, (today, _) in totals.items():
                if name.startswith("k:"):
                    team = today + self.counters.unsent_usd(name)
                    more = team - gate.spent_today(name[2:], wall_now)
                    if more > 1e-9:
                        gate.add_spend(name[2:], more, wall_now)
        pool = self.pool
        for name, member in pool.members.items():
            today, month_usd = totals.get(account_field(name), (0.0, 0.0))
            if not today and not month_usd:
                continue
            unsent = self.counters.unsent_usd(account_field(name))
            spend = member.spend
            spend.roll(wall_now)
            spend.today = max(spend.today, today + unsent)
            spend.month = max(spend.month, month_usd + unsent)
            pool.check_budget(member, now, wall_now)


async def start(pool: AccountPool, target: Target) -> SharedSync:
    """The sync of ``pool`` through ``target``, its first tick done (or failed: Redis down is
    no reason not to serve), and set as the pool's listener."""
    sync = SharedSync(pool, SharedClient(target))
    pool.listener = sync
    if await sync.tick():
        log.info(
            "shared state: cluster %s shares through Redis at %s as %s",
            pool.cluster.name,
            target.shown,
            sync.id,
        )
    return sync


async def stop(sync: SharedSync) -> None:
    """A last tick (what is pending gets out, bounded), then the client closes."""
    sync.pool.listener = None
    if sync.client.up:
        await sync.tick()
    with contextlib.suppress(*ERRORS):
        await sync.client.close()
