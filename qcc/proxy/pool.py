"""The account pool: the one owner of every account's runtime state in a running proxy.

A :class:`Member` joins an account's config with its health state machine, latency score and
stats. The pool answers "which account next?" (sticky session, then strategy, then panic mode),
records outcomes, and applies a reloaded cluster without losing the state of unchanged accounts.
Everything here is synchronous and takes ``now`` (monotonic seconds) from the caller.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from qcc.config.model import Account, Cluster, HealthSettings
from qcc.errors import CredentialError
from qcc.health.state import AccountHealth, State
from qcc.redact import scrub
from qcc.routing.classify import Outcome, counts_against_health
from qcc.routing.latency import LatencyScore
from qcc.routing.sticky import StickyTable
from qcc.routing.strategies import Candidate, Strategy, choose, make_strategy
from qcc.stats import AccountStats

log = logging.getLogger("qcc.health")


@dataclass(eq=False)
class Member:
    account: Account
    health: AccountHealth
    latency: LatencyScore = field(default_factory=LatencyScore)
    stats: AccountStats = field(default_factory=AccountStats)
    last_used: float = 0.0  # monotonic time of the last attempt or probe
    header: tuple[str, str] | None = None  # resolved credential header; None if unresolvable

    @property
    def name(self) -> str:
        return self.account.name

    def secrets(self) -> tuple[str, ...]:
        """The account's credential as sent (and the bare token of a bearer header)."""
        if self.header is None:
            return ()
        value = self.header[1]
        return (value, value[7:]) if value[:7].lower() == "bearer " else (value,)


def _same_endpoint(a: Account, b: Account) -> bool:
    """Health survives a reload unless what it judged (endpoint, credential) changed."""
    return a.base_url == b.base_url and a.credential == b.credential


class AccountPool:
    def __init__(
        self,
        cluster: Cluster,
        health: HealthSettings,
        *,
        now: float,
        rng: random.Random | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        self._environ = environ
        self.cluster = cluster
        self.health_settings = health
        self.members: dict[str, Member] = {}
        self.strategy: Strategy = make_strategy(cluster.strategy, self._rng)
        self.sticky = StickyTable()
        self.panics = 0
        # Set when an account leaves rotation, so the health monitor reschedules its probes.
        self.out_of_rotation = asyncio.Event()
        self.apply(cluster, health, now=now)

    # ---- configuration -------------------------------------------------------------------

    def apply(self, cluster: Cluster, health: HealthSettings, *, now: float) -> None:
        """Adopt a (re)loaded cluster. Unchanged accounts keep health, latency and stats."""
        if cluster.strategy != self.cluster.strategy or not self.members:
            self.strategy = make_strategy(cluster.strategy, self._rng)
        old = self.members
        members: dict[str, Member] = {}
        for account in cluster.accounts:
            member = old.get(account.name)
            if member is None or not _same_endpoint(member.account, account):
                member = Member(
                    account=account,
                    health=AccountHealth(health, enabled=account.enabled, now=now, rng=self._rng),
                )
                if old.get(account.name) is not None:
                    member.stats = old[account.name].stats  # counters are history; keep them
            else:
                member.account = account
                member.health.update_settings(health)
                if account.enabled and member.health.state is State.DISABLED:
                    member.health.enable(now)
                elif not account.enabled and member.health.state is not State.DISABLED:
                    member.health.disable(now)
            members[account.name] = member
        for name in old.keys() - members.keys():
            self.sticky.forget_account(name)
        self.members = members
        self.cluster = cluster
        self.health_settings = health
        self._resolve_credentials(members.values(), now)

    def _resolve_credentials(self, members: Iterable[Member], now: float) -> None:
        for member in members:
            try:
                member.header = member.account.credential.header(self._environ)
            except CredentialError as exc:
                member.header = None
                if member.health.state not in (State.DISABLED, State.AUTH_FAILED):
                    member.health.record_auth_failure(now, str(exc))

    # ---- selection -----------------------------------------------------------------------

    def select(self, tried: set[str], now: float, session: str | None = None) -> Member | None:
        """The next account to try, or None when every account was tried or none can serve."""
        members = self.members
        if session is not None and self.cluster.sticky:
            name = self.sticky.get(session, now)
            if name is not None and name not in tried:
                member = members.get(name)
                if member is not None and member.health.usable(now):
                    return member
        scored = self.cluster.strategy == "least-latency"
        candidates = [
            Candidate(
                m.name,
                m.account.weight,
                m.account.priority,
                m.latency.score(now) if scored else 0.0,
            )
            for m in members.values()
            if m.name not in tried and m.header is not None and m.health.usable(now)
        ]
        if len(candidates) == 1:  # nothing to choose between
            return members[candidates[0].name]
        picked = choose(self.strategy, candidates)
        if picked is not None:
            return members[picked.name]
        return self._panic(tried, now)

    def _panic(self, tried: set[str], now: float) -> Member | None:
        """No account is usable: try those that are out anyway, soonest-recovering first.

        Accounts out for bad credentials or disabled by the user are never tried: they cannot
        succeed by themselves.
        """
        if any(m.health.usable(now) for m in self.members.values() if m.header is not None):
            return None  # usable accounts exist; they were all tried already
        waiting = [
            m
            for m in self.members.values()
            if m.name not in tried
            and m.header is not None
            and m.health.state not in (State.AUTH_FAILED, State.DISABLED)
        ]
        if not waiting:
            return None
        self.panics += 1
        member = min(waiting, key=lambda m: (m.health.recovers_at(now) or now, m.account.priority))
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

    # ---- outcomes ------------------------------------------------------------------------

    def begin(self, member: Member, now: float) -> None:
        member.stats.requests += 1
        member.stats.in_flight += 1
        member.last_used = now

    def end(self, member: Member) -> None:
        member.stats.in_flight -= 1

    def record_success(self, member: Member, now: float, ttfb: float | None) -> None:
        member.stats.outcomes[Outcome.SUCCESS] += 1
        if ttfb is not None:
            member.latency.observe(ttfb, now)
            member.stats.ttfb.observe(ttfb)
        member.health.record_success(now)

    def record_client_error(self, member: Member, now: float, ttfb: float | None) -> None:
        """The request was at fault, not the account: the account answered, so it is alive."""
        member.stats.outcomes[Outcome.CLIENT_ERROR] += 1
        if ttfb is not None:
            member.stats.ttfb.observe(ttfb)

    def record_failure(
        self,
        member: Member,
        outcome: Outcome,
        reason: str,
        now: float,
        wall_now: float,
        cooldown: float | None = None,
        *,
        detail: str = "",
        client_secrets: tuple[str, ...] = (),
    ) -> None:
        """One failed attempt. ``reason`` is qcc's own words (it becomes the health reason);
        ``detail`` is what the account said, kept in ``last_error`` only. Both are scrubbed of
        the account's credential and the client's key before they are stored."""
        stats = member.stats
        stats.failures += 1
        stats.outcomes[outcome] += 1
        secrets = member.secrets() + client_secrets
        reason = scrub(reason, secrets)
        stats.last_error = scrub(f"{reason}: {detail}", secrets) if detail else reason
        stats.last_error_at = wall_now
        member.latency.penalize(now)
        health = member.health
        before = health.state
        if outcome is Outcome.RATE_LIMITED:
            health.record_rate_limited(now, now + (cooldown or 0.0), reason)
        elif outcome is Outcome.AUTH_FAILED:
            health.record_auth_failure(now, reason)
        elif counts_against_health(outcome):
            health.record_failure(now, reason)
        if health.state is not before:
            log.warning("account %s: %s -> %s (%s)", member.name, before, health.state, reason)
            if health.state in (State.EJECTED, State.AUTH_FAILED):
                self.out_of_rotation.set()

    # ---- views ---------------------------------------------------------------------------

    def usable_count(self, now: float) -> int:
        return sum(
            1 for m in self.members.values() if m.header is not None and m.health.usable(now)
        )

    def unavailable_reasons(self, now: float) -> dict[str, str]:
        """Why each account that cannot serve now cannot: ``{"main": "auth_failed (why)"}``."""
        return {
            m.name: f"{m.health.state} ({scrub(m.health.reason, m.secrets())})"
            for m in self.members.values()
            if m.header is None or not m.health.usable(now)
        }

    def soonest_recovery(self, now: float) -> float | None:
        """Monotonic time at which some account will be usable again by itself, if any."""
        times = [
            t
            for m in self.members.values()
            if m.header is not None and (t := m.health.recovers_at(now)) is not None
        ]
        return min(times) if times else None
