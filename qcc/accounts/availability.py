"""Which of the pool's accounts can serve now, why the others cannot, and when they may again.

Read-only views over the members, for the answer when every account failed
(:mod:`qcc.proxy.failed`), the admin endpoints, and panic mode (:func:`panic_candidate`: the
account to try anyway when none is usable). Each scans the accounts: never on a request that an
account serves.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from qcc.accounts.member import Member
from qcc.health.state import State
from qcc.redact import scrub

_NEVER_IN_PANIC = (State.AUTH_FAILED, State.EXHAUSTED, State.DISABLED)


def usable_count(members: Iterable[Member], now: float) -> int:
    return sum(1 for m in members if m.header is not None and m.health.usable(now))


def unavailable_reasons(members: Iterable[Member], now: float) -> dict[str, str]:
    """Why each account that cannot serve now cannot: ``{"main": "auth_failed (why)"}``."""
    return {
        m.name: f"{m.health.state} ({scrub(m.health.reason, m.secrets())})"
        for m in members
        if m.header is None or not m.health.usable(now)
    }


def soonest_recovery(
    members: Iterable[Member], now: float, exhausted_within: float | None = None
) -> float | None:
    """Monotonic time at which some account will be usable again by itself, if any.

    With ``exhausted_within``, an exhausted account counts only if its next trial is at
    most that many seconds away (out of credit, it is not expected back soon)."""
    horizon = None if exhausted_within is None else now + exhausted_within
    times = [
        t
        for m in members
        if m.header is not None
        and (t := m.health.recovers_at(now)) is not None
        and (horizon is None or t <= horizon or m.health.state is not State.EXHAUSTED)
    ]
    return min(times) if times else None


def panic_candidate(members: Collection[Member], tried: set[str], now: float) -> Member | None:
    """No account is usable: the one to try anyway, soonest-recovering first (None when some
    account is usable, or none may be tried).

    Accounts out for bad credentials, out of credit or quota, or disabled by the user are
    never tried: they cannot succeed by themselves (an exhausted account's trial request
    goes through normal selection once its wait is over).
    """
    if any(m.health.usable(now) for m in members if m.header is not None):
        return None  # usable accounts exist; they were all tried already
    waiting = [
        m
        for m in members
        if m.name not in tried and m.header is not None and m.health.state not in _NEVER_IN_PANIC
    ]
    if not waiting:
        return None
    return min(waiting, key=lambda m: (m.health.recovers_at(now) or now, m.account.priority))
