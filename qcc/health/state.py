"""One account's health: outlier detection from live traffic, cool-downs, probes.

A synchronous state machine; every method takes ``now`` (monotonic seconds)::

    HEALTHY ──N consecutive failures──▶ EJECTED ──until passed, begin_probe──▶ PROBING
       ▲  ▲                                ▲                                   │ │ │
       │  └──────────── success ───────────┼──────────── probe succeeds ◀──────┘ │ │
       │                                   └──────────── probe fails ◀───────────┘ │
       │                                                  probe gets 401/403 ──▶ AUTH_FAILED
       ├── 429 ──▶ RATE_LIMITED ── until passed (seen by usable) / success ──▶ HEALTHY
       ├── 401/403 ──▶ AUTH_FAILED ── until passed, begin_probe ──▶ PROBING
       ├── out of credit/quota ──▶ EXHAUSTED ── until passed, begin_request: one trial ──┐
       │                              ▲  └─ trial fails again: another recheck ◀───────┤
       │◀──────────────── trial succeeds / reset ───────────────────────────────────────┘
       └── enable ◀── DISABLED ◀── disable (from any state)

Ejection time grows with each ejection in a row: ``min(ejection_base * ejections,
ejection_max)``, times a jitter in [0.9, 1.1], capped at ``ejection_max``. A success resets it.
Auth failures back off the same way, so their probes get rarer. A probe that never reports
(its task died) is considered lost after ``max(probe_interval, probe_timeout)`` seconds and the
account is due for another probe.

EXHAUSTED (credit spent, quota used up, budget reached) is left only by a real request: a free
probe can succeed while the credit is zero, so probes are never due for it and a probe's success
(``record_success(..., probe=True)``) leaves it alone. Once ``until`` (the reset the account
announced, else ``exhausted_recheck``) has passed, the account is usable for exactly one request
at a time, the *trial*, claimed by :meth:`AccountHealth.begin_request`. The trial's success makes
it healthy; the same failure again starts another recheck period; any other ending (a 5xx, a
cancelled client, a passed-through 400) releases the trial for the next request. A success
counts only while a trial is in flight: a request sent before the account ran out that succeeds
afterwards does not bring it back (one that ends during the trial is taken for the trial's
answer; at worst the next request meets the same error and fails over). :meth:`AccountHealth.reset`
(the user re-enabling it) brings it back at once.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from qcc.config.model import HealthSettings

MAX_TRANSITIONS = 32
JITTER = (0.9, 1.1)


class State(StrEnum):
    HEALTHY = "healthy"
    EJECTED = "ejected"
    PROBING = "probing"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    EXHAUSTED = "exhausted"
    DISABLED = "disabled"


_OUT = (State.EJECTED, State.AUTH_FAILED)  # out of rotation until a probe succeeds


@dataclass(frozen=True, slots=True)
class Transition:
    at: float
    from_state: State
    to_state: State
    reason: str


class AccountHealth:
    """The health state machine of one account. Not thread-safe: the proxy's event loop owns it."""

    def __init__(
        self,
        settings: HealthSettings,
        *,
        enabled: bool = True,
        now: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._rng = rng or random.Random()
        self.state = State.HEALTHY if enabled else State.DISABLED
        self.reason = "started" if enabled else "disabled in config"
        self.since = now
        self.until: float | None = None
        self.consecutive_failures = 0
        self.ejections = 0
        self.transitions: deque[Transition] = deque(maxlen=MAX_TRANSITIONS)
        self.trial_since: float | None = None  # an exhausted account's trial request in flight

    # ---- internals -----------------------------------------------------------------------

    def _move(self, now: float, to: State, reason: str) -> None:
        """Enter ``to``; a transition is recorded only if the state changes."""
        if to is not self.state:
            self.transitions.append(Transition(now, self.state, to, reason))
            self.trial_since = None
            self.state = to
            self.since = now
            self.reason = reason

    def _base_seconds(self, ejections: int) -> float:
        settings = self.settings
        return min(settings.ejection_base * max(ejections, 1), settings.ejection_max)

    def _eject(self, now: float, to: State, reason: str) -> None:
        """Take the account out for the next, longer, jittered ejection time."""
        self.ejections += 1
        seconds = self._base_seconds(self.ejections) * self._rng.uniform(*JITTER)
        self.until = now + min(seconds, self.settings.ejection_max)
        self._move(now, to, reason)

    def _extend(self, now: float, reason: str) -> None:
        """Already out: push ``until`` out to a fresh ejection of the current length, if later."""
        later = now + self._base_seconds(self.ejections)
        if self.until is None or later > self.until:
            self.until = later
        self.reason = reason

    def _probe_deadline(self) -> float:
        return max(self.settings.probe_interval, self.settings.probe_timeout)

    def _trial_open(self, now: float) -> bool:
        """Exhausted, its wait is over and no trial is in flight (or the one in flight is lost:
        it never reported within ``exhausted_recheck``)."""
        if self.until is not None and now < self.until:
            return False
        started = self.trial_since
        return started is None or now - started >= self.settings.exhausted_recheck

    def _end_trial(self, now: float, wait: float) -> None:
        """An exhausted account's trial ended without an answer on its credit: let the next
        request try, but not before ``wait`` seconds."""
        if self.trial_since is not None:
            self.trial_since = None
            self.until = max(self.until or now, now + wait)

    # ---- queries -------------------------------------------------------------------------

    def usable(self, now: float) -> bool:
        """Whether normal traffic may use the account; ends an expired rate limit."""
        if self.state is State.HEALTHY:
            return True
        if self.state is State.RATE_LIMITED and (self.until is None or now >= self.until):
            self.until = None
            self._move(now, State.HEALTHY, "rate limit reset")
            return True
        if self.state is State.EXHAUSTED:
            return self._trial_open(now)
        return False

    def recovers_at(self, now: float) -> float | None:
        """When the account may serve again without a user acting: ``now`` if usable, the end
        of its cool-down, ejection or probe otherwise; None if auth failed or disabled. An
        exhausted account recovers, at best, when its trial may start (or the one in flight is
        considered lost)."""
        if self.usable(now):
            return now
        if self.state in (State.AUTH_FAILED, State.DISABLED):
            return None
        if self.state is State.EXHAUSTED and self.trial_since is not None:
            return max(self.until or now, self.trial_since + self.settings.exhausted_recheck)
        return self.until

    def probe_due(self, now: float) -> bool:
        """Whether a probe should be sent: out (ejected or auth failed) and its time has come,
        or a probe in flight was lost. Never for an exhausted account: a probe proves nothing
        about its credit."""
        if self.state in _OUT or self.state is State.PROBING:
            return self.until is None or now >= self.until
        return False

    def ejection_seconds(self) -> float:
        """The duration the next ejection would get, before jitter."""
        return self._base_seconds(self.ejections + 1)

    # ---- events --------------------------------------------------------------------------

    def begin_probe(self, now: float) -> bool:
        """Start the one trial that decides an out account's fate; False if none is due."""
        if not self.probe_due(now):
            return False
        self.until = now + self._probe_deadline()
        self._move(now, State.PROBING, f"probing after: {self.reason}")
        return True

    def begin_request(self, now: float) -> bool:
        """A real request is being sent to the account (call it for every one; for a usable
        account it does nothing). True when this request is an exhausted account's trial: the
        account is then not usable by others until the trial reports or :meth:`end_request`."""
        if self.state is not State.EXHAUSTED or not self._trial_open(now):
            return False
        self.trial_since = now
        return True

    def end_request(self, now: float) -> None:
        """A request is over. A trial that reported nothing (cancelled by the client, or
        passed through as the request's fault) is released so the next request may try."""
        if self.state is State.EXHAUSTED:
            self._end_trial(now, 0.0)

    def record_success(
        self, now: float, reason: str = "request succeeded", *, probe: bool = False
    ) -> None:
        """The account answered well: healthy again, ejection growth reset.

        An exhausted account is brought back only by a real request's success while its trial
        is in flight, never by a probe (``probe=True``)."""
        state = self.state
        if state is State.DISABLED:
            return
        if state is State.EXHAUSTED and (probe or self.trial_since is None):
            return
        self.consecutive_failures = 0
        self.ejections = 0
        self.until = None
        self._move(now, State.HEALTHY, reason)

    def record_failure(self, now: float, reason: str) -> None:
        """A failure that counts toward ejection (5xx, 529, network, timeout, stream error)."""
        state = self.state
        if state is State.DISABLED:
            return
        self.consecutive_failures += 1
        if state is State.EXHAUSTED:  # the trial (if it was one) proved nothing: try again soon
            self._end_trial(now, self._base_seconds(1))
            return
        if state is State.PROBING:
            self._eject(now, State.EJECTED, f"probe failed: {reason}")
        elif state in _OUT:
            self._extend(now, reason)
        elif self.consecutive_failures >= max(self.settings.failure_threshold, 1):
            cooling = self.until if state is State.RATE_LIMITED else None
            self._eject(
                now, State.EJECTED, f"{self.consecutive_failures} consecutive failures: {reason}"
            )
            if cooling is not None and self.until is not None and cooling > self.until:
                self.until = cooling

    def record_rate_limited(self, now: float, until: float, reason: str) -> None:
        """A 429: cool down until ``until`` (monotonic). Not a health failure."""
        state = self.state
        if state is State.DISABLED:
            return
        if state is State.EXHAUSTED:
            self._end_trial(now, 0.0)
        if state in _OUT or state is State.EXHAUSTED:
            if self.until is None or until > self.until:
                self.until = until
            return
        if state is State.RATE_LIMITED and self.until is not None:
            until = max(until, self.until)
        self.until = until
        self.reason = reason
        self._move(now, State.RATE_LIMITED, reason)

    def record_auth_failure(self, now: float, reason: str) -> None:
        """A 401/403 (or unusable credentials): out until a probe succeeds, probes backing off."""
        state = self.state
        if state is State.DISABLED:
            return
        if state is State.AUTH_FAILED:
            self._extend(now, reason)
            return
        cooling = (
            self.until if state in (State.RATE_LIMITED, State.EJECTED, State.EXHAUSTED) else None
        )
        self._eject(now, State.AUTH_FAILED, reason)
        if cooling is not None and self.until is not None and cooling > self.until:
            self.until = cooling

    def record_exhausted(self, now: float, until: float | None, reason: str) -> None:
        """Out of credit, quota or budget: out of rotation until ``until`` (monotonic; the reset
        the account announced), else for ``exhausted_recheck`` seconds; then one trial request
        decides. Not a health failure: ejection counters are left alone. An announced ``until``
        replaces the current wait; a recheck period only ever extends it."""
        state = self.state
        if state is State.DISABLED:
            return
        if until is None:
            until = now + self.settings.exhausted_recheck
            if state is State.EXHAUSTED and self.trial_since is None and self.until is not None:
                until = max(until, self.until)
        self.trial_since = None
        self.until = until
        self.reason = reason
        self._move(now, State.EXHAUSTED, reason)

    def adopt(self, now: float, state: State, until: float, reason: str) -> None:
        """Another instance decided ``state`` until ``until`` (:mod:`qcc.shared`): entered as
        decided, not judged again; ejection counters untouched. A healthy or rate-limited
        account takes it; one already in ``state`` only takes a later ``until``; any other
        state (out for another reason, probing, disabled) is kept, as is a past ``until``."""
        if until <= now:
            return
        if self.state is state:
            if self.until is not None and until > self.until:
                self.until = until
            return
        if self.state is State.HEALTHY or self.state is State.RATE_LIMITED:
            self.until = until
            self._move(now, state, reason)

    def reset(self, now: float, reason: str = "reset") -> None:
        """The user vouched for the account (``qcc account enable`` on an enabled account):
        healthy at once with fresh counters, whatever it was (except disabled: see enable)."""
        if self.state is State.DISABLED:
            return
        self.consecutive_failures = 0
        self.ejections = 0
        self.until = None
        self.trial_since = None
        self._move(now, State.HEALTHY, reason)

    def disable(self, now: float) -> None:
        """The user took the account out; only :meth:`enable` brings it back."""
        self.until = None
        self._move(now, State.DISABLED, "disabled")

    def enable(self, now: float) -> None:
        """The user put a disabled account back: healthy, with fresh counters."""
        if self.state is not State.DISABLED:
            return
        self.consecutive_failures = 0
        self.ejections = 0
        self.until = None
        self._move(now, State.HEALTHY, "enabled")

    def update_settings(self, settings: HealthSettings) -> None:
        """Hot reload: keep the state. A lowered ``ejection_max`` shortens a running ejection."""
        lowered = settings.ejection_max < self.settings.ejection_max
        self.settings = settings
        if lowered and self.state in _OUT and self.until is not None:
            self.until = min(self.until, self.since + settings.ejection_max)
