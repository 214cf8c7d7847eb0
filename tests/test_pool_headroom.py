"""The pool's headroom filter, without sockets: accounts that said they are out of room."""

from __future__ import annotations

from dataclasses import replace

import pytest
from proxyharness import cluster_config

from qcc.accounts.pool import AccountPool
from qcc.routing.ratelimit import Limits, Quota, Window

WALL = 1_800_000_000.0


def pool_of(strategy: str = "priority", sticky: bool = False) -> AccountPool:
    urls = {"a": "http://127.0.0.1:1", "b": "http://127.0.0.1:2", "c": "http://127.0.0.1:3"}
    config = cluster_config(urls, strategy=strategy, sticky=sticky, accounts={"c": {"priority": 5}})
    return AccountPool(config.cluster("test"), config.health, now=0.0)


def quota(remaining: int, reset_in: float = 600.0) -> Limits:
    return Limits((Quota("requests", 100, remaining, WALL + reset_in),))


@pytest.mark.parametrize("strategy", ["priority", "weighted", "round-robin", "least-latency"])
def test_only_a_lower_tier_with_room_is_chosen(strategy: str) -> None:
    pool = pool_of(strategy)
    for name in ("a", "b"):
        pool.note_limits(pool.members[name], quota(0), 0.0, WALL)
    picks = {pool.select(set(), 1.0).name for _ in range(10)}  # type: ignore[union-attr]
    assert picks == {"c"}  # any tier with room beats the best tier without


def test_headroom_min_and_windows() -> None:
    pool = pool_of()
    a = pool.members["a"]
    pool.note_limits(a, quota(5), 0.0, WALL)  # 5% left: not below the 5% minimum
    assert pool.full_members == 0
    pool.note_limits(a, quota(4), 0.0, WALL)
    assert pool.full_members == 1 and a.full_until == 600.0
    nearly = Limits(windows=(Window("5h", "allowed", 0.99, WALL + 60),))
    pool.note_limits(a, nearly, 0.0, WALL)
    assert pool.full_members == 1 and a.full_until == 60.0
    pool.note_limits(a, quota(50), 0.0, WALL)
    assert pool.full_members == 0 and a.full_until is None
    pool.note_limits(a, quota(0, reset_in=-1), 0.0, WALL)  # a reset already past: room
    assert pool.full_members == 0


def test_sticky_account_out_of_room_kept_when_no_other_has_room() -> None:
    pool = pool_of(sticky=True)
    a, b, c = (pool.members[n] for n in "abc")
    pool.remember_session("s", a, 0.0)
    pool.note_limits(a, quota(0), 0.0, WALL)
    assert pool.select(set(), 1.0, "s") is b  # b has room
    pool.note_limits(b, quota(2), 1.0, WALL + 1)
    pool.note_limits(c, quota(0), 1.0, WALL + 1)
    assert pool.select(set(), 2.0, "s") is a  # none has room: the session's account
    assert pool.select({"a"}, 2.0, "s") is b  # never refused for headroom alone
    assert pool.select(set(), 700.0, "s") is a  # all reset: the session's account again
    assert pool.select({"a"}, 700.0, "s") is b and pool.full_members == 0  # cleared when seen


def test_a_reloaded_headroom_min_judges_the_latest_limits_again() -> None:
    pool = pool_of()
    a = pool.members["a"]
    pool.note_limits(a, quota(8), 0.0, WALL)  # 8% left: room at the default 5%
    assert pool.full_members == 0
    pool.apply(replace(pool.cluster, headroom_min=0.1), pool.health_settings, now=1.0)
    pool.recheck(1.0, WALL + 1)
    assert pool.full_members == 1 and pool.select(set(), 2.0) is pool.members["b"]
