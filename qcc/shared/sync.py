"""The one owned task per cluster that shares the pool through Redis, and the request path's
one optional lookup.

Each tick (every :data:`TICK` seconds, or at most :data:`MIN_SPACING` after a new verdict or
session binding) sends one pipeline — one round trip:

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
from typing import Any

from redis.asyncio.client import Pipeline

from qcc.accounts.member import Member
from qcc.accounts.pool import AccountPool
from qcc.health.state import State
from qcc.routing.ratelimit import Limits
from qcc.shared import keys as K
from qcc.shared.client import ERRORS, SharedClient
from qcc.shared.counters import APPLY, Batch, Counters, account_field, key_field
from qcc.shared.facts import SHARED_STATES, Announced, Verdict, decode_announced, decode_verdict
from qcc.shared.settings import Target

log = logging.getLogger("qcc.shared")

TICK = 0.25
MIN_SPACING = 0.02  # a burst of new sessions is written in one go, at most 50 times a second
TICK_TIMEOUT = 0.5
RECALL_WAIT = 0.05
MAX_PENDING_SESSIONS = 10_000


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
        self._verdicts: dict[str, Verdict | None] = {}  # to write (None: delete)
        self._sessions: dict[str, str] = {}  # to write
        self._limits_known: dict[str, Limits] = {}  # sent or adopted: not sent again
        self._limits_at: dict[str, float] = {}  # unix s of the newest limits known per account
        self._adopted: dict[str, tuple[str, float]] = {}  # account -> (by, at) of its verdict
        self._wake = asyncio.Event()

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
            await self.tick()
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
        pipe = client.redis.pipeline(transaction=False)
        self._writes(pipe, verdicts, sessions, limits, batch, wall_now)
        pipe.mget([self.keys.verdict(n) for n in names] or ["-"])
        pipe.mget([self.keys.limits(n) for n in names] or ["-"])
        pipe.hgetall(self.keys.day("spend", wall_now))
        pipe.hgetall(self.keys.month(wall_now))
        try:
            async with asyncio.timeout(TICK_TIMEOUT):
                replies = await pipe.execute()
        except ERRORS as exc:
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
        verdict_raw, limits_raw, day, month = replies[-4:]
        instances = replies[-5]
        loop_now = asyncio.get_running_loop().time()
        self._adopt_verdicts(names, verdict_raw, loop_now, time.time())
        self._adopt_limits(names, limits_raw, loop_now, time.time())
        self._adopt_spend(day, month, loop_now, time.time())
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

    def _writes(
        self,
        pipe: Pipeline,
        verdicts: dict[str, Verdict | None],
        sessions: dict[str, str],
        limits: dict[str, Announced],
        batch: Batch | None,
        wall_now: float,
    ) -> None:
        keys = self.keys
        for name, verdict in verdicts.items():
            if verdict is None:
                pipe.delete(keys.verdict(name))
            else:
                ttl = max(int((verdict.until - wall_now) * 1000), K.VERDICT_MIN_TTL_MS)
                pipe.set(keys.verdict(name), verdict.encode(), px=ttl)
        for name, announced in limits.items():
            pipe.set(keys.limits(name), announced.encode(), ex=K.LIMITS_TTL)
        for session, account in sessions.items():
            pipe.set(keys.sticky(session), account, ex=K.STICKY_TTL)
        if batch is not None:  # EVAL, not EVALSHA: no extra round trip to load the script
            pipe.eval(
                APPLY,
                4,
                keys.batch(batch.id),
                keys.day("usage", batch.wall),
                keys.day("spend", batch.wall),
                keys.month(batch.wall),
                *batch.args(K.BATCH_TTL, K.DAY_TTL, K.MONTH_TTL),
            )
        pipe.zadd(keys.instances, {self.id: wall_now})
        pipe.zremrangebyscore(keys.instances, "-inf", wall_now - K.INSTANCE_TTL)
        pipe.expire(keys.instances, K.INSTANCE_TTL)
        pipe.zrange(keys.instances, 0, -1, withscores=True)

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

    def _adopt_verdicts(
        self, names: list[str], raws: list[Any], now: float, wall_now: float
    ) -> None:
        for name, raw in zip(names, raws, strict=False):
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
        self, day: dict[bytes, bytes], month: dict[bytes, bytes], now: float, wall_now: float
    ) -> None:
        """The team's spend today and this month; each account's budget judged on it."""
        totals: dict[str, tuple[float, float]] = {}
        for field, value in day.items():
            totals[field.decode()] = (float(value), 0.0)
        for field, value in month.items():
            name = field.decode()
            totals[name] = (totals.get(name, (0.0, 0.0))[0], float(value))
        self.team_spend = totals
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
