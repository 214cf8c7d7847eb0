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
