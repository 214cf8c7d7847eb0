"""The health monitor's probe, as the proxy runs it: ``check_once`` through the runtime's HTTP
client, its :class:`ProbeResult` turned into the :class:`Observation` the one health decision
takes."""

from __future__ import annotations

from qcc.accounts.member import Member
from qcc.accounts.monitor import Probe
from qcc.accounts.observe import Observation, Source
from qcc.health.probe import ProbeResult, check_member
from qcc.proxy.runtime import Runtime


def observation(result: ProbeResult) -> Observation:
    """A probe's result as an observation (its detail is qcc's words: method, path, status)."""
    return Observation(
        Source.PROBE,
        result.outcome,
        result.detail,
        status=result.status,
        cooldown=result.cooldown,
        ttfb=result.latency,
    )


def prober(runtime: Runtime) -> Probe:
    """The probe callable for :class:`qcc.accounts.monitor.HealthMonitor`."""

    async def probe(member: Member) -> Observation:
        timeout = runtime.config.health.probe_timeout
        result = await check_member(
            runtime.client, member.account, member.source, member.header, timeout
        )
        return observation(result)

    return probe
