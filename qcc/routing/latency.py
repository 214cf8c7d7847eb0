"""The least-latency score: how fast an account answers, made worse by its recent failures.

``score = ewma(ttfb) + penalty(now)``, lower is better. Each failure adds ``penalty`` seconds to
a penalty that decays exponentially with time constant ``penalty_decay`` (it drops to ~37 % after
``penalty_decay`` seconds, ~5 % after three times that). So an account that fails fast (tiny
TTFB, but failing) scores worse than a slower healthy one, and wins again once it stops failing.
The penalty is capped at ``PENALTY_CAP`` failures' worth so a burst cannot bury an account for long.
"""

from __future__ import annotations

import math

PENALTY_CAP = 5.0  # the accumulated penalty never exceeds this many single penalties


class LatencyScore:
    """EWMA of time-to-first-byte (seconds) with a failure penalty, for least-latency."""

    __slots__ = ("_at", "_ewma", "_penalty", "alpha", "penalty", "penalty_decay")

    def __init__(self, alpha: float = 0.3, penalty: float = 2.0, penalty_decay: float = 30.0):
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.penalty = penalty
        self.penalty_decay = max(penalty_decay, 1e-9)
        self._ewma: float | None = None
        self._penalty = 0.0  # value of the penalty at time self._at
        self._at = 0.0

    def _decayed(self, now: float) -> float:
        if self._penalty == 0.0:
            return 0.0
        elapsed = max(now - self._at, 0.0)
        return self._penalty * math.exp(-elapsed / self.penalty_decay)

    def observe(self, ttfb: float, now: float) -> None:
        """A successful response whose first byte came ``ttfb`` seconds after sending."""
        ttfb = max(ttfb, 0.0)
        if self._ewma is None:
            self._ewma = ttfb
        else:
            self._ewma += self.alpha * (ttfb - self._ewma)

    def penalize(self, now: float) -> None:
        """A failure (or 429): the score gets worse by ``penalty`` seconds, decaying from now."""
        current = self._decayed(now) + self.penalty
        self._penalty = min(current, self.penalty * PENALTY_CAP)
        self._at = now

    def score(self, now: float) -> float:
        """Lower is better. 0.0 for an account never sampled nor penalized, so it gets explored."""
        return (self._ewma or 0.0) + self._decayed(now)

    @property
    def ewma(self) -> float | None:
        """The plain EWMA of TTFB in seconds, for display; None before the first sample."""
        return self._ewma
