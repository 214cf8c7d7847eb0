"""The one health decision: every outcome × source (traffic, probe) × origin (upstream, local)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from qcc.accounts.member import Member
from qcc.accounts.observe import Observation, Source, leaves_rotation, report
from qcc.config.model import Account, Credential, HealthSettings
from qcc.health.state import AccountHealth, State
from qcc.routing.classify import Outcome, counts_against_health

TOKEN = "oat01-TOKENTOKENTOKENTOKEN-777"
CLIENT = "client-key-0123456789abcdef"
SETTINGS = HealthSettings(
    failure_threshold=3, ejection_base=30.0, ejection_max=300.0, rate_limit_default=7.0
)
WALL = 1_700_000_000.0
COUNTING = [o for o in Outcome if counts_against_health(o)]
ALIVE = (Outcome.SUCCESS, Outcome.CLIENT_ERROR, Outcome.CAPABILITY)
UNPENALIZED = (*ALIVE, Outcome.EXHAUSTED)  # out of credit is not slow


def make_member(settings: HealthSettings = SETTINGS) -> Member:
    account = Account("main", "https://relay.example", Credential("auth_token", TOKEN))
    health = AccountHealth(settings, now=0.0, rng=random.Random(1))
    return Member(account, health, header=("authorization", f"Bearer {TOKEN}"))


def seen(
    outcome: Outcome,
    source: Source = Source.TRAFFIC,
    *,
    local: bool = False,
    reason: str | None = None,
    detail: str = "",
    status: int | None = None,
    cooldown: float | None = None,
    ttfb: float | None = None,
    client_secrets: tuple[str, ...] = (),
) -> Observation:
    words = f"said {outcome}" if reason is None else reason
    return Observation(
        source,
        outcome,
        words,
        detail=detail,
        status=status,
        cooldown=cooldown,
        ttfb=ttfb,
        local=local,
        client_secrets=client_secrets,
    )


# ---- the whole matrix, from a healthy account -----------------------------------------------

EXPECTED_STATE = {
    Outcome.SUCCESS: State.HEALTHY,
    Outcome.CLIENT_ERROR: State.HEALTHY,
    Outcome.RATE_LIMITED: State.RATE_LIMITED,
    Outcome.AUTH_FAILED: State.AUTH_FAILED,
    Outcome.EXHAUSTED: State.EXHAUSTED,
    Outcome.CAPABILITY: State.HEALTHY,
    **{o: State.HEALTHY for o in COUNTING},  # one failure of three
}


@pytest.mark.parametrize("source", list(Source))
@pytest.mark.parametrize("outcome", list(Outcome))
def test_upstream_outcome(outcome: Outcome, source: Source) -> None:
    member = make_member()
    change = report(member, seen(outcome, source, ttfb=0.2), 10.0, WALL)
    health, stats = member.health, member.stats
    assert health.state is EXPECTED_STATE[outcome]
    assert (change is not None) == (health.state is not State.HEALTHY)
    if change is not None:
        assert (change.from_state, change.to_state, change.at) == (
            State.HEALTHY,
            health.state,
            10.0,
        )
    assert health.consecutive_failures == (1 if outcome in COUNTING else 0)
    traffic = source is Source.TRAFFIC
    # Request counters are traffic's; a probe is not a request.
    assert stats.outcomes == ({outcome: 1} if traffic else {})
    assert stats.failures == (1 if traffic and outcome not in ALIVE else 0)
    assert stats.ttfb.count == (1 if traffic and outcome in ALIVE else 0)
    assert stats.local_errors == 0
    # Only a successful request's time feeds the score; every failure but a client's penalizes.
    assert member.latency.ewma == (0.2 if traffic and outcome is Outcome.SUCCESS else None)
    assert (member.latency.score(10.0) > 0.2) == (outcome not in UNPENALIZED)
    if outcome in ALIVE:
        assert stats.last_error is None
    else:
        prefix = "" if traffic else "probe: "
        assert stats.last_error == f"{prefix}said {outcome}"
        assert stats.last_error_at == WALL
        if change is not None:
            assert health.reason.startswith(f"{prefix}said {outcome}")


@pytest.mark.parametrize("source", list(Source))
@pytest.mark.parametrize("outcome", list(Outcome))
def test_local_error_is_recorded_but_never_held_against_the_account(
    outcome: Outcome, source: Source
) -> None:
    member = make_member()
    for i in range(10):
        assert (
            report(member, seen(outcome, source, local=True, reason="reused conn"), i, WALL) is None
        )
    health, stats = member.health, member.stats
    assert (health.state, health.consecutive_failures, health.transitions) == (
        State.HEALTHY,
        0,
        type(health.transitions)(maxlen=health.transitions.maxlen),
    )
    assert stats.local_errors == 10
    assert (stats.failures, stats.outcomes, stats.ttfb.count) == (0, {}, 0)
    assert member.latency.score(10.0) == 0.0
    assert stats.last_error is not None and stats.last_error.startswith("local error (not counted)")


# ---- success, client errors, ejection counting ----------------------------------------------


@pytest.mark.parametrize("source", list(Source))
def test_success_resets_consecutive_failures(source: Source) -> None:
    member = make_member()
    for t in (1.0, 2.0):
        report(member, seen(Outcome.SERVER_ERROR, source), t, WALL)
    assert member.health.consecutive_failures == 2
    report(member, seen(Outcome.SUCCESS, source), 3.0, WALL)
    assert member.health.consecutive_failures == 0
    for t in (4.0, 5.0):
        report(member, seen(Outcome.TIMEOUT, source), t, WALL)
    assert member.health.state is State.HEALTHY  # 2 in a row, not 4


def test_traffic_client_error_is_alive_but_not_a_success() -> None:
    """A 400 passes through without penalty, and does not wipe the failures before it."""
    member = make_member()
    report(member, seen(Outcome.SERVER_ERROR), 1.0, WALL)
    report(member, seen(Outcome.NETWORK), 2.0, WALL)
    assert report(member, seen(Outcome.CLIENT_ERROR, status=400), 3.0, WALL) is None
    change = report(member, seen(Outcome.OVERLOADED), 4.0, WALL)
    assert change is not None and change.to_state is State.EJECTED
    assert leaves_rotation(change)
    assert change.reason == "3 consecutive failures: said overloaded"


@pytest.mark.parametrize("source", list(Source))
@pytest.mark.parametrize("outcome", COUNTING)
def test_counting_outcomes_eject_at_the_threshold(outcome: Outcome, source: Source) -> None:
    member = make_member()
    changes = [report(member, seen(outcome, source), t, WALL) for t in (1.0, 2.0, 3.0)]
    assert changes[:2] == [None, None]
    assert leaves_rotation(changes[2]) and member.health.state is State.EJECTED
    assert member.health.until is not None and 3.0 + 27.0 <= member.health.until <= 3.0 + 33.0


def test_probe_and_traffic_failures_count_together() -> None:
    member = make_member()
    report(member, seen(Outcome.NETWORK, Source.PROBE), 1.0, WALL)
    report(member, seen(Outcome.SERVER_ERROR), 2.0, WALL)
    report(member, seen(Outcome.TIMEOUT, Source.PROBE), 3.0, WALL)
    assert member.health.state is State.EJECTED


# ---- rate limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("source", list(Source))
def test_rate_limited_rests_for_the_announced_cooldown(source: Source) -> None:
    member = make_member()
    change = report(member, seen(Outcome.RATE_LIMITED, source, cooldown=42.0), 10.0, WALL)
    assert change is not None and change.to_state is State.RATE_LIMITED
    assert not leaves_rotation(change)  # not a health failure: no probe needed
    assert member.health.until == 52.0
    assert member.health.consecutive_failures == 0


@pytest.mark.parametrize("source", list(Source))
def test_rate_limited_without_cooldown_rests_for_the_configured_default(source: Source) -> None:
    """The three copies disagreed (0 s, 30 s, 30 s); now every one reads the config."""
    member = make_member()
    report(member, seen(Outcome.RATE_LIMITED, source), 10.0, WALL)
    assert member.health.until == 10.0 + SETTINGS.rate_limit_default
    assert not member.health.usable(16.9)
    assert member.health.usable(17.0)
    assert HealthSettings().rate_limit_default == 5.0


def test_rate_limit_default_follows_a_reload() -> None:
    member = make_member()
    member.health.update_settings(replace(SETTINGS, rate_limit_default=2.0))
    report(member, seen(Outcome.RATE_LIMITED), 10.0, WALL)
    assert member.health.until == 12.0


# ---- auth failures and half-open probes -----------------------------------------------------


@pytest.mark.parametrize("source", list(Source))
def test_auth_failed_is_out_until_a_probe_succeeds(source: Source) -> None:
    member = make_member()
    change = report(member, seen(Outcome.AUTH_FAILED, source, status=401), 1.0, WALL)
    assert leaves_rotation(change) and member.health.state is State.AUTH_FAILED
    assert not member.health.usable(1.0)
    until = member.health.until
    assert until is not None
    assert member.health.begin_probe(until)
    change = report(member, seen(Outcome.SUCCESS, Source.PROBE), until + 0.1, WALL)
    assert change is not None and change.to_state is State.HEALTHY
    assert member.health.reason == f"probe ok (said {Outcome.SUCCESS})"


@pytest.mark.parametrize("alive", ALIVE)
def test_probe_success_ends_an_ejection(alive: Outcome) -> None:
    """Half-open: one probe decides; a probe's 400 proves the account up, like a 200."""
    member = make_member()
    for t in (1.0, 2.0, 3.0):
        report(member, seen(Outcome.SERVER_ERROR), t, WALL)
    health = member.health
    assert health.state is State.EJECTED and health.until is not None
    assert health.begin_probe(health.until) and health.state is State.PROBING
    change = report(member, seen(alive, Source.PROBE), health.until, WALL)
    assert change is not None and (change.from_state, change.to_state) == (
        State.PROBING,
        State.HEALTHY,
    )
    assert (health.ejections, health.consecutive_failures) == (0, 0)


def test_failed_probe_ejects_again_for_longer() -> None:
    member = make_member()
    for t in (1.0, 2.0, 3.0):
        report(member, seen(Outcome.SERVER_ERROR), t, WALL)
    health = member.health
    first = health.until
    assert first is not None and health.begin_probe(first)
    change = report(member, seen(Outcome.NETWORK, Source.PROBE, reason="refused"), first, WALL)
    assert change is not None and change.to_state is State.EJECTED
    assert change.reason == "probe failed: probe: refused"
    assert health.until is not None and health.until - first >= 60 * 0.9


def test_local_error_of_a_half_open_probe_decides_nothing() -> None:
    member = make_member()
    for t in (1.0, 2.0, 3.0):
        report(member, seen(Outcome.SERVER_ERROR), t, WALL)
    health = member.health
    assert health.until is not None and health.begin_probe(health.until)
    assert (
        report(member, seen(Outcome.NETWORK, Source.PROBE, local=True), health.until, WALL) is None
    )
    assert health.state is State.PROBING and health.ejections == 1


def test_disabled_account_keeps_its_state() -> None:
    member = make_member()
    member.health.disable(0.0)
    for outcome in Outcome:
        for source in Source:
            assert report(member, seen(outcome, source, cooldown=9.0), 1.0, WALL) is None
    assert member.health.state is State.DISABLED


# ---- what is kept is scrubbed ---------------------------------------------------------------


@pytest.mark.parametrize("source", list(Source))
def test_last_error_and_reason_are_scrubbed(source: Source) -> None:
    member = make_member()
    observation = seen(
        Outcome.AUTH_FAILED,
        source,
        reason=f"HTTP 401 {TOKEN}",
        detail=f"bad token Bearer {TOKEN}, you sent {CLIENT}",
        client_secrets=(CLIENT,),
    )
    assert TOKEN not in repr(observation) and CLIENT not in repr(observation)
    report(member, observation, 1.0, WALL)
    kept = member.stats.last_error or ""
    assert TOKEN not in kept and CLIENT not in kept
    assert kept.endswith("HTTP 401 [redacted]: bad token [redacted], you sent [redacted]")
    assert TOKEN not in member.health.reason
    assert member.health.begin_probe(member.health.until or 0.0)
    report(member, seen(Outcome.SUCCESS, Source.PROBE, reason=f"echo {TOKEN}"), 99.0, WALL)
    assert member.health.reason == "probe ok (echo [redacted])"


def test_reason_defaults_to_the_status() -> None:
    member = make_member()
    report(member, Observation(Source.TRAFFIC, Outcome.SERVER_ERROR, status=502), 1.0, WALL)
    assert member.stats.last_error == "HTTP 502"
    report(member, Observation(Source.PROBE, Outcome.TIMEOUT), 2.0, WALL)
    assert member.stats.last_error == "probe: timeout"


# ---- exhausted: only a real request's success brings it back --------------------------------


def test_exhausted_is_left_by_the_trial_request_never_by_a_probe() -> None:
    member = make_member(replace(SETTINGS, exhausted_recheck=60.0))
    change = report(member, seen(Outcome.EXHAUSTED, cooldown=None), 10.0, WALL)
    health = member.health
    assert change is not None and health.state is State.EXHAUSTED
    assert health.until == 70.0  # exhausted_recheck
    assert not leaves_rotation(change)  # nothing for the monitor to probe
    assert health.begin_request(70.0)  # the trial
    report(member, seen(Outcome.SUCCESS, Source.PROBE), 71.0, WALL)
    assert health.state is State.EXHAUSTED  # a free probe proves nothing about credit
    report(member, seen(Outcome.SUCCESS), 72.0, WALL)
    assert health.state is State.HEALTHY


def test_exhausted_with_an_announced_rest_and_the_rule_that_matched() -> None:
    member = make_member()
    obs = Observation(Source.TRAFFIC, Outcome.EXHAUSTED, "HTTP 400 out", cooldown=300.0, rule="r1")
    report(member, obs, 10.0, WALL)
    assert member.health.until == 310.0
    assert member.stats.last_rule == "r1"
    assert member.stats.failures == 1 and member.health.consecutive_failures == 0
