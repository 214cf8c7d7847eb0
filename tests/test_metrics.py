"""``/metrics``: prometheus_client exposition of the pool's counters, read at scrape time.

The proxy runs on localhost with fake accounts (tests/proxyharness.py). Scrapes are parsed with
prometheus_client's own parsers, and compared with the text qcc 0.1 wrote by hand (``BEFORE``).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import prometheus_client
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from proxyharness import Harness, MakeHarness, harness_factory

from qcc.fake_upstream import Behavior
from qcc.proxy.metrics import REGISTRY_KEY, render
from qcc.stats import AccountStats

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# What Prometheus 3 sends by default (scrape_protocols), most preferred first.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)

# qcc 0.1's hand-written /metrics for the state that ``fixed_state`` sets up.
BEFORE = """\
# HELP qcc_up 1 while the proxy serves.
# TYPE qcc_up gauge
qcc_up{cluster="test"} 1
# HELP qcc_client_requests_total Requests received from clients.
# TYPE qcc_client_requests_total counter
qcc_client_requests_total{cluster="test"} 5
# HELP qcc_panic_total Selections made in panic mode (no account usable).
# TYPE qcc_panic_total counter
qcc_panic_total{cluster="test"} 1
# HELP qcc_account_state 1 for the account's current health state.
# TYPE qcc_account_state gauge
qcc_account_state{cluster="test",account="a",state="healthy"} 0
qcc_account_state{cluster="test",account="a",state="ejected"} 0
qcc_account_state{cluster="test",account="a",state="probing"} 0
qcc_account_state{cluster="test",account="a",state="rate_limited"} 0
qcc_account_state{cluster="test",account="a",state="auth_failed"} 1
qcc_account_state{cluster="test",account="a",state="exhausted"} 0
qcc_account_state{cluster="test",account="a",state="disabled"} 0
qcc_account_state{cluster="test",account="b",state="healthy"} 1
qcc_account_state{cluster="test",account="b",state="ejected"} 0
qcc_account_state{cluster="test",account="b",state="probing"} 0
qcc_account_state{cluster="test",account="b",state="rate_limited"} 0
qcc_account_state{cluster="test",account="b",state="auth_failed"} 0
qcc_account_state{cluster="test",account="b",state="exhausted"} 0
qcc_account_state{cluster="test",account="b",state="disabled"} 0
# HELP qcc_account_attempts_total Attempts sent to the account, by outcome.
# TYPE qcc_account_attempts_total counter
qcc_account_attempts_total{cluster="test",account="a",outcome="auth_failed"} 2
qcc_account_attempts_total{cluster="test",account="b",outcome="server_error"} 1
qcc_account_attempts_total{cluster="test",account="b",outcome="success"} 3
# HELP qcc_account_in_flight Attempts in progress.
# TYPE qcc_account_in_flight gauge
qcc_account_in_flight{cluster="test",account="a"} 0
qcc_account_in_flight{cluster="test",account="b"} 2
# HELP qcc_account_tokens_total Tokens reported by the account, by kind.
# TYPE qcc_account_tokens_total counter
qcc_account_tokens_total{cluster="test",account="a",kind="input_tokens"} 0
qcc_account_tokens_total{cluster="test",account="a",kind="output_tokens"} 0
qcc_account_tokens_total{cluster="test",account="a",kind="cache_read_input_tokens"} 0
qcc_account_tokens_total{cluster="test",account="a",kind="cache_creation_input_tokens"} 0
qcc_account_tokens_total{cluster="test",account="b",kind="input_tokens"} 12
qcc_account_tokens_total{cluster="test",account="b",kind="output_tokens"} 7
qcc_account_tokens_total{cluster="test",account="b",kind="cache_read_input_tokens"} 30
qcc_account_tokens_total{cluster="test",account="b",kind="cache_creation_input_tokens"} 5
# HELP qcc_account_ttfb_seconds Time to first byte of successful attempts.
# TYPE qcc_account_ttfb_seconds histogram
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="0.005"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="0.01"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="0.025"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="0.05"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="0.1"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="0.25"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="0.5"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="1"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="2.5"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="5"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="10"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="30"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="60"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="120"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="300"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="a",le="+Inf"} 0
qcc_account_ttfb_seconds_sum{cluster="test",account="a"} 0.000000
qcc_account_ttfb_seconds_count{cluster="test",account="a"} 0
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="0.005"} 1
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="0.01"} 1
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="0.025"} 1
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="0.05"} 1
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="0.1"} 1
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="0.25"} 2
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="0.5"} 2
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="1"} 3
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="2.5"} 4
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="5"} 4
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="10"} 4
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="30"} 4
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="60"} 4
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="120"} 4
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="300"} 4
qcc_account_ttfb_seconds_bucket{cluster="test",account="b",le="+Inf"} 5
qcc_account_ttfb_seconds_sum{cluster="test",account="b"} 402.703000
qcc_account_ttfb_seconds_count{cluster="test",account="b"} 5
"""


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


async def scrape(h: Harness, accept: str | None = None) -> tuple[str, str]:
    headers = {} if accept is None else {"Accept": accept}
    resp = await h.client.get("/metrics", headers=headers)
    assert resp.status == 200
    return await resp.text(), resp.headers["Content-Type"]


def families(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample line as (name, labels) -> value; the parser drops the label order."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in found, f"duplicate series {key}"
            found[key] = s.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, frozenset(labels.items()))]


async def fixed_state(make: MakeHarness) -> Harness:
    """Account a fails auth (its state comes from real traffic); counters set to known numbers."""
    h = await make("a", "b", behaviors={"a": Behavior(mode="status", status=401)})
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    h.runtime.requests = 5
    h.runtime.pool.panics = 1
    a = AccountStats(requests=2, failures=2, outcomes=Counter({"auth_failed": 2}))
    b = AccountStats(
        requests=4, failures=1, in_flight=2, outcomes=Counter({"success": 3, "server_error": 1})
    )
    for seconds in (0.003, 0.2, 1.0, 1.5, 400.0):
        b.ttfb.observe(seconds)
    b.usage.add(Behavior().usage)
    h.member("a").stats = a
    h.member("b").stats = b
    return h


async def test_same_names_labels_types_help_and_values_as_before(make: MakeHarness) -> None:
    h = await fixed_state(make)
    text, content_type = await scrape(h)
    assert content_type == TEXT_0_0_4

    def comments(t: str) -> list[str]:
        return [line for line in t.splitlines() if line.startswith("#")]

    # HELP and TYPE lines byte for byte, in the same order: counters keep their _total.
    assert comments(text) == comments(BEFORE)
    assert samples(text) == samples(BEFORE)
    names = {line.split("{")[0] for line in text.splitlines() if not line.startswith("#")}
    assert names == {line.split("{")[0] for line in BEFORE.splitlines() if line[0] != "#"}


async def test_scrape_after_traffic_and_failover(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={"a": Behavior(mode="status", status=500)})
    for _ in range(3):
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    text, _ = await scrape(h)
    fams = families(text)
    # The parser names a counter family without _total, as prometheus_client does.
    assert {name: f.type for name, f in fams.items()} == {
        "qcc_up": "gauge",
        "qcc_client_requests": "counter",
        "qcc_panic": "counter",
        "qcc_account_state": "gauge",
        "qcc_account_attempts": "counter",
        "qcc_account_in_flight": "gauge",
        "qcc_account_tokens": "counter",
        "qcc_account_ttfb_seconds": "histogram",
    }
    assert value(text, "qcc_up", cluster="test") == 1
    assert value(text, "qcc_client_requests_total", cluster="test") == 3
    assert value(text, "qcc_panic_total", cluster="test") == 0
    a, b = {"cluster": "test", "account": "a"}, {"cluster": "test", "account": "b"}
    failed = value(text, "qcc_account_attempts_total", **a, outcome="server_error")
    assert failed == h.member("a").stats.outcomes["server_error"] >= 1
    assert value(text, "qcc_account_attempts_total", **b, outcome="success") == 3
    assert ("qcc_account_attempts_total", frozenset({**a, "outcome": "success"}.items())) not in (
        samples(text)
    )
    assert value(text, "qcc_account_in_flight", **b) == 0
    assert value(text, "qcc_account_tokens_total", **b, kind="input_tokens") == 3 * 12
    assert value(text, "qcc_account_tokens_total", **a, kind="output_tokens") == 0
    assert value(text, "qcc_account_ttfb_seconds_count", **b) == 3
    assert value(text, "qcc_account_ttfb_seconds_bucket", **b, le="+Inf") == 3
    assert 0 < value(text, "qcc_account_ttfb_seconds_sum", **b) < 3
    assert value(text, "qcc_account_ttfb_seconds_count", **a) == 0
    state_of_b = {
        s.labels["state"]: s.value
        for s in fams["qcc_account_state"].samples
        if s.labels["account"] == "b"
    }
    assert state_of_b == {
        "healthy": 1,
        "ejected": 0,
        "probing": 0,
        "rate_limited": 0,
        "auth_failed": 0,
        "exhausted": 0,
        "disabled": 0,
    }
    # Read at scrape time: the next scrape sees the next request.
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    again, _ = await scrape(h)
    assert value(again, "qcc_client_requests_total", cluster="test") == 4
    assert value(again, "qcc_account_ttfb_seconds_count", **b) == 4


@pytest.mark.parametrize("accept", ["application/openmetrics-text", PROMETHEUS_ACCEPT])
async def test_openmetrics_when_the_scraper_asks(make: MakeHarness, accept: str) -> None:
    h = await fixed_state(make)
    text, content_type = await scrape(h, accept)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert text.endswith("# EOF\n")
    fams = {f.name: f for f in openmetrics_families(text)}  # raises on anything not OpenMetrics
    assert fams["qcc_client_requests"].type == "counter"
    assert "# TYPE qcc_client_requests counter" in text.splitlines()
    assert fams["qcc_account_ttfb_seconds"].unit == "seconds"
    om = {(s.name, frozenset(s.labels.items())): s.value for f in fams.values() for s in f.samples}
    assert om == samples(BEFORE)  # the same series and values as the text format


async def test_plain_text_for_other_accept_headers(make: MakeHarness) -> None:
    h = await make("a")
    for accept in (None, "*/*", "text/plain", "text/plain;version=0.0.4", "application/json"):
        text, content_type = await scrape(h, accept)
        assert content_type == TEXT_0_0_4, accept
        assert "# EOF" not in text
        assert value(text, "qcc_up", cluster="test") == 1


async def test_access_key_guards_metrics(make: MakeHarness) -> None:
    h = await make("a", extra={"proxy": {"access_key": "local-secret-key"}})
    denied = await h.client.get("/metrics")
    assert denied.status == 401
    assert "qcc_up" not in await denied.text()
    ok = await h.client.get("/metrics", headers={"x-api-key": "local-secret-key"})
    assert ok.status == 200
    assert "qcc_up" in await ok.text()


async def test_each_app_its_own_registry_never_the_global_one(make: MakeHarness) -> None:
    one = await make("a")
    two = await make("a")
    assert (await one.client.post("/v1/messages", json=BODY)).status == 200
    assert one.app[REGISTRY_KEY] is not two.app[REGISTRY_KEY]
    assert value((await scrape(one))[0], "qcc_client_requests_total", cluster="test") == 1
    assert value((await scrape(two))[0], "qcc_client_requests_total", cluster="test") == 0
    default = prometheus_client.REGISTRY
    assert default.get_sample_value("qcc_up", {"cluster": "test"}) is None
    text, _ = await scrape(one)
    assert "process_" not in text and "python_gc" not in text  # no default collectors


async def test_hundred_accounts_render_quickly(make: MakeHarness) -> None:
    names = [f"acct-{i:03d}" for i in range(100)]
    h = await make(*names, dead=tuple(names))  # never contacted: a scrape reads counters only
    registry = h.app[REGISTRY_KEY]
    started = time.perf_counter()
    body, _ = render(registry, "")
    took = time.perf_counter() - started
    text = body.decode()
    accounts = {s.labels["account"] for s in families(text)["qcc_account_in_flight"].samples}
    assert accounts == set(names)
    assert took < 0.5  # 45-60 ms of CPU on the (loaded) development machine
