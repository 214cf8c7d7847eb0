from __future__ import annotations

import pytest

from qcc.routing.latency import PENALTY_CAP, LatencyScore


def test_new_account_scores_zero_so_it_is_explored() -> None:
    score = LatencyScore()
    assert score.score(0.0) == 0.0
    assert score.ewma is None


def test_first_sample_sets_ewma_then_smooths() -> None:
    score = LatencyScore(alpha=0.5)
    score.observe(1.0, now=0.0)
    assert score.ewma == 1.0
    score.observe(3.0, now=1.0)
    assert score.ewma == pytest.approx(2.0)
    score.observe(2.0, now=2.0)
    assert score.ewma == pytest.approx(2.0)
    assert score.score(2.0) == pytest.approx(2.0)


def test_negative_ttfb_is_treated_as_zero() -> None:
    score = LatencyScore()
    score.observe(-1.0, now=0.0)
    assert score.ewma == 0.0


def test_fast_failing_account_scores_worse_than_slow_healthy_one() -> None:
    fast, slow = LatencyScore(), LatencyScore()
    for t in range(10):
        fast.observe(0.05, now=float(t))
        slow.observe(1.5, now=float(t))
    fast.penalize(now=10.0)
    assert fast.score(10.0) > slow.score(10.0)


def test_penalty_decays_so_the_account_can_win_again() -> None:
    fast, slow = LatencyScore(penalty=2.0, penalty_decay=30.0), LatencyScore()
    fast.observe(0.05, now=0.0)
    slow.observe(1.5, now=0.0)
    fast.penalize(now=0.0)
    assert fast.score(0.0) == pytest.approx(2.05)
    assert fast.score(30.0) == pytest.approx(0.05 + 2.0 / 2.718281828, rel=1e-6)
    assert fast.score(120.0) < slow.score(120.0)
    assert fast.ewma == 0.05  # the display value is the plain EWMA


def test_penalties_accumulate_up_to_a_cap() -> None:
    score = LatencyScore(penalty=2.0)
    score.penalize(now=0.0)
    score.penalize(now=0.0)
    assert score.score(0.0) == pytest.approx(4.0)
    for _ in range(100):
        score.penalize(now=0.0)
    assert score.score(0.0) == pytest.approx(2.0 * PENALTY_CAP)


def test_penalty_without_samples() -> None:
    score = LatencyScore()
    score.penalize(now=5.0)
    assert score.score(5.0) == pytest.approx(2.0)
    assert score.ewma is None


def test_clock_going_backwards_does_not_grow_penalty() -> None:
    score = LatencyScore()
    score.penalize(now=10.0)
    assert score.score(5.0) == pytest.approx(2.0)


def test_invalid_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        LatencyScore(alpha=0.0)
