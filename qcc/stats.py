"""Per-account counters, latency histograms and token usage. Plain data; the pool owns them."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

# Prometheus-style upper bounds, seconds. Time to first byte of LLM calls spans ms to minutes.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


class Histogram:
    """Cumulative-friendly latency histogram with fixed buckets (plus +Inf)."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds

    def quantile(self, q: float) -> float | None:
        """Estimate a quantile (linear inside the bucket); None without samples."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                lower = LATENCY_BUCKETS[i - 1] if i else 0.0
                upper = LATENCY_BUCKETS[i] if i < len(LATENCY_BUCKETS) else lower * 2 or 1.0
                return lower + (upper - lower) * ((rank - seen) / n)
            seen += n
        return LATENCY_BUCKETS[-1]


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def add(self, other: dict[str, int]) -> None:
        for name in USAGE_FIELDS:
            value = other.get(name)
            if value:
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in USAGE_FIELDS}

    @property
    def cache_read_share(self) -> float | None:
        """Share of prompt tokens served from the prompt cache: what stickiness buys."""
        prompt = self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens
        return self.cache_read_input_tokens / prompt if prompt else None


@dataclass
class AccountStats:
    requests: int = 0  # attempts sent to this account
    failures: int = 0  # attempts that failed over (any reason)
    local_errors: int = 0  # attempts that failed on qcc's side; never held against the account
    in_flight: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    last_error_at: float | None = None  # wall clock
    last_rule: str | None = None  # the error-body rule matched last ("built-in: credit-balance")
    ttfb: Histogram = field(default_factory=Histogram)
    usage: Usage = field(default_factory=Usage)
