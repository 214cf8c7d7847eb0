from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from qcc.config.model import HealthSettings
from qcc.health.state import MAX_TRANSITIONS, AccountHealth, State, Transition

SETTINGS = HealthSettings(failure_threshold=3, ejection_base=30.0, ejection_max=300.0)


class FixedJitter(random.Random):
    """An rng whose jitter factor is chosen by the test."""

    def __init__(self, factor: float = 1.0) -> None:
        super().__init__(0)
        self.factor = factor

    def uniform(self, a: float, b: float) -> float:
        assert (a, b) == (0.9, 1.1)
        return self.factor


def health(factor: float = 1.0, settings: HealthSettings = SETTINGS, **kw: bool) -> AccountHealth:
    return AccountHealth(settings, now=0.0, rng=FixedJitter(factor), **kw)


def eject(h: AccountHealth, now: float) -> None:
    for _ in range(h.settings.failure_threshold):
        h.record_failure(now, "HTTP 503")


# ---- the transition table ------------------------------------------------------------------


def _healthy(h: AccountHealth) -> None:
    pass


def _ejected(h: AccountHealth) -> None:
    eject(h, 0.0)


def _probing(h: AccountHealth) -> None:
    eject(h, 0.0)
    assert h.begin_probe(30.0)


def _rate_limited(h: AccountHealth) -> None:
    h.record_rate_limited(0.0, 50.0, "HTTP 429")


def _auth_failed(h: AccountHealth) -> None:
    h.record_auth_failure(0.0, "HTTP 401")


def _disabled(h: AccountHealth) -> None:
    h.disable(0.0)


def _exhausted(h: AccountHealth) -> None:
    h.record_exhausted(0.0, 50.0, "credit balance is too low")


SETUPS: dict[State, Callable[[AccountHealth], None]] = {
    State.HEALTHY: _healthy,
    State.EJECTED: _ejected,
    State.PROBING: _probing,
    State.RATE_LIMITED: _rate_limited,
    State.AUTH_FAILED: _auth_failed,
    State.DISABLED: _disabled,
    State.EXHAUSTED: _exhausted,
}

EVENTS: dict[str, Callable[[AccountHealth], None]] = {
    "success": lambda h: h.record_success(40.0),
    "failure": lambda h: h.record_failure(40.0, "HTTP 502"),
    "429": lambda h: h.record_rate_limited(40.0, 100.0, "HTTP 429"),
    "401": lambda h: h.record_auth_failure(40.0, "HTTP 401"),
    "disable": lambda h: h.disable(40.0),
    "enable": lambda h: h.enable(40.0),
    "probe-success": lambda h: h.record_success(40.0, "probe ok", probe=True),
    "exhausted": lambda h: h.record_exhausted(40.0, None, "credit balance is too low"),
    "reset": lambda h: h.reset(40.0, "enabled by the user"),
}


@pytest.mark.parametrize(
    ("start", "event", "end"),
    [
        (State.HEALTHY, "success", State.HEALTHY),
        (State.HEALTHY, "failure", State.HEALTHY),  # below the threshold
        (State.HEALTHY, "429", State.RATE_LIMITED),
        (State.HEALTHY, "401", State.AUTH_FAILED),
        (State.HEALTHY, "disable", State.DISABLED),
        (State.HEALTHY, "enable", State.HEALTHY),
        (State.EJECTED, "success", State.HEALTHY),
        (State.EJECTED, "failure", State.EJECTED),
        (State.EJECTED, "429", State.EJECTED),
        (State.EJECTED, "401", State.AUTH_FAILED),
        (State.EJECTED, "disable", State.DISABLED),
        (State.PROBING, "success", State.HEALTHY),
        (State.PROBING, "failure", State.EJECTED),
        (State.PROBING, "429", State.RATE_LIMITED),
        (State.PROBING, "401", State.AUTH_FAILED),
        (State.PROBING, "disable", State.DISABLED),
        (State.RATE_LIMITED, "success", State.HEALTHY),
        (State.RATE_LIMITED, "failure", State.RATE_LIMITED),  # below the threshold
        (State.RATE_LIMITED, "429", State.RATE_LIMITED),
        (State.RATE_LIMITED, "401", State.AUTH_FAILED),
        (State.RATE_LIMITED, "disable", State.DISABLED),
        (State.AUTH_FAILED, "success", State.HEALTHY),
        (State.AUTH_FAILED, "failure", State.AUTH_FAILED),
        (State.AUTH_FAILED, "429", State.AUTH_FAILED),
        (State.AUTH_FAILED, "401", State.AUTH_FAILED),
        (State.AUTH_FAILED, "disable", State.DISABLED),
        (State.DISABLED, "success", State.DISABLED),
        (State.DISABLED, "failure", State.DISABLED),
        (State.DISABLED, "429", State.DISABLED),
        (State.DISABLED, "401", State.DISABLED),
        (State.DISABLED, "enable", State.HEALTHY),
        # probes' successes count like any other, except for an exhausted account
        (State.HEALTHY, "probe-success", State.HEALTHY),
        (State.EJECTED, "probe-success", State.HEALTHY),
        (State.PROBING, "probe-success", State.HEALTHY),
        (State.AUTH_FAILED, "probe-success", State.HEALTHY),
        (State.DISABLED, "probe-success", State.DISABLED),
        # exhausted: entered from anywhere but disabled...
        (State.HEALTHY, "exhausted", State.EXHAUSTED),
        (State.EJECTED, "exhausted", State.EXHAUSTED),
        (State.PROBING, "exhausted", State.EXHAUSTED),
        (State.RATE_LIMITED, "exhausted", State.EXHAUSTED),
        (State.AUTH_FAILED, "exhausted", State.EXHAUSTED),
        (State.DISABLED, "exhausted", State.DISABLED),
        # ...and left only by a trial's success (below), a 401/403, disable or reset
        (State.EXHAUSTED, "success", State.EXHAUSTED),  # no trial in flight: proves nothing
        (State.EXHAUSTED, "probe-success", State.EXHAUSTED),
        (State.EXHAUSTED, "failure", State.EXHAUSTED),
        (State.EXHAUSTED, "429", State.EXHAUSTED),
        (State.EXHAUSTED, "401", State.AUTH_FAILED),
        (State.EXHAUSTED, "exhausted", State.EXHAUSTED),
        (State.EXHAUSTED, "disable", State.DISABLED),
        (State.EXHAUSTED, "enable", State.EXHAUSTED),
        # reset: healthy from anything the user has not disabled
        (State.HEALTHY, "reset", State.HEALTHY),
        (State.EJECTED, "reset", State.HEALTHY),
        (State.PROBING, "reset", State.HEALTHY),
        (State.RATE_LIMITED, "reset", State.HEALTHY),
        (State.AUTH_FAILED, "reset", State.HEALTHY),
        (State.EXHAUSTED, "reset", State.HEALTHY),
        (State.DISABLED, "reset", State.DISABLED),
    ],
)
def test_transition_table(start: State, event: str, end: State) -> None:
    h = health()
    SETUPS[start](h)
    assert h.state is start
    before = len(h.transitions)
    EVENTS[event](h)
    assert h.state is end
    if end is start:
        assert len(h.transitions) == before
    else:
        assert h.transitions[-1] == Transition(40.0, start, end, h.reason)
        assert h.since == 40.0


# ---- ejection ------------------------------------------------------------------------------


def test_threshold_ejects_with_reason() -> None:
    h = health()
    h.record_failure(1.0, "HTTP 500")
    h.record_failure(2.0, "timeout")
    assert (h.state, h.consecutive_failures) == (State.HEALTHY, 2)
    h.record_failure(3.0, "HTTP 529")
    assert h.state is State.EJECTED
    assert h.reason == "3 consecutive failures: HTTP 529"
    assert (h.ejections, h.until, h.since) == (1, 33.0, 3.0)
    assert not h.usable(3.0)


def test_success_resets_consecutive_failures() -> None:
    h = health()
    h.record_failure(1.0, "x")
    h.record_failure(2.0, "x")
    h.record_success(3.0)
    h.record_failure(4.0, "x")
    h.record_failure(5.0, "x")
    assert h.state is State.HEALTHY


def test_ejection_grows_and_is_capped() -> None:
    h = health()
    eject(h, 0.0)
    durations = [h.until]
    now = 0.0
    for _ in range(12):
        assert h.until is not None
        now = h.until
        assert h.probe_due(now)
        assert h.begin_probe(now)
        h.record_failure(now, "still down")
        assert h.state is State.EJECTED
        assert h.until is not None
        durations.append(h.until - now)
    assert durations[:11] == [
        30.0,
        60.0,
        90.0,
        120.0,
        150.0,
        180.0,
        210.0,
        240.0,
        270.0,
        300.0,
        300.0,
    ]
    assert h.ejections == 13
    assert h.ejection_seconds() == 300.0


@pytest.mark.parametrize(("factor", "expected"), [(0.9, 27.0), (1.1, 33.0)])
def test_jitter_bounds(factor: float, expected: float) -> None:
    h = health(factor)
    eject(h, 0.0)
    assert h.until == pytest.approx(expected)


def test_jitter_never_exceeds_max() -> None:
    h = health(1.1, HealthSettings(ejection_base=30.0, ejection_max=30.0))
    eject(h, 0.0)
    assert h.until == 30.0


def test_real_rng_jitter_stays_in_bounds() -> None:
    for seed in range(50):
        h = AccountHealth(SETTINGS, rng=random.Random(seed))
        eject(h, 0.0)
        assert h.until is not None and 27.0 <= h.until <= 33.0


def test_success_resets_ejection_growth() -> None:
    h = health()
    eject(h, 0.0)
    assert h.begin_probe(30.0)
    h.record_failure(30.0, "down")  # second ejection: 60 s
    assert h.ejection_seconds() == 90.0
    assert h.begin_probe(90.0)
    h.record_success(91.0, "probe succeeded")
    assert (h.state, h.ejections, h.consecutive_failures, h.until) == (State.HEALTHY, 0, 0, None)
    assert h.reason == "probe succeeded"
    eject(h, 100.0)
    assert h.until == 130.0


def test_failures_while_ejected_extend_but_do_not_escalate() -> None:
    h = health()
    eject(h, 0.0)
    assert h.until == 30.0
    h.record_failure(10.0, "panic traffic failed")
    assert (h.state, h.until, h.ejections) == (State.EJECTED, 40.0, 1)
    h.record_failure(5.0, "late report")  # would end earlier: no change
    assert h.until == 40.0


def test_probe_due_and_begin_probe() -> None:
    h = health()
    assert not h.probe_due(0.0) and not h.begin_probe(0.0)
    eject(h, 0.0)
    assert not h.probe_due(29.9) and not h.begin_probe(29.9)
    assert h.probe_due(30.0)
    assert h.begin_probe(30.0)
    assert h.state is State.PROBING and h.reason.startswith("probing after: 3 consecutive")
    assert not h.usable(30.0)
    assert not h.probe_due(31.0)  # one probe at a time
    assert not h.begin_probe(31.0)


def test_lost_probe_becomes_due_again() -> None:
    h = health()
    eject(h, 0.0)
    assert h.begin_probe(30.0)
    deadline = 30.0 + max(SETTINGS.probe_interval, SETTINGS.probe_timeout)
    assert h.until == deadline
    assert not h.probe_due(deadline - 0.1)
    assert h.begin_probe(deadline)
    assert h.state is State.PROBING


# ---- rate limits ---------------------------------------------------------------------------


def test_rate_limit_expires_through_usable() -> None:
    h = health()
    h.record_failure(0.0, "x")
    h.record_rate_limited(1.0, 61.0, "HTTP 429")
    assert h.consecutive_failures == 1  # not a health failure
    assert not h.usable(60.9)
    assert h.recovers_at(30.0) == 61.0
    assert h.usable(61.0)
    assert h.state is State.HEALTHY and h.reason == "rate limit reset"
    assert h.until is None
    assert h.transitions[-1] == Transition(
        61.0, State.RATE_LIMITED, State.HEALTHY, "rate limit reset"
    )


def test_second_429_extends_never_shortens() -> None:
    h = health()
    h.record_rate_limited(0.0, 60.0, "first")
    h.record_rate_limited(1.0, 90.0, "second")
    assert (h.until, h.reason) == (90.0, "second")
    h.record_rate_limited(2.0, 10.0, "third")
    assert h.until == 90.0
    assert len(h.transitions) == 1


def test_failures_while_rate_limited_can_eject() -> None:
    h = health()
    h.record_rate_limited(0.0, 500.0, "HTTP 429")
    eject(h, 1.0)
    assert h.state is State.EJECTED
    assert h.until == 500.0  # the cool-down is not cut short by a shorter ejection


def test_429_while_ejected_only_extends() -> None:
    h = health()
    eject(h, 0.0)
    h.record_rate_limited(1.0, 100.0, "HTTP 429")
    assert (h.state, h.until) == (State.EJECTED, 100.0)


# ---- auth ----------------------------------------------------------------------------------


def test_auth_failure_backs_off_and_needs_a_probe() -> None:
    h = health()
    h.record_auth_failure(0.0, "HTTP 401: invalid x-api-key")
    assert (h.state, h.until, h.consecutive_failures) == (State.AUTH_FAILED, 30.0, 0)
    assert h.recovers_at(10.0) is None
    assert not h.usable(1000.0)  # does not come back by itself
    assert h.begin_probe(30.0)
    h.record_auth_failure(31.0, "HTTP 401")
    assert (h.state, h.until) == (State.AUTH_FAILED, 91.0)
    assert h.begin_probe(91.0)
    h.record_success(92.0)
    assert h.state is State.HEALTHY


def test_auth_failure_while_rate_limited_keeps_the_longer_wait() -> None:
    h = health()
    h.record_rate_limited(0.0, 400.0, "HTTP 429")
    h.record_auth_failure(1.0, "HTTP 403")
    assert (h.state, h.until) == (State.AUTH_FAILED, 400.0)


# ---- recovers_at, disable, transitions, settings -------------------------------------------


def test_recovers_at() -> None:
    h = health()
    assert h.recovers_at(5.0) == 5.0
    eject(h, 0.0)
    assert h.recovers_at(5.0) == 30.0
    h.begin_probe(30.0)
    assert h.recovers_at(31.0) == h.until
    h.disable(40.0)
    assert h.recovers_at(41.0) is None


def test_disable_ignores_traffic_and_enable_starts_fresh() -> None:
    h = health()
    eject(h, 0.0)
    h.disable(1.0)
    assert (h.state, h.until, h.reason) == (State.DISABLED, None, "disabled")
    h.record_success(2.0)
    h.record_failure(2.0, "x")
    assert h.state is State.DISABLED and not h.usable(2.0) and not h.probe_due(1e9)
    h.enable(3.0)
    assert (h.state, h.consecutive_failures, h.ejections, h.reason) == (
        State.HEALTHY,
        0,
        0,
        "enabled",
    )
    assert h.since == 3.0


def test_created_disabled() -> None:
    h = health(enabled=False)
    assert h.state is State.DISABLED and not h.usable(0.0)
    assert len(h.transitions) == 0


def test_transitions_are_bounded_newest_last() -> None:
    h = health()
    for i in range(100):
        h.disable(float(i))
        h.enable(float(i) + 0.5)
    assert len(h.transitions) == MAX_TRANSITIONS
    assert h.transitions[-1] == Transition(99.5, State.DISABLED, State.HEALTHY, "enabled")


def test_update_settings_keeps_state() -> None:
    h = health()
    h.record_failure(0.0, "x")
    h.record_failure(0.0, "x")
    h.update_settings(HealthSettings(failure_threshold=2, ejection_base=10.0, ejection_max=20.0))
    assert (h.state, h.consecutive_failures) == (State.HEALTHY, 2)
    h.record_failure(1.0, "x")
    assert (h.state, h.until) == (State.EJECTED, 11.0)


def test_lowered_ejection_max_shortens_a_running_ejection() -> None:
    h = health()
    eject(h, 0.0)
    h.update_settings(SETTINGS)  # unchanged: nothing moves
    assert h.until == 30.0
    h.update_settings(HealthSettings(ejection_base=5.0, ejection_max=10.0))
    assert h.until == 10.0


# ---- exhausted -----------------------------------------------------------------------------

RECHECK = SETTINGS.exhausted_recheck


def test_exhausted_recheck_default() -> None:
    assert HealthSettings().exhausted_recheck == 1800.0


def test_exhausted_waits_for_the_recheck_then_lets_one_trial_through() -> None:
    h = health()
    h.record_failure(1.0, "HTTP 502")
    h.record_exhausted(5.0, None, "credit balance is too low")
    assert (h.state, h.until, h.reason, h.since) == (
        State.EXHAUSTED,
        5.0 + RECHECK,
        "credit balance is too low",
        5.0,
    )
    assert (h.ejections, h.consecutive_failures) == (0, 1)  # not a health failure
    assert not h.usable(5.0 + RECHECK - 0.1)
    assert not h.begin_request(5.0 + RECHECK - 0.1)
    assert h.recovers_at(100.0) == 5.0 + RECHECK
    for now in (6.0, 5.0 + RECHECK, 1e9):
        assert not h.probe_due(now) and not h.begin_probe(now)  # probes cannot decide it
    trial_at = 5.0 + RECHECK
    assert h.usable(trial_at)
    assert h.begin_request(trial_at)
    assert (h.state, h.trial_since) == (State.EXHAUSTED, trial_at)
    assert not h.usable(trial_at + 1.0)  # one trial at a time
    assert h.recovers_at(trial_at + 1.0) == trial_at + RECHECK
    h.record_success(trial_at + 2.0)
    assert (h.state, h.until, h.trial_since, h.reason) == (
        State.HEALTHY,
        None,
        None,
        "request succeeded",
    )
    assert h.transitions[-1] == Transition(
        trial_at + 2.0, State.EXHAUSTED, State.HEALTHY, "request succeeded"
    )


def test_exhausted_until_the_announced_reset() -> None:
    h = health()
    h.record_exhausted(0.0, 120.0, "5h window rejected")
    assert h.until == 120.0
    assert not h.usable(119.9)
    assert h.usable(120.0) and h.begin_request(120.0)


def test_fifty_concurrent_requests_get_one_trial() -> None:
    h = health()
    h.record_exhausted(0.0, 10.0, "quota")
    admitted = [h.begin_request(10.0) for _ in range(50) if h.usable(10.0)]
    assert admitted == [True]


def test_trial_failing_by_the_same_rule_waits_another_recheck() -> None:
    h = health()
    h.record_exhausted(0.0, 10.0, "quota")
    assert h.begin_request(10.0)
    h.record_exhausted(11.0, None, "quota, again")
    assert (h.state, h.until, h.trial_since, h.reason) == (
        State.EXHAUSTED,
        11.0 + RECHECK,
        None,
        "quota, again",
    )
    assert not h.usable(11.0 + RECHECK - 1.0)
    assert h.begin_request(11.0 + RECHECK)


def test_probe_success_never_ends_exhausted_even_during_a_trial() -> None:
    h = health()
    h.record_exhausted(0.0, 10.0, "credit")
    h.record_success(5.0, "probe ok (count_tokens)", probe=True)
    assert h.state is State.EXHAUSTED
    assert h.begin_request(10.0)
    h.record_success(11.0, "probe ok (count_tokens)", probe=True)
    assert (h.state, h.trial_since) == (State.EXHAUSTED, 10.0)
    h.record_success(12.0)  # the trial's own answer
    assert h.state is State.HEALTHY


def test_request_in_flight_before_running_out_does_not_bring_it_back() -> None:
    h = health()
    h.record_exhausted(0.0, None, "credit")
    h.record_success(3.0)  # a stream that started before the credit ran out
    h.end_request(3.0)
    assert (h.state, h.until) == (State.EXHAUSTED, RECHECK)


def test_trial_without_an_answer_is_released() -> None:
    h = health()
    h.record_exhausted(0.0, 10.0, "credit")
    assert h.begin_request(10.0)
    h.end_request(15.0)  # client cancelled, or a 400 passed through
    assert (h.state, h.trial_since) == (State.EXHAUSTED, None)
    h.record_success(16.0)  # a late report, no trial in flight: ignored
    assert h.state is State.EXHAUSTED
    assert h.usable(16.0) and h.begin_request(16.0)


def test_end_request_after_the_trial_reported_changes_nothing() -> None:
    h = health()
    h.record_exhausted(0.0, 10.0, "credit")
    assert h.begin_request(10.0)
    h.record_success(11.0)
    h.end_request(11.0)
    assert h.state is State.HEALTHY
    assert not h.begin_request(12.0)  # healthy: nothing to claim


def test_trial_failing_otherwise_retries_after_a_short_wait() -> None:
    h = health()
    h.record_exhausted(0.0, 10.0, "credit")
    assert h.begin_request(10.0)
    h.record_failure(11.0, "HTTP 503")
    assert (h.state, h.trial_since, h.until, h.ejections) == (State.EXHAUSTED, None, 41.0, 0)
    assert not h.usable(40.9)
    assert h.begin_request(41.0)
    h.record_rate_limited(42.0, 100.0, "HTTP 429")
    assert (h.state, h.trial_since, h.until) == (State.EXHAUSTED, None, 100.0)
    assert h.begin_request(100.0)


def test_lost_trial_is_replaced_after_a_recheck() -> None:
    h = health()
    h.record_exhausted(0.0, 10.0, "credit")
    assert h.begin_request(10.0)
    assert not h.usable(10.0 + RECHECK - 1.0)
    assert h.usable(10.0 + RECHECK)
    assert h.begin_request(10.0 + RECHECK)
    assert h.trial_since == 10.0 + RECHECK


def test_stale_exhausted_reports_extend_an_announced_reset_replaces() -> None:
    h = health()
    h.record_exhausted(0.0, None, "credit")
    h.record_exhausted(100.0, None, "credit, from a request sent earlier")
    assert h.until == 100.0 + RECHECK
    h.record_exhausted(101.0, 500.0, "7d window rejected, resets at 500")
    assert h.until == 500.0  # the account said when: believe it
    h.record_exhausted(102.0, None, "credit")
    assert h.until == 102.0 + RECHECK


def test_auth_failure_while_exhausted_keeps_the_longer_wait() -> None:
    h = health()
    h.record_exhausted(0.0, None, "credit")
    h.record_auth_failure(1.0, "HTTP 403: organization has been disabled")
    assert (h.state, h.until) == (State.AUTH_FAILED, RECHECK)


def test_reset_brings_an_exhausted_account_back_fresh() -> None:
    h = health()
    eject(h, 0.0)
    h.record_exhausted(1.0, None, "credit")
    assert h.begin_request(1.0 + RECHECK)
    h.reset(2.0 + RECHECK, "enabled by the user")
    assert (h.state, h.until, h.trial_since, h.ejections, h.consecutive_failures) == (
        State.HEALTHY,
        None,
        None,
        0,
        0,
    )
    assert h.reason == "enabled by the user"


def test_disable_and_enable_clear_exhausted() -> None:
    h = health()
    h.record_exhausted(0.0, None, "credit")
    h.disable(1.0)
    h.record_exhausted(2.0, None, "credit")
    assert h.state is State.DISABLED
    h.enable(3.0)
    assert (h.state, h.until) == (State.HEALTHY, None)
