"""What a (re)loaded cluster makes of the pool's members: kept, carried over, or new.

An account whose endpoint and credential are unchanged keeps its member (health, latency score,
stats, limits, spend), its settings and enabled flag applied; an exhausted one is reset when its
config or the cluster's rules changed (what made it exhausted may no longer hold). Any other
account gets a new member: healthy, keeping only the counters and spend of the one it replaces
(they are history). Pure: the pool gives the new members their credential sources and adopts the
result (:meth:`~qcc.accounts.pool.AccountPool.apply`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from qcc.accounts.member import Member
from qcc.config.model import Account, Cluster, HealthSettings
from qcc.health.state import AccountHealth, State


def _same_endpoint(a: Account, b: Account) -> bool:
    """Health survives a reload unless what it judged (endpoint, credential) changed."""
    return a.base_url == b.base_url and a.credential == b.credential


def members_for(
    cluster: Cluster,
    health: HealthSettings,
    old: Mapping[str, Member],
    rules_changed: bool,
    now: float,
    rng: random.Random,
) -> tuple[dict[str, Member], list[Member]]:
    """The members of ``cluster`` by name, and those of them that are new (in config order)."""
    members: dict[str, Member] = {}
    new: list[Member] = []
    for account in cluster.accounts:
        member = old.get(account.name)
        if member is None or not _same_endpoint(member.account, account):
            member = Member(
                account=account,
                health=AccountHealth(health, enabled=account.enabled, now=now, rng=rng),
            )
            if old.get(account.name) is not None:
                member.stats = old[account.name].stats  # counters are history; keep them
                member.spend = old[account.name].spend  # so is what it spent
            new.append(member)
        else:
            changed = member.account != account
            member.account = account
            member.health.update_settings(health)
            if member.health.state is State.EXHAUSTED and (changed or rules_changed):
                why = "its config changed" if changed else "the cluster's rules changed"
                member.health.reset(now, f"reset: {why}")
            if account.enabled and member.health.state is State.DISABLED:
                member.health.enable(now)
            elif not account.enabled and member.health.state is not State.DISABLED:
                member.health.disable(now)
        members[account.name] = member
    return members, new
