"""Selection at scale: a pick scans nothing, and the view it picks from is never stale."""

from __future__ import annotations

import random
import tracemalloc
from typing import Any

import pytest
from proxyharness import cluster_config

from qcc.accounts.observe import Observation, Source
from qcc.accounts.pool import AccountPool
from qcc.routing.classify import Outcome
from qcc.routing.ratelimit import Limits, Quota

WALL = 1_800_000_000.0
STRATEGIES = ("priority", "round-robin", "weighted", "least-latency")


def pool_of(n: int, strategy: str, seed: int = 0, **kwargs: Any) -> AccountPool:
    urls = {f"acct{i:03d}": f"http://127.0.0.1:{i + 1}" for i in range(n)}
    config = cluster_config(urls, strategy=strategy, **kwargs)
    return AccountPool(config.cluster("test"), config.health, now=0.0, rng=random.Random(seed))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_pick_among_100_accounts_builds_nothing_per_account(strategy: str) -> None:
    pool = pool_of(100, strategy)
    tried: set[str] = set()
    worst, missed = 0, 0
    tracemalloc.start()
    try:
        for i in range(100):  # warm up: the view, the strategy's state (weighted: 100 ints)
            pool.select(tried, 1.0 + i / 1000)
        for i in range(1000):
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            missed += pool.select(tried, 2.0 + i / 1000) is None
            worst = max(worst, tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    assert missed == 0
    # A candidate list of 100 accounts is ~8 KB; a pick's few objects (least-latency: random.sample
    # of two, the score closure) about 1 KB, whatever the number of accounts.
    assert worst < 2000, f"{worst} bytes allocated at the peak of one pick"


def test_a_cool_down_ends_exactly_when_it_did_without_the_view() -> None:
    pool = pool_of(3, "round-robin")
    a = pool.members["acct000"]
    assert pool.select(set(), 0.0) is a  # the view is built
    pool.report(a, Observation(Source.TRAFFIC, Outcome.RATE_LIMITED, cooldown=10.0), 0.0, WALL)
    assert all(pool.select(set(), 9.999) is not a for _ in range(6))
    assert a in {pool.select(set(), 10.0) for _ in range(3)}


def test_an_account_changed_behind_the_pools_back_is_not_picked() -> None:
    pool = pool_of(2, "round-robin")
    a, b = pool.members["acct000"], pool.members["acct001"]
    assert pool.select(set(), 0.0) is a
    b.health.disable(0.0)  # not through the pool: the view still lists it
    assert [pool.select(set(), 1.0) for _ in range(3)] == [a, a, a]


def quota(remaining: int, reset_in: float) -> Limits:
    return Limits((Quota("requests", 100, remaining, WALL + reset_in),))


def observation(rng: random.Random) -> Observation:
    outcome = rng.choice(
        [Outcome.SUCCESS] * 4
        + [Outcome.RATE_LIMITED, Outcome.SERVER_ERROR, Outcome.EXHAUSTED, Outcome.AUTH_FAILED]
    )
    cooldown = rng.choice([None, 0.5, 3.0])
    source = Source.PROBE if rng.random() < 0.1 else Source.TRAFFIC
    return Observation(source, outcome, cooldown=cooldown, ttfb=rng.random())


def run(pool: AccountPool, seed: int, fresh: bool) -> list[str | None]:
    """A random life of a pool; the picks it made. ``fresh``: the view is rebuilt every time."""
    rng = random.Random(seed)
    names = list(pool.members)
    now, picks = 0.0, []
    for _ in range(1500):
        now += rng.choice([0.0, 0.001, 0.05, 0.4])
        member = pool.members[rng.choice(names)]
        roll = rng.random()
        if roll < 0.15:
            pool.report(member, observation(rng), now, WALL + now)
        elif roll < 0.2:
            room = rng.choice([0, 0, 50])
            pool.note_limits(member, quota(room, rng.choice([-1.0, 0.3, 2.0])), now, WALL + now)
        elif roll < 0.23:
            if pool.begin(member, now):
                pool.report(member, observation(rng), now, WALL + now)
                pool.end_trial(member, now)
            pool.end(member)
        elif roll < 0.24:
            pool.reset(member, now)
        elif roll < 0.25:
            pool.begin_probe(member, now)
        else:
            tried = set(rng.sample(names, rng.choice([0, 0, 0, 1, 3])))
            session = rng.choice([None, "s1", "s2"])
            if fresh:
                pool.invalidate()
            picked = pool.select(tried, now, session)
            if picked is not None:
                pool.remember_session(session, picked, now)
            picks.append(None if picked is None else picked.name)
    return picks


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_view_picks_what_a_fresh_look_would(strategy: str, seed: int) -> None:
    """Every state change the pool sees is seen by selection at once: two pools living the same
    life pick the same accounts, one of them building its view again before every pick."""
    accounts = {f"acct{i:03d}": {"priority": i % 3, "weight": i % 4} for i in range(12)}
    kept = run(pool_of(12, strategy, seed, sticky=True, accounts=accounts), seed, fresh=False)
    fresh = run(pool_of(12, strategy, seed, sticky=True, accounts=accounts), seed, fresh=True)
    assert kept == fresh
    assert len(set(kept)) > 4  # the life was varied enough to mean something
