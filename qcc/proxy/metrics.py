"""``/metrics``: the pool's counters as Prometheus metric families, read at scrape time.

Nothing here runs per request. The request path bumps the plain counters it always kept
(:class:`qcc.stats.AccountStats`, ``Runtime.requests``, ``AccountPool.panics``);
:class:`PoolCollector` turns them into metric families only when a scraper asks, in O(accounts).

Each app has its own :class:`CollectorRegistry` (``app[REGISTRY_KEY]``), never prometheus_client's
global ``REGISTRY``: that one would add the client's process and GC metrics, and two proxies in one
process (the tests) would share it. :func:`render` lets prometheus_client pick the exposition
format from the scraper's ``Accept`` header: OpenMetrics 1.0 when asked for, else text 0.0.4.

Names, labels, types and HELP are those qcc 0.1 served by hand. A counter is given its exposed
name: ``CounterMetricFamily`` strips ``_total`` from the family name and adds it back to the
sample (and, in text 0.0.4, to HELP and TYPE), so ``qcc_client_requests_total`` stays that.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from qcc.health.state import State
from qcc.proxy.runtime import Runtime
from qcc.routing.ratelimit import headroom
from qcc.stats import LATENCY_BUCKETS

REGISTRY_KEY = web.AppKey("qcc_metrics_registry", CollectorRegistry)

# Histogram bucket bounds as qcc 0.1 wrote them (``le="1"``, not ``le="1.0"``), computed once.
_LE = (*(f"{bound:g}" for bound in LATENCY_BUCKETS), "+Inf")
_STATES = tuple((state, state.value) for state in State)


class PoolCollector:
    """A prometheus_client collector over one running proxy: reads its counters in ``collect``."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self._runtime
        cluster = rt.pool.cluster.name
        up = GaugeMetricFamily("qcc_up", "1 while the proxy serves.", labels=["cluster"])
        up.add_metric([cluster], 1)
        yield up
        requests = CounterMetricFamily(
            "qcc_client_requests_total", "Requests received from clients.", labels=["cluster"]
        )
        requests.add_metric([cluster], rt.requests)
        yield requests
        panics = CounterMetricFamily(
            "qcc_panic_total",
            "Selections made in panic mode (no account usable).",
            labels=["cluster"],
        )
        panics.add_metric([cluster], rt.pool.panics)
        yield panics

        acc = ["cluster", "account"]
        state = GaugeMetricFamily(
            "qcc_account_state",
            "1 for the account's current health state.",
            labels=[*acc, "state"],
        )
        attempts = CounterMetricFamily(
            "qcc_account_attempts_total",
            "Attempts sent to the account, by outcome.",
            labels=[*acc, "outcome"],
        )
        in_flight = GaugeMetricFamily("qcc_account_in_flight", "Attempts in progress.", labels=acc)
        tokens = CounterMetricFamily(
            "qcc_account_tokens_total",
            "Tokens reported by the account, by kind.",
            labels=[*acc, "kind"],
        )
        ttfb = HistogramMetricFamily(
            "qcc_account_ttfb_seconds",
            "Time to first byte of successful attempts.",
            labels=acc,
            unit="seconds",  # OpenMetrics writes a UNIT line; the name is unchanged
        )
        room = GaugeMetricFamily(
            "qcc_account_headroom",
            "Least room left in the limits the account announced (0..1).",
            labels=acc,
        )
        for member in rt.pool.members.values():
            names = [cluster, member.name]
            if member.limits is not None and (left := headroom(member.limits)) is not None:
                room.add_metric(names, left)
            stats = member.stats
            current = member.health.state
            for s, label in _STATES:
                state.add_metric([*names, label], 1 if current is s else 0)
            for outcome, count in sorted(stats.outcomes.items()):
                attempts.add_metric([*names, outcome], count)
            in_flight.add_metric(names, stats.in_flight)
            for kind, count in stats.usage.as_dict().items():
                tokens.add_metric([*names, kind], count)
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for le, count in zip(_LE, stats.ttfb.counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            ttfb.add_metric(names, buckets, stats.ttfb.total)
        yield from (state, attempts, in_flight, tokens, ttfb)
        if room.samples:  # only once some account announced its limits
            yield room


def new_registry(runtime: Runtime) -> CollectorRegistry:
    """The app's own registry, holding one :class:`PoolCollector` over ``runtime``."""
    registry = CollectorRegistry(auto_describe=False)  # registering collects nothing
    registry.register(PoolCollector(runtime))
    return registry


def render(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """One scrape: the body and its ``Content-Type``, in the format the ``Accept`` header asks for.

    ``application/openmetrics-text`` gets OpenMetrics (ending in ``# EOF``); anything else gets
    the Prometheus text format 0.0.4 (or 1.0.0 when a ``text/plain; version=1.0.0`` is asked for,
    which is the same text for qcc's names).
    """
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
