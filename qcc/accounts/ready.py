"""What selection may pick, prepared once per pool state so a pick scans nothing.

:class:`Ready` holds the usable accounts (credential resolved, :meth:`AccountHealth.usable`),
the best priority tier of those with room as a :class:`~qcc.routing.strategies.Tier`, and when
it stops being true by itself (``expires``: the soonest end of a cool-down or of an exhausted
account's wait). The pool builds one again when its version changed or ``expires`` passed.
Pure and synchronous, like the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from qcc.accounts.member import Member
from qcc.health.state import State
from qcc.routing.strategies import Candidate, Tier, best_tier

_COME_BACK = (State.RATE_LIMITED, State.EXHAUSTED)  # usable again by themselves, in time


class Ready:
    """What selection may pick, as of one pool version; valid until ``expires``."""

    __slots__ = ("candidates", "expires", "full", "no_room", "only", "tier", "usable", "version")

    def __init__(self, version: int = -1) -> None:
        self.version = version
        self.expires = float("inf")  # monotonic: an account that was out comes back by itself
        self.usable: list[Member] = []  # credential resolved and usable, config order
        self.candidates: list[Candidate] = []  # the same accounts, for the strategy
        self.full: list[Member] = []  # usable accounts out of room; their resets watched
        self.no_room = False  # every usable account is out of room
        self.tier: Tier | None = None  # the best tier of those with room (of all if none has)
        self.only: Member | None = None  # the one account to choose from, if just one


def build(
    members: Iterable[Member],
    version: int,
    now: float,
    full: Callable[[Member, float], bool] | None,
) -> Ready:
    """The view of ``members`` at ``now``; ``full`` (None while no account said it is out of
    room) tells whether an account is out of room."""
    ready = Ready(version)
    usable, candidates = ready.usable, ready.candidates
    by_name: dict[str, Member] = {}
    for m in members:
        if m.header is None:
            continue
        health = m.health
        if health.usable(now):
            usable.append(m)
            account = m.account
            by_name[account.name] = m
            candidates.append(Candidate(account.name, account.weight, account.priority))
        elif health.state in _COME_BACK:
            back = health.recovers_at(now)
            if back is not None and now < back < ready.expires:
                ready.expires = back
    base = candidates
    if full is not None and candidates:
        room = [not full(m, now) for m in usable]
        ready.full = [m for m, has in zip(usable, room, strict=True) if not has]
        if ready.full:
            roomy = [c for c, has in zip(candidates, room, strict=True) if has]
            ready.no_room = not roomy
            base = roomy or candidates
    if base:
        ready.tier = Tier(best_tier(base))
        if len(base) == 1:
            ready.only = by_name[base[0].name]
    return ready
