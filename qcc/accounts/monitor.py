"""Active health checking: the embedded monitor task a running proxy owns.

It schedules probes; how an account is probed is the proxy's business (the ``probe`` callable it
is given), and what a probe's outcome means is :func:`qcc.accounts.observe.report`'s.

* every account is probed once at start-up, so ``/health`` is true before traffic arrives;
* an ejected or auth-failed account is probed the moment its ejection time is up (half-open:
  that one probe decides);
* an idle account is probed every ``health.probe_interval`` seconds;
* probes run concurrently, each with its own timeout: a hung account never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from qcc.accounts.member import Member
from qcc.accounts.observe import Observation
from qcc.accounts.pool import AccountPool
from qcc.health.state import State

log = logging.getLogger("qcc.health")

MAX_SLEEP = 1.0  # wake at least this often to notice reloads and new accounts

Probe = Callable[[Member], Awaitable[Observation]]
"""Probe one account (its ``header`` is set); bounded by the probe timeout, never raises."""


class HealthMonitor:
    """Probes the accounts of ``pool`` with ``probe``; settings are read from the pool, so a
    reloaded ``[health]`` table applies at the next decision."""

    def __init__(self, pool: AccountPool, probe: Probe) -> None:
        self.pool = pool
        self.check = probe
        self.probing: dict[str, asyncio.Task[None]] = {}
        self.running = False  # run() owns the probe tasks only while it runs

    def due(self, member: Member, now: float) -> bool:
        health = member.health
        if member.header is None or member.name in self.probing:
            return False
        if health.probe_due(now):
            return True
        idle_for = now - member.last_used
        return (
            health.state is State.HEALTHY and idle_for >= self.pool.health_settings.probe_interval
        )

    def next_wake(self, now: float) -> float:
        interval = self.pool.health_settings.probe_interval
        wake = now + MAX_SLEEP
        for member in self.pool.members.values():
            health = member.health
            if health.state in (State.EJECTED, State.AUTH_FAILED) and health.until is not None:
                wake = min(wake, health.until)
            elif health.state is State.HEALTHY:
                wake = min(wake, member.last_used + interval)
        return max(wake, now + 0.01)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.running = True
        try:
            for member in list(self.pool.members.values()):
                if member.header is not None and member.health.state is not State.DISABLED:
                    self.start_probe(member)
            while True:
                now = loop.time()
                for member in list(self.pool.members.values()):
                    if self.due(member, now):
                        self.start_probe(member)
                pool = self.pool
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.next_wake(loop.time()) - loop.time()):
                        await pool.out_of_rotation.wait()
                pool.out_of_rotation.clear()
        finally:
            self.running = False
            for task in self.probing.values():
                task.cancel("health monitor stopping")
            for task in list(self.probing.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def probe_now(self, name: str) -> bool:
        """Probe account ``name`` now, out of schedule (the dashboard's "probe now"); a probe
        already running for it counts. False when the monitor is not running, or the account is
        unknown, disabled or has no credential."""
        member = self.pool.members.get(name)
        if (
            not self.running
            or member is None
            or member.header is None
            or member.health.state is State.DISABLED
        ):
            return False
        if name not in self.probing:
            self.start_probe(member)
        return True

    def start_probe(self, member: Member) -> None:
        task = asyncio.get_running_loop().create_task(
            self.probe(member), name=f"qcc-probe-{member.name}"
        )
        self.probing[member.name] = task
        name = member.name

        def forget(_task: asyncio.Task[None]) -> None:
            self.probing.pop(name, None)

        task.add_done_callback(forget)

    async def probe(self, member: Member) -> None:
        loop = asyncio.get_running_loop()
        self.pool.begin_probe(member, loop.time())
        observation = await self.check(member)
        self.pool.report(member, observation, loop.time(), time.time())
