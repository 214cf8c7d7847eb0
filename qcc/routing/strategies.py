"""Load-balancing strategies: which usable account serves the next attempt.

:func:`choose` narrows the candidates to the best priority tier (the lowest ``priority`` number
with any candidate: a lower tier serves only when no higher one can), then asks the strategy.

Within a tier, accounts of weight 0 are standby: they are picked only when every candidate of
the tier has weight 0 (and are then treated as weight 1). This holds for every strategy.

    priority        the first candidate in config order: pure failover
    round-robin     the next name in sorted order after the last pick
    weighted        nginx's smooth weighted round-robin (deterministic)
    least-latency   power of two choices on LatencyScore.score (lower wins)

A :class:`Tier` is one tier's serving candidates prepared once; the pool keeps one per state
version and picks from it many times, so a pick builds no list: round-robin is a binary search
over the names sorted once (O(log n)), least-latency two random draws whose scores are read at
pick time (O(1)), priority O(1); weighted does nginx's O(n) arithmetic over the tier, in place.

Strategies keep a little state between calls and are not thread-safe; the proxy runs them on
its event loop only.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from qcc.config.model import STRATEGIES


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    weight: int = 1
    priority: int = 0
    score: float = 0.0  # least-latency score (LatencyScore.score), lower is better


Scorer = Callable[[Candidate], float]  # a candidate's least-latency score, read at pick time


def serving(tier: Sequence[Candidate]) -> Sequence[Candidate]:
    """The candidates that may be picked: those with weight > 0, else all (standby)."""
    active = [c for c in tier if c.weight > 0]
    return active or tier


class Tier:
    """One priority tier's candidates that may serve (:func:`serving`), prepared once to be
    picked from many times. ``pool`` keeps the given (config) order."""

    __slots__ = ("_names", "_sorted", "_weights", "pool", "standby", "total")

    def __init__(self, tier: Sequence[Candidate]) -> None:
        self.pool = serving(tier)
        self.standby = not self.pool or self.pool[0].weight <= 0  # all weight 0: count as 1
        self._sorted: list[Candidate] | None = None
        self._names: list[str] = []
        self._weights: list[tuple[Candidate, str, int]] | None = None
        self.total = 0  # the sum of the weights that count (set with ``weighted()``)

    def by_name(self) -> tuple[list[Candidate], list[str]]:
        """The pool sorted by name, and the names alone (sorted on first use only)."""
        if self._sorted is None:
            self._sorted = sorted(self.pool, key=_name)
            self._names = [c.name for c in self._sorted]
        return self._sorted, self._names

    def weighted(self) -> list[tuple[Candidate, str, int]]:
        """Each candidate with its name and the weight that counts (1 for standby)."""
        if self._weights is None:
            self._weights = [(c, c.name, 1 if self.standby else c.weight) for c in self.pool]
            self.total = sum(w for _, _, w in self._weights)
        return self._weights


def _name(c: Candidate) -> str:
    return c.name


class Strategy(Protocol):
    def pick(self, tier: Sequence[Candidate]) -> Candidate:
        """One of ``tier``: non-empty, one priority, all usable."""
        ...

    def pick_from(self, tier: Tier, score: Scorer | None = None) -> Candidate:
        """One of a prepared, non-empty ``tier``; ``score`` overrides ``Candidate.score``."""
        ...


class StrictPriority:
    """The first candidate in the given (config) order wins."""

    def pick(self, tier: Sequence[Candidate]) -> Candidate:
        return self.pick_from(Tier(tier))

    def pick_from(self, tier: Tier, score: Scorer | None = None) -> Candidate:
        return tier.pool[0]


class RoundRobin:
    """Rotates by name: picks the next name in sorted order after the last one picked.

    Remembering a name (not an index) keeps the rotation fair when accounts come and go.
    """

    def __init__(self) -> None:
        self.last: str | None = None

    def pick(self, tier: Sequence[Candidate]) -> Candidate:
        return self.pick_from(Tier(tier))

    def pick_from(self, tier: Tier, score: Scorer | None = None) -> Candidate:
        ordered, names = tier.by_name()
        i = 0 if self.last is None else bisect_right(names, self.last)
        picked = ordered[i] if i < len(ordered) else ordered[0]
        self.last = picked.name
        return picked


class SmoothWeighted:
    """nginx's smooth weighted round-robin: weights 5,1,1 give ``a a b a c a a``.

    Each pick adds every candidate's weight to its ``current``, picks the largest (ties: the
    smallest name) and subtracts the tier's total weight from the winner. Names absent from a
    tier keep their ``current``; when more than ``max_names`` names are remembered, those not in
    the current tier are forgotten, so the state stays bounded.
    """

    def __init__(self, max_names: int = 256) -> None:
        self.current: dict[str, int] = {}
        self.max_names = max_names

    def pick(self, tier: Sequence[Candidate]) -> Candidate:
        return self.pick_from(Tier(tier))

    def pick_from(self, tier: Tier, score: Scorer | None = None) -> Candidate:
        weighted = tier.weighted()
        current = self.current
        get = current.get
        best, best_name, best_value = weighted[0][0], "", None
        for c, name, weight in weighted:  # O(n) arithmetic, nothing built
            value = get(name, 0) + weight
            current[name] = value
            if (
                best_value is None
                or value > best_value
                or (value == best_value and name < best_name)
            ):
                best, best_name, best_value = c, name, value
        assert best_value is not None  # tier is non-empty
        current[best_name] = best_value - tier.total
        if len(current) > self.max_names:
            names = {c.name for c in tier.pool}
            for name in [n for n in current if n not in names]:
                del current[name]
        return best


class LeastLatency:
    """Power of two choices: sample two distinct candidates, keep the lower score.

    Ties go to the first sampled. Weights are ignored except for the weight-0 standby rule.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def pick(self, tier: Sequence[Candidate]) -> Candidate:
        return self.pick_from(Tier(tier))

    def pick_from(self, tier: Tier, score: Scorer | None = None) -> Candidate:
        pool = tier.pool
        if len(pool) == 1:
            return pool[0]
        i, j = self.rng.sample(range(len(pool)), 2)
        a, b = pool[i], pool[j]
        if score is None:
            return b if b.score < a.score else a
        return b if score(b) < score(a) else a


def make_strategy(name: str, rng: random.Random | None = None) -> Strategy:
    """The strategy named in config: priority, round-robin, weighted or least-latency."""
    if name == "priority":
        return StrictPriority()
    if name == "round-robin":
        return RoundRobin()
    if name == "weighted":
        return SmoothWeighted()
    if name == "least-latency":
        return LeastLatency(rng)
    raise ValueError(f"unknown strategy '{name}'; expected one of: {', '.join(STRATEGIES)}")


def best_tier(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates of the lowest ``priority`` number among ``candidates`` (non-empty)."""
    best = min(c.priority for c in candidates)
    return [c for c in candidates if c.priority == best]


def choose(
    strategy: Strategy, candidates: Sequence[Candidate], score: Scorer | None = None
) -> Candidate | None:
    """The pick among the best priority tier of ``candidates`` (usable, not yet tried), or None."""
    if not candidates:
        return None
    return strategy.pick_from(Tier(best_tier(candidates)), score)
