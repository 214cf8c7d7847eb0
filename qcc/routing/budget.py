"""Retry budget: a cap on failovers so a sick cluster is not hammered by its own retries.

Envoy-style: within a sliding window of ``budget_window`` seconds, at most
``budget_ratio * requests + budget_min`` failovers are allowed. ``requests`` counts client
requests (one :meth:`RetryBudget.record_request` each, however many accounts they try); the
floor ``budget_min`` lets a quiet proxy still fail over.

The window is a ring of 1-second buckets with running totals: every call is amortized O(1)
and memory is bounded by the window length. Time that goes backwards is treated as "same second".
"""

from __future__ import annotations

import math

from qcc.config.model import RetrySettings


class RetryBudget:
    """Failovers allowed per sliding window: ``budget_ratio * requests + budget_min``."""

    def __init__(self, settings: RetrySettings) -> None:
        self.settings = settings
        self._size = max(1, math.ceil(settings.budget_window))
        self._requests = [0] * self._size
        self._retries = [0] * self._size
        self._total_requests = 0
        self._total_retries = 0
        self._second: int | None = None  # the second the newest bucket belongs to

    def _advance(self, now: float) -> int:
        """Clear the buckets that left the window; return the current bucket's index."""
        second = math.floor(now)
        last = self._second
        if last is None:
            self._second = second
        elif second > last:
            for step in range(1, min(second - last, self._size) + 1):
                slot = (last + step) % self._size
                self._total_requests -= self._requests[slot]
                self._total_retries -= self._retries[slot]
                self._requests[slot] = 0
                self._retries[slot] = 0
            self._second = second
        assert self._second is not None
        return self._second % self._size

    def record_request(self, now: float) -> None:
        """A client request arrived."""
        slot = self._advance(now)
        self._requests[slot] += 1
        self._total_requests += 1

    def allowed(self, now: float) -> int:
        """How many failovers the current window allows in total."""
        self._advance(now)
        return self._allowed()

    def _allowed(self) -> int:
        ratio = self.settings.budget_ratio * self._total_requests
        return math.floor(ratio + 1e-9) + self.settings.budget_min

    def try_spend(self, now: float) -> bool:
        """Count one failover and return True if the budget allows it; else False."""
        slot = self._advance(now)
        if self._total_retries >= self._allowed():
            return False
        self._retries[slot] += 1
        self._total_retries += 1
        return True

    def snapshot(self, now: float) -> tuple[int, int]:
        """(requests, retries) in the current window."""
        self._advance(now)
        return self._total_requests, self._total_retries
