"""The account pool: the one owner of every account's runtime state in a running proxy.

The pool answers "which account next?" (sticky session, then strategy, then panic mode), passes
observed outcomes to :func:`qcc.accounts.observe.report` (the one health decision), adopts what
the user or another instance decided, and applies a reloaded cluster without losing the state of
unchanged accounts (:mod:`~qcc.accounts.reload`; credentials wired by
:mod:`~qcc.accounts.credentials`). It also keeps what accounts say about their limits (an account
that announced it is out of room is skipped while another has room) and what they spent (a
reached budget, :mod:`~qcc.accounts.spend`, makes the account ``exhausted`` until the next local
day or month). Which accounts can serve, and why not, is read in
:mod:`~qcc.accounts.availability`. Everything here is synchronous and takes ``now`` (monotonic
seconds) from the caller.

Selection does not scan the accounts per request: what it may pick is kept in a
:class:`~qcc.accounts.ready.Ready`, built again only when an account's state changed (every
change here bumps ``_version``) or one comes back by itself (its ``expires``). The accounts out
of room are watched at every pick (their resets); the picked account is checked once more, and
one found changed behind the pool's back makes the pool look again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from qcc.accounts import availability, credentials, observe, reload
from qcc.accounts.member import Member
from qcc.accounts.ready import Ready, build
from qcc.config.model import Cluster, HealthSettings
from qcc.credentials.source import CredentialSource, RefreshResult
from qcc.health.state import State, Transition
from qcc.routing.ratelimit import Limits, blocked_until
from qcc.routing.sticky import StickyTable
from qcc.routing.strategies import Candidate, Scorer, Strategy, choose, make_strategy

log = logging.getLogger("qcc.health")

_EXHAUSTED = State.EXHAUSTED


class PoolListener(Protocol):
    """Told what the pool decided, for others to learn (:mod:`qcc.shared`); never on the hot
    path: a state change, or a session bound to an account."""

    def changed(self, member: Member, now: float, wall_now: float) -> None: ...

    def session(self, session: str, account: str) -> None: ...


class AccountPool:
    def __init__(
        self,
        cluster: Cluster,
        health: HealthSettings,
        *,
        now: float,
        rng: random.Random | None = None,
        environ: dict[str, str] | None = None,
        token_dir: Path | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        self._environ = environ
        self._token_dir = token_dir  # rotated OAuth2 refresh tokens (None: the state dir)
        self.cluster = cluster
        self.health_settings = health
        self.members: dict[str, Member] = {}
        self.strategy: Strategy = make_strategy(cluster.strategy, self._rng)
        self.sticky = StickyTable()
        self.panics = 0
        # Accounts that said they are (nearly) out of room: 0 keeps select free of the check.
        self.full_members = 0
        # Set when an account leaves rotation, so the health monitor reschedules its probes.
        self.out_of_rotation = asyncio.Event()
        # Set when an account with a fetched credential (command, OAuth2) comes in.
        self.credentials_changed = asyncio.Event()
        self._version = 0  # bumped by every change that can change what select may pick
        self._ready = Ready()
        self.listener: PoolListener | None = None  # set when [shared] is configured
        self.apply(cluster, health, now=now)

    # ---- configuration and credentials ---------------------------------------------------

    def apply(self, cluster: Cluster, health: HealthSettings, *, now: float) -> None:
        """Adopt a (re)loaded cluster. Unchanged accounts keep health, latency and stats."""
        if cluster.strategy != self.cluster.strategy or not self.members:
            self.strategy = make_strategy(cluster.strategy, self._rng)
        old = self.members
        rules_changed = cluster.rules != self.cluster.rules
        members, new = reload.members_for(cluster, health, old, rules_changed, now, self._rng)
        if credentials.attach(new, cluster.name, self._environ, self._token_dir, self._refreshed):
            self.credentials_changed.set()  # the keeper fetches them at once
        credentials.close_replaced(old, members)
        for name in old.keys() - members.keys():
            self.sticky.forget_account(name)
        self.members = members
        self.full_members = sum(1 for m in members.values() if m.full_until is not None)
        self.cluster = cluster
        self.health_settings = health
        credentials.resolve(members.values(), self._environ, now)
        self._version += 1

    def sources(self) -> list[CredentialSource]:
        return [m.source for m in self.members.values() if m.source is not None]

    def _refreshed(self, member: Member, result: RefreshResult) -> None:
        """A credential refresh ended (:func:`qcc.accounts.credentials.refreshed`)."""
        source = member.source
        if source is None or self.members.get(member.name) is not member:
            return  # replaced by a reload meanwhile
        changed, failure = credentials.refreshed(member, source, result)
        if changed:
            self._version += 1
        if failure is not None:
            self.report(member, failure, result.at, source.wall())

    # ---- selection -----------------------------------------------------------------------

    def select(self, tried: set[str], now: float, session: str | None = None) -> Member | None:
        """The next account to try, or None when every account was tried or none can serve.

        An account that announced it is (nearly) out of room is skipped while another one has
        room; when none has, they are chosen as if they had (never refused for headroom alone).
        """
        full: Member | None = None  # the session's account, when it said it is out of room
        if session is not None and self.cluster.sticky:
            name = self.sticky.get(session, now)
            if name is not None and name not in tried:
                member = self.members.get(name)
                if member is not None and member.health.usable(now):
                    if not self.full_members or not self._full(member, now):
                        return member
                    full = member
        score = self._scorer(now) if self.cluster.strategy == "least-latency" else None
        ready = self._view(now)
        picked = self._pick(ready, tried, full, score, now)
        if picked is not None and picked is not full and not self._still_fits(picked, ready, now):
            self.invalidate()  # changed behind the pool's back: look again
            picked = self._pick(self._view(now), tried, full, score, now)
        return self._panic(tried, now) if picked is None else picked

    def invalidate(self) -> None:
        """Forget what selection prepared: for code that changed an account's state directly."""
        self._version += 1

    def _scorer(self, now: float) -> Scorer:
        members = self.members

        def score(c: Candidate) -> float:
            return members[c.name].latency.score(now)

        return score

    def _pick(
        self, ready: Ready, tried: set[str], full: Member | None, score: Scorer | None, now: float
    ) -> Member | None:
        """The pick; a first attempt's from the prepared tier, nothing scanned."""
        if tried:
            return self._pick_among(ready, tried, full, score, now)
        if ready.tier is None:
            return None
        if ready.no_room and full is not None:
            return full
        if ready.only is not None:  # nothing to choose between
            return ready.only
        return self.members[self.strategy.pick_from(ready.tier, score).name]

    def _pick_among(
        self, ready: Ready, tried: set[str], full: Member | None, score: Scorer | None, now: float
    ) -> Member | None:
        """A retry's pick: the prepared accounts not tried yet (a list per retry)."""
        members = self.members
        candidates = [c for c in ready.candidates if c.name not in tried]
        if self.full_members and candidates:
            roomy = [c for c in candidates if not self._full(members[c.name], now)]
            if roomy:
                candidates = roomy
            elif full is not None:
                return full
        if len(candidates) == 1:  # nothing to choose between
            return members[candidates[0].name]
        picked = choose(self.strategy, candidates, score)
        return None if picked is None else members[picked.name]

    def _still_fits(self, member: Member, ready: Ready, now: float) -> bool:
        """Whether the picked account is as the view says (usable; with room if it had)."""
        if member.header is None or not member.health.usable(now):
            return False
        return ready.no_room or not self.full_members or not self._full(member, now)

    def _view(self, now: float) -> Ready:
        """The prepared view, built again if the pool changed or an account's wait ended."""
        ready = self._ready
        if ready.version == self._version and now < ready.expires:
            for member in ready.full:
                if not self._full(member, now):  # its reset passed: it has room again
                    break
            else:
                return ready
        full = self._full if self.full_members else None
        self._ready = ready = build(self.members.values(), self._version, now, full)
        return ready

    def _full(self, member: Member, now: float) -> bool:
        """Whether the account said it is (nearly) out of room until after ``now``."""
        until = member.full_until
        if until is None:
            return False
        if now < until:
            return True
        member.full_until = None  # its reset has passed
        self.full_members -= 1
        return False

    def _panic(self, tried: set[str], now: float) -> Member | None:
        """No account is usable: try one that is out anyway (see
        :func:`~qcc.accounts.availability.panic_candidate`)."""
        member = availability.panic_candidate(self.members.values(), tried, now)
        if member is None:
            return None
        self.panics += 1
        log.warning(
            "panic mode: no account of cluster %s is usable; trying %s (%s) anyway",
            self.cluster.name,
            member.name,
            member.health.state,
        )
        return member

    def remember_session(self, session: str | None, member: Member, now: float) -> None:
        if session is not None and self.cluster.sticky:
            self.sticky.set(session, member.name, now)
            if self.listener is not None:
                self.listener.session(session, member.name)

    # ---- outcomes ------------------------------------------------------------------------

    def begin(self, member: Member, now: float) -> bool:
        """A request is sent to ``member``; True when it is an exhausted account's one trial
        (pass that to :meth:`end`)."""
        stats = member.stats
        stats.requests += 1
        stats.in_flight += 1
        member.last_used = now
        health = member.health
        if health.state is _EXHAUSTED and health.begin_request(now):
            self._version += 1  # out of rotation while its trial is in flight
            return True
        return False

    def end(self, member: Member) -> None:
        member.stats.in_flight -= 1

    def end_trial(self, member: Member, now: float) -> None:
        """The trial request (:meth:`begin` said True) is over, after its outcome was reported.
        One that said nothing about the account's credit is released for the next request.
        Only the trial's own end may release it: another request ending never does."""
        member.health.end_request(now)
        self._version += 1

    def reset(self, member: Member, now: float) -> Transition | None:
        """The user vouched for the account (``qcc account enable``): healthy at once, whatever
        it was out for (a disabled account stays disabled: its config says so)."""
        before = member.health.state
        member.health.reset(now, "reset by the user")
        self._version += 1
        if member.health.state is before:
            return None
        change = member.health.transitions[-1]
        log.info("account %s: %s -> %s (reset by the user)", member.name, before, change.to_state)
        if self.listener is not None:
            self.listener.changed(member, now, time.time())
        return change

    def begin_probe(self, member: Member, now: float) -> None:
        """A probe starts: half-open when the account is due; a no-op for idle probes."""
        member.health.begin_probe(now)
        member.last_used = now
        self._version += 1

    def report(
        self, member: Member, observation: observe.Observation, now: float, wall_now: float
    ) -> Transition | None:
        """What traffic or a probe saw, applied by the one health decision; logged if the state
        changed, and the monitor woken if the account left rotation."""
        health = member.health
        state, until, trial = health.state, health.until, health.trial_since
        change = observe.report(member, observation, now, wall_now)
        if health.state is not state or health.until != until or health.trial_since != trial:
            self._version += 1  # a success of a healthy account (most requests) changes nothing
        if change is not None:
            level = logging.INFO if change.to_state is State.HEALTHY else logging.WARNING
            log.log(
                level,
                "account %s: %s -> %s (%s)",
                member.name,
                change.from_state,
                change.to_state,
                change.reason,
            )
            if observe.leaves_rotation(change):
                self.out_of_rotation.set()
            if self.listener is not None:
                self.listener.changed(member, now, wall_now)
        return change

    def apply_shared_verdict(
        self, name: str, state: State, until: float, reason: str, now: float
    ) -> Transition | None:
        """Another instance decided ``state`` for account ``name`` until ``until`` (monotonic,
        here): adopted as decided, not judged again (see :meth:`AccountHealth.adopt`)."""
        member = self.members.get(name)
        if member is None:
            return None
        health = member.health
        before, until_before = health.state, health.until
        health.adopt(now, state, until, reason)
        if health.state is before and health.until == until_before:
            return None
        self._version += 1
        if health.state is before:
            return None
        change = health.transitions[-1]
        log.warning("account %s: %s -> %s (%s)", name, before, health.state, reason)
        if observe.leaves_rotation(change):
            self.out_of_rotation.set()
        return change

    # ---- limits and spend ----------------------------------------------------------------

    def note_limits(self, member: Member, limits: Limits, now: float, wall_now: float) -> None:
        """The rate limits a response announced: kept as the account's latest, and the account
        skipped until their reset while it says it is (nearly) out of room (``headroom_min``)."""
        member.limits = limits
        until = blocked_until(limits, self.cluster.headroom_min, wall_now)
        full = None if until is None else now + (until - wall_now)
        if (full is None) != (member.full_until is None):
            self.full_members += -1 if full is None else 1
            self._version += 1  # a new reset time alone is seen by select (it watches them)
        member.full_until = full

    def recheck(self, now: float, wall_now: float) -> None:
        """After a reload: limits judged again against ``headroom_min``, budgets against spend."""
        for member in self.members.values():
            if member.limits is not None:
                self.note_limits(member, member.limits, now, wall_now)
            self.check_budget(member, now, wall_now)

    def seed_usage(
        self,
        totals: Mapping[str, Mapping[str, Any]],
        spent: Mapping[str, tuple[float, float]],
        now: float,
        wall_now: float,
    ) -> None:
        """Start from what the usage store recorded: all-time tokens per account (for
        ``/accounts/stats``) and USD spent today and this month (for budgets)."""
        for name, member in self.members.items():
            saved = totals.get(name)
            if saved:
                member.stats.usage.add({k: v for k, v in saved.items() if isinstance(v, int)})
            today, month = spent.get(name, (0.0, 0.0))
            member.spend.seed(today, month, wall_now)
            self.check_budget(member, now, wall_now)

    def add_spend(self, member: Member, usd: float, now: float, wall_now: float) -> None:
        """A request's cost: added to the account's spend, and its budgets checked."""
        member.spend.add(usd, wall_now)
        account = member.account
        if account.budget_daily_usd is not None or account.budget_monthly_usd is not None:
            self.check_budget(member, now, wall_now)

    def check_budget(self, member: Member, now: float, wall_now: float) -> None:
        """An account whose spend reached its daily or monthly budget (the user's policy) is
        ``exhausted`` until the next local day or month."""
        account, spend, health = member.account, member.spend, member.health
        daily, monthly = account.budget_daily_usd, account.budget_monthly_usd
        until = spend.over_budget(daily, monthly, wall_now)
        if until is None or health.state in (State.EXHAUSTED, State.DISABLED):
            return
        reason = spend.budget_reason(daily, monthly, until)
        before = health.state
        health.record_exhausted(now, now + (until - wall_now), reason)
        self._version += 1
        log.warning("account %s: %s -> %s (%s)", member.name, before, health.state, reason)
        if self.listener is not None:
            self.listener.changed(member, now, wall_now)

    # ---- views (qcc.accounts.availability) -----------------------------------------------

    def usable_count(self, now: float) -> int:
        return availability.usable_count(self.members.values(), now)

    def unavailable_reasons(self, now: float) -> dict[str, str]:
        return availability.unavailable_reasons(self.members.values(), now)

    def soonest_recovery(self, now: float, exhausted_within: float | None = None) -> float | None:
        return availability.soonest_recovery(self.members.values(), now, exhausted_within)
