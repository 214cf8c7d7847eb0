"""The one health decision: what an observed outcome does to an account.

Traffic (``qcc.proxy.forward``) and probes (``qcc.accounts.monitor``) report what they saw as an
:class:`Observation`; :func:`report` is the only code that turns it into the account's health
state, stats counters, ``last_error`` and latency score. Pure and synchronous: the caller passes
``now`` (monotonic) and ``wall_now`` (unix seconds, for ``last_error_at``).

    outcome                       traffic                          probe
    success                       healthy; failures reset;         healthy (half-open: ends an
                                  TTFB feeds the latency score     ejection or auth failure;
                                  (an exhausted account: only its  never an exhaustion: a free
                                  trial request's success)         probe says nothing of credit)
    client_error (4xx)            alive: counted, no health change healthy (a 400 proves the
                                  (not a success: failures stay)   account is up)
    capability (rule fail_over)   another account is tried; no health change, no penalty
    rate_limited (429)            rate_limited for the announced cool-down, else
                                  ``health.rate_limit_default``; latency penalty
    auth_failed (401/403)         auth_failed until a probe succeeds; latency penalty
    exhausted (rule exhausted)    exhausted until the announced reset, else ``cooldown``, else
                                  ``health.exhausted_recheck``; then one trial request decides.
                                  Not a health failure, no latency penalty
    overloaded, server_error,     one more consecutive failure (ejected at
    network, timeout,             ``health.failure_threshold``; a failed half-open probe ejects
    stream_error                  again, for longer); latency penalty
    any, with ``local=True``      qcc's own side failed (all of the account's connection slots
                                  busy, qcc out of file descriptors): ``local_errors`` and
                                  ``last_error`` only; never counts against the account

An observation naming the ``rule`` its error body matched sets the account's ``last_rule``.

Traffic alone feeds the request counters (``outcomes``, ``failures``) and the TTFB histogram;
a probe's time is not a generation's, so it never feeds the latency score.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from qcc.accounts.member import Member
from qcc.health.state import State, Transition
from qcc.redact import scrub
from qcc.routing.classify import Outcome, counts_against_health

_ALIVE = frozenset({Outcome.SUCCESS, Outcome.CLIENT_ERROR, Outcome.CAPABILITY})  # probes
_NO_PENALTY = frozenset({Outcome.CLIENT_ERROR, Outcome.CAPABILITY})  # traffic: no health change
_OUT = (State.EJECTED, State.AUTH_FAILED)


class Source(StrEnum):
    TRAFFIC = "traffic"
    PROBE = "probe"


class Observation(NamedTuple):
    """One outcome of one attempt or probe, as the observer saw it. Immutable (a named tuple:
    built once per request on the hot path, where it costs a third of a frozen dataclass).

    ``reason`` is in qcc's words and becomes the health reason; ``detail`` is what the account
    said, kept in ``last_error`` only. Both are scrubbed (of the account's credential and of
    ``client_secrets``) before anything is stored, and left out of ``repr``. ``cooldown`` is the
    rest the account announced (``retry-after`` or reset headers), None when it announced none.
    ``local`` marks a failure on qcc's side (see the module's table). ``rule`` names the
    error-body rule that decided the outcome (``built-in: credit-balance``), if one did.
    """

    source: Source
    outcome: Outcome
    reason: str = ""
    detail: str = ""
    status: int | None = None
    cooldown: float | None = None
    ttfb: float | None = None
    local: bool = False
    client_secrets: tuple[str, ...] = ()
    rule: str = ""

    def __repr__(self) -> str:  # never the reason, detail or secrets: they are not scrubbed yet
        return (
            f"Observation(source={self.source.value}, outcome={self.outcome.value}, "
            f"status={self.status}, cooldown={self.cooldown}, ttfb={self.ttfb}, "
            f"local={self.local}, rule={self.rule!r})"
        )


def leaves_rotation(change: Transition | None) -> bool:
    """Whether the account just went out until a probe brings it back."""
    return change is not None and change.to_state in _OUT


def report(member: Member, obs: Observation, now: float, wall_now: float) -> Transition | None:
    """Apply ``obs`` to ``member``; the state transition it caused, if any."""
    health = member.health
    before = health.state
    outcome = obs.outcome
    if obs.local:
        member.stats.local_errors += 1
        _keep_error(member, obs, wall_now)
        return None
    if obs.source is Source.TRAFFIC:
        stats = member.stats
        stats.outcomes[outcome] += 1
        if outcome is Outcome.SUCCESS:  # the hot path: one request in most
            ttfb = obs.ttfb
            if ttfb is not None:
                stats.ttfb.observe(ttfb)
                member.latency.observe(ttfb, now)
            health.record_success(now)
            return health.transitions[-1] if health.state is not before else None
        if obs.rule:
            stats.last_rule = obs.rule
        if outcome in _NO_PENALTY:  # the request was at fault, or needs what others have
            if obs.ttfb is not None:
                stats.ttfb.observe(obs.ttfb)
            return None
        stats.failures += 1
    elif outcome in _ALIVE:
        words = _words(obs)
        health.record_success(now, scrub(f"probe ok ({words})", _secrets(member, obs)), probe=True)
        return _change(member, before)
    reason = _keep_error(member, obs, wall_now)
    if outcome is Outcome.EXHAUSTED:  # not slow, not broken: out of money until it resets
        rest = obs.cooldown
        health.record_exhausted(now, None if rest is None else now + rest, reason)
        return _change(member, before)
    member.latency.penalize(now)
    if outcome is Outcome.RATE_LIMITED:
        rest = obs.cooldown
        if rest is None:
            rest = health.settings.rate_limit_default
        health.record_rate_limited(now, now + rest, reason)
    elif outcome is Outcome.AUTH_FAILED:
        health.record_auth_failure(now, reason)
    elif counts_against_health(outcome):
        health.record_failure(now, reason)
    return _change(member, before)


def _words(obs: Observation) -> str:
    if obs.reason:
        return obs.reason
    return f"HTTP {obs.status}" if obs.status is not None else str(obs.outcome)


def _secrets(member: Member, obs: Observation) -> tuple[str, ...]:
    return member.secrets() + obs.client_secrets


def _keep_error(member: Member, obs: Observation, wall_now: float) -> str:
    """Store ``last_error``; the scrubbed health reason."""
    secrets = _secrets(member, obs)
    reason = scrub(_words(obs), secrets)
    if obs.source is Source.PROBE:
        reason = f"probe: {reason}"
    kept = f"{reason}: {scrub(obs.detail, secrets)}" if obs.detail else reason
    stats = member.stats
    stats.last_error = f"local error (not counted): {kept}" if obs.local else kept
    stats.last_error_at = wall_now
    return reason


def _change(member: Member, before: State) -> Transition | None:
    health = member.health
    return health.transitions[-1] if health.state is not before else None
