from __future__ import annotations

from qcc.config.model import RetrySettings
from qcc.routing.budget import RetryBudget


def spend_all(budget: RetryBudget, now: float) -> int:
    spent = 0
    while budget.try_spend(now):
        spent += 1
        assert spent < 10_000
    return spent


def test_idle_proxy_still_gets_the_floor() -> None:
    budget = RetryBudget(RetrySettings(budget_ratio=0.2, budget_min=10, budget_window=10.0))
    assert spend_all(budget, 0.0) == 10
    assert budget.snapshot(0.0) == (0, 10)


def test_ratio_plus_floor() -> None:
    budget = RetryBudget(RetrySettings(budget_ratio=0.2, budget_min=10, budget_window=10.0))
    for i in range(100):
        budget.record_request(i * 0.05)  # 100 requests over 5 s
    assert budget.allowed(5.0) == 30
    assert spend_all(budget, 5.0) == 30
    assert not budget.try_spend(5.5)
    assert budget.snapshot(5.5) == (100, 30)


def test_more_requests_reopen_the_budget() -> None:
    budget = RetryBudget(RetrySettings(budget_ratio=0.5, budget_min=0, budget_window=10.0))
    assert not budget.try_spend(0.0)
    budget.record_request(0.0)
    assert not budget.try_spend(0.0)  # 0.5 rounds down
    budget.record_request(0.1)
    assert budget.try_spend(0.2)
    assert not budget.try_spend(0.3)


def test_window_slides() -> None:
    budget = RetryBudget(RetrySettings(budget_ratio=0.2, budget_min=10, budget_window=10.0))
    for _ in range(50):
        budget.record_request(0.5)
    assert spend_all(budget, 0.5) == 20
    assert budget.snapshot(9.9) == (50, 20)  # second 0 is still in the window
    assert budget.snapshot(10.0) == (0, 0)  # and then it is not
    assert spend_all(budget, 10.0) == 10


def test_partial_slide_keeps_recent_buckets() -> None:
    budget = RetryBudget(RetrySettings(budget_ratio=1.0, budget_min=0, budget_window=3.0))
    budget.record_request(0.0)
    budget.record_request(1.0)
    budget.record_request(2.0)
    assert budget.snapshot(2.0) == (3, 0)
    assert budget.snapshot(3.0) == (2, 0)
    assert budget.snapshot(4.0) == (1, 0)
    budget.record_request(4.5)
    assert budget.snapshot(4.5) == (2, 0)
    assert budget.snapshot(1000.0) == (0, 0)  # a long idle gap clears everything


def test_time_going_backwards_counts_as_the_same_second() -> None:
    budget = RetryBudget(RetrySettings(budget_ratio=1.0, budget_min=0, budget_window=10.0))
    budget.record_request(5.0)
    budget.record_request(3.0)
    assert budget.snapshot(5.0) == (2, 0)


def test_tiny_window_has_one_bucket() -> None:
    budget = RetryBudget(RetrySettings(budget_ratio=1.0, budget_min=1, budget_window=0.5))
    budget.record_request(0.0)
    assert spend_all(budget, 0.0) == 2
    assert spend_all(budget, 1.0) == 1
