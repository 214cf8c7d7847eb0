"""What the pool keeps of a failure: scrubbed of the account's credential and the client's key."""

from __future__ import annotations

from proxyharness import cluster_config

from qcc.accounts.observe import Observation, Source
from qcc.accounts.pool import AccountPool
from qcc.health.state import State
from qcc.routing.classify import Outcome

TOKEN = "oat01-TOKENTOKENTOKENTOKEN-777"
CLIENT = "client-key-0123456789abcdef"


def make_pool() -> AccountPool:
    config = cluster_config(
        {"tok": "http://127.0.0.1:1", "other": "http://127.0.0.1:2"},
        accounts={"tok": {"auth_token": TOKEN}},
    )
    return AccountPool(config.cluster("test"), config.health, now=0.0)


def test_failure_detail_and_reason_are_scrubbed() -> None:
    pool = make_pool()
    member = pool.members["tok"]
    assert member.secrets() == (f"Bearer {TOKEN}", TOKEN)
    seen = Observation(
        Source.TRAFFIC,
        Outcome.AUTH_FAILED,
        f"HTTP 401 authentication_error {TOKEN}",
        detail=f"bad token {TOKEN}, you sent {CLIENT}",
        client_secrets=(CLIENT,),
    )
    assert CLIENT not in repr(seen) and TOKEN not in repr(seen)
    pool.report(member, seen, 1.0, 1000.0)
    last = member.stats.last_error or ""
    assert TOKEN not in last and CLIENT not in last
    assert last.endswith("bad token [redacted], you sent [redacted]")
    assert member.health.state is State.AUTH_FAILED and TOKEN not in member.health.reason
    reasons = pool.unavailable_reasons(2.0)
    assert list(reasons) == ["tok"] and TOKEN not in reasons["tok"]
    assert reasons["tok"].startswith("auth_failed (HTTP 401 authentication_error")


# ---- exhausted: one trial, never in panic mode -----------------------------------------------


def exhaust(pool: AccountPool, name: str, now: float) -> None:
    seen = Observation(Source.TRAFFIC, Outcome.EXHAUSTED, "HTTP 400 out of credit", cooldown=10.0)
    pool.report(pool.members[name], seen, now, 1000.0)


def test_exhausted_account_takes_one_trial_and_another_end_never_frees_it() -> None:
    pool = make_pool()
    tok = pool.members["tok"]
    assert pool.begin(tok, 0.0) is False  # a request sent while it still had credit
    exhaust(pool, "tok", 1.0)
    assert pool.select({"other"}, 5.0) is None  # still waiting; panic mode never picks it
    assert pool.select(set(), 11.0) is tok  # the wait is over: usable for one request
    assert pool.begin(tok, 11.0) is True  # ...the trial
    assert pool.select({"other"}, 11.5) is None
    pool.end(tok)  # the request sent before it ran out ends: the trial is still out
    assert pool.select({"other"}, 12.0) is None
    pool.end(tok)
    pool.end_trial(tok, 13.0)  # the trial ended without a word on credit: released
    assert pool.select({"other"}, 13.0) is tok


def test_soonest_recovery_can_leave_far_exhausted_accounts_out() -> None:
    pool = make_pool()
    exhaust(pool, "tok", 0.0)
    exhaust(pool, "other", 0.0)
    assert pool.soonest_recovery(1.0) == 10.0
    assert pool.soonest_recovery(1.0, exhausted_within=60.0) == 10.0
    assert pool.soonest_recovery(1.0, exhausted_within=5.0) is None


def test_reload_resets_an_exhausted_account_whose_config_changed() -> None:
    from dataclasses import replace

    pool = make_pool()
    exhaust(pool, "tok", 0.0)
    exhaust(pool, "other", 0.0)
    cluster = pool.cluster
    accounts = tuple(
        replace(a, budget_daily_usd=5.0) if a.name == "tok" else a for a in cluster.accounts
    )
    pool.apply(replace(cluster, accounts=accounts), pool.health_settings, now=1.0)
    assert pool.members["tok"].health.state is State.HEALTHY
    assert pool.members["tok"].health.reason == "reset: its config changed"
    assert pool.members["other"].health.state is State.EXHAUSTED  # unchanged: still out
    pool.apply(pool.cluster, pool.health_settings, now=2.0)  # the same config again
    assert pool.members["other"].health.state is State.EXHAUSTED


def test_reload_with_other_rules_resets_exhausted_accounts() -> None:
    from dataclasses import replace

    from qcc.routing.rules import Rule

    pool = make_pool()
    exhaust(pool, "tok", 0.0)
    rules = (Rule("quota", "exhausted", name="clusters.test.rules[0]"),)
    pool.apply(replace(pool.cluster, rules=rules), pool.health_settings, now=1.0)
    assert pool.members["tok"].health.state is State.HEALTHY
    assert pool.members["tok"].health.reason == "reset: the cluster's rules changed"
