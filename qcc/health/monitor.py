"""Active health checking: the embedded monitor task a running proxy owns.

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

from qcc.health.probe import ProbeResult, check_once
from qcc.health.state import State
from qcc.proxy.pool import Member
from qcc.proxy.runtime import Runtime
from qcc.routing.classify import Outcome, counts_against_health

log = logging.getLogger("qcc.health")

MAX_SLEEP = 1.0  # wake at least this often to notice reloads and new accounts


class HealthMonitor:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.probing: dict[str, asyncio.Task[None]] = {}

    def due(self, member: Member, now: float) -> bool:
        health = member.health
        if member.header is None or member.name in self.probing:
            return False
        if health.probe_due(now):
            return True
        idle_for = now - member.last_used
        return (
            health.state is State.HEALTHY and idle_for >= self.runtime.config.health.probe_interval
        )

    def next_wake(self, now: float) -> float:
        interval = self.runtime.config.health.probe_interval
        wake = now + MAX_SLEEP
        for member in self.runtime.pool.members.values():
            health = member.health
            if health.state in (State.EJECTED, State.AUTH_FAILED) and health.until is not None:
                wake = min(wake, health.until)
            elif health.state is State.HEALTHY:
                wake = min(wake, member.last_used + interval)
        return max(wake, now + 0.01)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for member in list(self.runtime.pool.members.values()):
                if member.header is not None and member.health.state is not State.DISABLED:
                    self.start_probe(member)
            while True:
                now = loop.time()
                for member in list(self.runtime.pool.members.values()):
                    if self.due(member, now):
                        self.start_probe(member)
                pool = self.runtime.pool
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.next_wake(loop.time()) - loop.time()):
                        await pool.out_of_rotation.wait()
                pool.out_of_rotation.clear()
        finally:
            for task in self.probing.values():
                task.cancel("health monitor stopping")
            for task in list(self.probing.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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
        rt = self.runtime
        loop = asyncio.get_running_loop()
        now = loop.time()
        member.health.begin_probe(now)  # half-open when due; a no-op for idle probes
        member.last_used = now
        assert member.header is not None
        result = await check_once(
            rt.client, member.account, member.header, rt.config.health.probe_timeout
        )
        apply_probe(member, result, loop.time())


def apply_probe(member: Member, result: ProbeResult, now: float) -> None:
    """Feed a probe's result into the account's state machine."""
    health = member.health
    before = health.state
    if not result.ok:
        member.stats.last_error = f"probe: {result.detail}"
        member.stats.last_error_at = time.time()
    if result.ok:
        health.record_success(now, f"probe ok ({result.detail})")
    elif result.outcome is Outcome.AUTH_FAILED:
        health.record_auth_failure(now, f"probe: {result.detail}")
    elif result.outcome is Outcome.RATE_LIMITED:
        health.record_rate_limited(now, now + (result.cooldown or 30.0), f"probe: {result.detail}")
    elif counts_against_health(result.outcome):
        health.record_failure(now, f"probe: {result.detail}")
    if health.state is not before:
        log.info("account %s: %s -> %s (%s)", member.name, before, health.state, health.reason)
