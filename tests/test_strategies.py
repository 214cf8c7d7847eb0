from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from qcc.routing.latency import LatencyScore
from qcc.routing.strategies import (
    Candidate,
    LeastLatency,
    RoundRobin,
    SmoothWeighted,
    Strategy,
    StrictPriority,
    choose,
    make_strategy,
)

NAMES = ("priority", "round-robin", "weighted", "least-latency")


def picks(strategy: Strategy, candidates: list[Candidate], n: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _ in range(n):
        picked = choose(strategy, candidates)
        assert picked is not None
        counts[picked.name] += 1
    return counts


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("priority", StrictPriority),
        ("round-robin", RoundRobin),
        ("weighted", SmoothWeighted),
        ("least-latency", LeastLatency),
    ],
)
def test_make_strategy(name: str, kind: type) -> None:
    assert isinstance(make_strategy(name, random.Random(1)), kind)


def test_make_strategy_unknown() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'fastest'"):
        make_strategy("fastest")


@pytest.mark.parametrize("name", NAMES)
def test_choose_empty_is_none(name: str) -> None:
    assert choose(make_strategy(name), []) is None


@pytest.mark.parametrize("name", NAMES)
def test_lower_tier_only_when_no_higher_one(name: str) -> None:
    strategy = make_strategy(name, random.Random(7))
    cands = [
        Candidate("backup", priority=1),
        Candidate("a"),
        Candidate("b"),
        Candidate("c", priority=2),
    ]
    top = {"a"} if name == "priority" else {"a", "b"}  # priority: config order within a tier
    assert set(picks(strategy, cands, 200)) == top
    rest = [c for c in cands if c.name not in ("a", "b")]
    assert set(picks(strategy, rest, 50)) == {"backup"}
    assert set(picks(strategy, [cands[-1]], 5)) == {"c"}


@pytest.mark.parametrize("name", NAMES)
def test_weight_zero_is_standby(name: str) -> None:
    strategy = make_strategy(name, random.Random(3))
    standby = Candidate("s", weight=0, score=0.0)
    cands = [standby, Candidate("a", weight=1, score=5.0), Candidate("b", weight=2, score=5.0)]
    assert "s" not in picks(strategy, cands, 300)
    # alone in its tier (or every one in it at weight 0) it serves, evenly
    assert set(picks(strategy, [standby], 3)) == {"s"}
    both = [standby, Candidate("t", weight=0)]
    counts = picks(strategy, both, 400)
    assert set(counts) <= {"s", "t"}
    if name != "priority":
        assert set(counts) == {"s", "t"}


def test_strict_priority_is_config_order() -> None:
    strategy = StrictPriority()
    cands = [Candidate("z"), Candidate("a"), Candidate("m")]
    assert picks(strategy, cands, 100) == Counter({"z": 100})
    assert choose(strategy, cands[1:]) == Candidate("a")


def test_round_robin_is_even() -> None:
    cands = [Candidate("c", weight=5), Candidate("a"), Candidate("b")]
    counts = picks(RoundRobin(), cands, 9999)
    assert counts == Counter({"a": 3333, "b": 3333, "c": 3333})


def test_round_robin_order_and_membership_changes() -> None:
    rr = RoundRobin()
    abc = [Candidate("c"), Candidate("a"), Candidate("b")]
    assert [rr.pick(abc).name for _ in range(4)] == ["a", "b", "c", "a"]
    # "b" is gone (e.g. tried already): continue after the last name, skipping it
    assert rr.pick([Candidate("a"), Candidate("c")]).name == "c"
    # a new name slots into sorted order
    assert [rr.pick([*abc, Candidate("bb")]).name for _ in range(4)] == ["a", "b", "bb", "c"]


def test_weighted_3_to_1_is_exact() -> None:
    cands = [Candidate("a", weight=3), Candidate("b", weight=1)]
    assert picks(SmoothWeighted(), cands, 10_000) == Counter({"a": 7500, "b": 2500})


def test_weighted_is_smooth_like_nginx() -> None:
    sw = SmoothWeighted()
    cands = [Candidate("a", weight=5), Candidate("b", weight=1), Candidate("c", weight=1)]
    sequence = [sw.pick(cands).name for _ in range(14)]
    assert sequence == list("aabacaa") * 2


def test_weighted_absent_names_keep_state_but_state_is_bounded() -> None:
    sw = SmoothWeighted(max_names=8)
    a, b = Candidate("a", weight=1), Candidate("b", weight=1)
    assert sw.pick([a, b]).name == "a"
    assert sw.pick([b]).name == "b"
    assert sw.current["a"] == -1  # kept while absent
    for i in range(50):
        sw.pick([Candidate(f"n{i}")])
        assert len(sw.current) <= 9


def test_least_latency_single_candidate() -> None:
    only = Candidate("a", score=9.0)
    assert LeastLatency(random.Random(0)).pick([only]) is only


def test_least_latency_prefers_lower_score() -> None:
    cands = [
        Candidate("slow", score=2.0),
        Candidate("fast", score=0.2),
        Candidate("mid", score=1.0),
    ]
    counts = picks(LeastLatency(random.Random(42)), cands, 9000)
    # P2C over 3: the best wins 2/3 of pairs, the worst never wins
    assert counts["fast"] > counts["mid"] > 0
    assert counts["slow"] == 0
    assert 5400 < counts["fast"] < 6600


def test_least_latency_ignores_weights_and_breaks_ties_by_first_sampled() -> None:
    cands = [Candidate("a", weight=9), Candidate("b", weight=1)]
    counts = picks(LeastLatency(random.Random(5)), cands, 4000)
    assert 1700 < counts["a"] < 2300


def test_penalized_fast_account_loses() -> None:
    fast, slow = LatencyScore(), LatencyScore()
    fast.observe(0.05, 0.0)
    slow.observe(1.5, 0.0)
    fast.penalize(1.0)
    cands = [Candidate("fast", score=fast.score(1.0)), Candidate("slow", score=slow.score(1.0))]
    assert picks(LeastLatency(random.Random(1)), cands, 100) == Counter({"slow": 100})
    later = [Candidate("fast", score=fast.score(200.0)), Candidate("slow", score=slow.score(200.0))]
    assert picks(LeastLatency(random.Random(1)), later, 100) == Counter({"fast": 100})


@pytest.mark.parametrize("name", NAMES)
def test_picks_are_cheap(name: str) -> None:
    strategy = make_strategy(name, random.Random(0))
    cands = [
        Candidate(f"acct{i}", weight=i % 3 + 1, priority=i % 2, score=i / 10) for i in range(8)
    ]
    started = time.perf_counter()
    for _ in range(100_000):
        choose(strategy, cands)
    assert time.perf_counter() - started < 10.0  # generous: ~0.2 s in practice
