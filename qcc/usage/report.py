"""What ``qcc usage`` shows: totals per account, model, day or client key, with cost and savings.

Pure over a :class:`~qcc.usage.store.UsageStore` query: no printing. Cost is what was recorded
(with the price known at the time); what cache reads saved is computed with today's prices, per
model, as cache-read tokens x (input price - cache-read price).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qcc.usage.pricing import PriceTable, Tokens, cache_read_saved
from qcc.usage.store import UsageStore

GROUPINGS = ("account", "model", "day", "key")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass(frozen=True)
class ReportRow:
    name: str
    requests: int
    tokens: Tokens
    cost_usd: float | None  # None: no request here had a known price
    unpriced: int  # requests without a known price (their cost is not in cost_usd)
    saved_usd: float | None  # None: no cache read of a priced model

    @property
    def cache_read_share(self) -> float | None:
        """Share of prompt tokens served from the prompt cache."""
        t = self.tokens
        prompt = t.input + t.cache_read + t.cache_write
        return t.cache_read / prompt if prompt else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": self.requests,
            "tokens": self.tokens._asdict(),
            "cost_usd": _round(self.cost_usd),
            "price_unknown_requests": self.unpriced,
            "cache_read_share": _round(self.cache_read_share),
            "cache_read_saved_usd": _round(self.saved_usd),
        }


@dataclass(frozen=True)
class Report:
    by: str
    since_day: str | None
    until_day: str | None
    cluster: str | None
    prices_as_of: str | None
    rows: tuple[ReportRow, ...]
    total: ReportRow

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": self.since_day,
            "until": self.until_day,
            "cluster": self.cluster,
            "prices_as_of": self.prices_as_of,
            "rows": [row.as_dict() for row in self.rows],
            "total": self.total.as_dict(),
        }


def _add_cost(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else a + b


class _Sum:
    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = 0
        self.tokens = Tokens()
        self.cost: float | None = None
        self.unpriced = 0
        self.saved: float | None = None

    def add(self, requests: int, counted: Tokens, cost: float | None, unpriced: int) -> None:
        self.requests += requests
        self.tokens = Tokens(*(a + b for a, b in zip(self.tokens, counted, strict=True)))
        self.cost = _add_cost(self.cost, cost)
        self.unpriced += unpriced

    def row(self) -> ReportRow:
        return ReportRow(
            self.name, self.requests, self.tokens, self.cost, self.unpriced, self.saved
        )


def build_report(
    store: UsageStore,
    prices: PriceTable,
    since_day: str | None,
    until_day: str | None = None,
    cluster: str | None = None,
    by: str = "account",
) -> Report:
    """Totals grouped ``by`` one of :data:`GROUPINGS`, plus a total row."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}")
    groups: dict[str, _Sum] = {}
    total = _Sum("total")
    for row in store.totals(since_day, until_day, cluster, by=(by, "model")):
        name, model = row.key
        group = groups.get(name)
        if group is None:
            group = groups[name] = _Sum(name)
        price = prices.lookup(model)
        saved = cache_read_saved(price, row.tokens.cache_read) if price is not None else None
        for target in (group, total):
            target.add(row.requests, row.tokens, row.cost_usd, row.unpriced)
            target.saved = _add_cost(target.saved, saved)
    return Report(
        by=by,
        since_day=since_day,
        until_day=until_day,
        cluster=cluster,
        prices_as_of=prices.as_of,
        rows=tuple(group.row() for group in groups.values()),
        total=total.row(),
    )
