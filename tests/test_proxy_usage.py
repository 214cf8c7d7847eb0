"""Usage and cost recorded by the running proxy: once per request, in the usage store, surviving
restarts; spend per account against its budgets."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from proxyharness import Harness, MakeHarness, harness_factory, wait_for
from test_render_fit import rendered

from qcc import wire
from qcc.accounts.spend import Spend
from qcc.cli.health import accounts_table
from qcc.config.store import ConfigStore
from qcc.fake_upstream import Behavior
from qcc.proxy.usage import requested_model
from qcc.usage.budget import next_day_start
from qcc.usage.store import UsageStore, usage_db_path

MODEL = "claude-sonnet-4-5"
BODY = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
STREAM = BODY | {"stream": True}
# The fake account's usage at Sonnet 4.5 prices (3 / 15 / write 3.75 / read 0.3 per million).
COST = (12 * 3 + 7 * 15 + 5 * 3.75 + 30 * 0.3) / 1e6
MILLION_IN = wire.token_usage(1_000_000, 0, 0, 0)  # $3.00 a request


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


async def stats(h: Harness, name: str) -> dict[str, Any]:
    doc = await (await h.client.get("/accounts/stats")).json()
    return next(acc for acc in doc["accounts"] if acc["name"] == name)


def store_rows() -> dict[tuple[str, ...], Any]:
    return {row.key: row for row in UsageStore().totals(by=("account", "model"))}


async def test_each_request_recorded_once_with_its_cost(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={"a": Behavior(mode="status", status=529)})
    for body in (BODY, STREAM, BODY):
        assert (await h.client.post("/v1/messages", json=body)).status == 200
    await h.client.close()  # the app's cleanup commits the recorder's last batch
    rows = store_rows()
    assert list(rows) == [("b", MODEL)]  # a failed over: nothing of it is counted
    row = rows["b", MODEL]
    assert row.requests == 3 and row.tokens.input == 36 and row.tokens.output == 21
    assert row.cost_usd == pytest.approx(3 * COST)


async def test_usage_and_cost_survive_a_restart(make: MakeHarness, run_cli: RunCli) -> None:
    first = await make("a")
    for _ in range(2):
        assert (await first.client.post("/v1/messages", json=BODY)).status == 200
    await first.client.close()
    second = await make("a")
    a = await stats(second, "a")
    assert a["usage"]["input_tokens"] == 24 and a["usage"]["output_tokens"] == 14
    assert a["spend_today_usd"] == pytest.approx(2 * COST)
    assert a["spend_month_usd"] == pytest.approx(2 * COST)
    assert (await second.client.post("/v1/messages", json=BODY)).status == 200
    await second.client.close()
    result = run_cli("usage", "--cluster", "test", "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    (row,) = doc["rows"]
    assert row["name"] == "a" and row["requests"] == 3
    assert row["cost_usd"] == pytest.approx(3 * COST, abs=1e-6)  # shown to the micro-dollar


async def test_renamed_model_is_recorded_as_the_account_was_asked(make: MakeHarness) -> None:
    h = await make("a", accounts={"a": {"models": {MODEL: "claude-haiku-4-5"}}})
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    await h.client.close()
    assert list(store_rows()) == [("a", "claude-haiku-4-5")]


async def test_client_cancelled_stream_records_the_usage_that_had_arrived(
    make: MakeHarness,
) -> None:
    h = await make("a", behaviors={"a": Behavior(interval=0.05, deltas=50)})
    resp = await h.client.post("/v1/messages", json=STREAM)
    async for line in resp.content:
        if line.startswith(b"event: content_block_delta"):
            break
    resp.close()  # Esc in Claude Code
    await wait_for(lambda: h.member("a").stats.usage.input_tokens)
    await h.client.close()
    row = store_rows()["a", MODEL]
    assert row.requests == 1 and row.tokens.input == 12 and row.tokens.cache_read == 30


async def test_a_reached_daily_budget_moves_traffic(
    make: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    usage = Behavior(usage=MILLION_IN)
    h = await make(
        "a",
        "b",
        behaviors={"a": usage, "b": Behavior(usage=MILLION_IN)},
        accounts={"a": {"priority": 0, "budget_daily_usd": 5.0}, "b": {"priority": 1}},
    )
    for _ in range(6):
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    assert (len(h.upstreams["a"].requests), len(h.upstreams["b"].requests)) == (2, 4)
    a = await stats(h, "a")
    assert a["state"] == "exhausted"
    assert a["reason"] == "daily budget $5.00 reached ($6.00 spent)"
    assert a["until"] == pytest.approx(next_day_start(time.time()), abs=2)
    assert (a["spend_today_usd"], a["budget_daily_usd"]) == (6.0, 5.0)
    doc = await (await h.client.get("/accounts/stats")).json()
    wide = rendered(accounts_table(doc, "test"), 300)
    assert "headroom" in wide[1] and "spend" in wide[1]
    row = next(line for line in wide if line.split()[:1] == ["a"])
    assert "$6.00/5 " in row and "exhausted" in row
    assert max(len(line) for line in rendered(accounts_table(doc, "test"), 80)) <= 80
    budget_lines = [r.message for r in caplog.records if "daily budget" in r.message]
    assert budget_lines == [
        "account a: healthy -> exhausted (daily budget $5.00 reached ($6.00 spent))"
    ]


async def test_a_budget_spent_before_a_restart_still_holds(make: MakeHarness) -> None:
    accounts = {"a": {"priority": 0, "budget_monthly_usd": 3.0}, "b": {"priority": 1}}
    first = await make("a", "b", behaviors={"a": Behavior(usage=MILLION_IN)}, accounts=accounts)
    assert (await first.client.post("/v1/messages", json=BODY)).status == 200
    assert first.member("a").health.state.value == "exhausted"
    await first.client.close()
    second = await make("a", "b", accounts=accounts)
    a = await stats(second, "a")
    assert a["state"] == "exhausted"
    assert a["reason"] == "monthly budget $3.00 reached ($3.00 spent)"
    assert (await second.client.post("/v1/messages", json=BODY)).status == 200
    assert len(second.upstreams["a"].requests) == 0


def test_spend_rolls_over_at_local_midnight() -> None:
    now = time.time()
    spend = Spend()
    spend.seed(2.0, 10.0, now)
    spend.add(1.0, now)
    assert (spend.today, spend.month) == (3.0, 11.0)
    tomorrow = next_day_start(now) + 1
    spend.add(0.5, tomorrow)
    assert spend.today == 0.5
    assert spend.month in (11.5, 0.5)  # 0.5 when tomorrow starts a new month


@pytest.mark.parametrize(
    ("body", "model"),
    [
        (b'{"model": "claude-opus-4-1", "messages": []}', "claude-opus-4-1"),
        (b'{"messages": [{"content": "x"}], "model":"m2"}', "m2"),
        (b'{"messages": [{"content": "' + b"x" * 10_000 + b'"}], "model": "far"}', "far"),
        (b'{"messages": [{"content": "say \\"model\\": \\"no\\""}], "model": "yes"}', "yes"),
        (  # the Python SDK's order, a tool input naming a model, a tool schema after it
            b'{"max_tokens": 5, "messages": [{"content": [{"type": "tool_use", "input": '
            b'{"model": "haiku"}}]}], "model": "top", "tools": [{"input_schema": '
            b'{"properties": {"model": {"type": "string"}}}}]}',
            "top",
        ),
        (b'{"messages": []}', "unknown"),
        (b'{"model": 3}', "unknown"),
    ],
)
def test_requested_model(body: bytes, model: str) -> None:
    assert requested_model(body) == model


async def test_a_stream_broken_after_its_start_records_what_arrived(make: MakeHarness) -> None:
    h = await make("a", behaviors={"a": Behavior(mode="die_after", die_after=1)})
    resp = await h.client.post("/v1/messages", json=STREAM)
    assert resp.status == 200
    assert b"event: error" in await resp.read()
    await h.client.close()
    row = store_rows()["a", MODEL]
    assert row.requests == 1 and row.tokens.input == 12


async def test_an_unreadable_usage_store_does_not_stop_the_proxy(
    make: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    usage_db_path().parent.mkdir(parents=True, exist_ok=True)
    usage_db_path().write_bytes(b"not a database" * 100)
    h = await make("a")
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    assert any("cannot read past usage" in r.message for r in caplog.records)


async def test_a_budget_lowered_by_a_reload_applies_at_once(
    make: MakeHarness, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    h = await make("a", "b", config_path=path, behaviors={"a": Behavior(usage=MILLION_IN)})
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200  # $3.00 on a
    with ConfigStore(path).edit() as doc:
        doc["clusters"]["test"]["accounts"]["a"]["budget_daily_usd"] = 2.5
    await wait_for(lambda: h.runtime.reloads == 1)
    a = h.member("a")
    assert a.health.state.value == "exhausted"
    assert a.health.reason == "daily budget $2.50 reached ($3.00 spent)"
    with ConfigStore(path).edit() as doc:  # raised again: the changed account is back
        doc["clusters"]["test"]["accounts"]["a"]["budget_daily_usd"] = 10.0
    await wait_for(lambda: h.runtime.reloads == 2)
    assert a.health.state.value == "healthy"
