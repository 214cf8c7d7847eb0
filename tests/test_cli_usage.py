from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import RunCli

from qcc.cli.usage import since_day
from qcc.usage.pricing import price_table
from qcc.usage.store import UsageRecorder, usage_db_path

NOW = time.time()
USAGE = {
    "input_tokens": 1000,
    "output_tokens": 500,
    "cache_read_input_tokens": 1_000_000,
    "cache_creation_input_tokens": 4000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 3000},
}
# claude-sonnet-4-5 at 3/15, writes 3.75 (5m) / 6 (1h), reads 0.3
SONNET_COST = (1000 * 3 + 500 * 15 + 1000 * 3.75 + 3000 * 6 + 1_000_000 * 0.3) / 1e6


def fill() -> None:
    recorder = UsageRecorder(usage_db_path(), price_table())
    recorder.add(NOW, "prod", "main", "claude-sonnet-4-5-20250929", USAGE)
    recorder.add(NOW, "prod", "main", "claude-sonnet-4-5-20250929", USAGE, member_key="alice")
    recorder.add(NOW, "prod", "relay", "mystery-model", USAGE)
    recorder.add(NOW - 40 * 86400, "prod", "main", "claude-sonnet-4-5-20250929", USAGE)
    recorder.add(NOW, "team", "solo", "claude-haiku-4-5", {"input_tokens": 10})
    recorder.close()


def test_json_by_account_with_totals_and_savings(run_cli: RunCli) -> None:
    fill()
    result = run_cli("usage", "--cluster", "prod", "--since", "7d", "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    rows = {row["name"]: row for row in doc["rows"]}
    assert set(rows) == {"main", "relay"}
    main = rows["main"]
    assert main["requests"] == 2  # the 40-day-old one is outside --since 7d
    assert main["tokens"] == {
        "input": 2000,
        "output": 1000,
        "cache_read": 2_000_000,
        "cache_write_5m": 2000,
        "cache_write_1h": 6000,
    }
    assert main["cost_usd"] == pytest.approx(2 * SONNET_COST)
    assert main["cache_read_saved_usd"] == pytest.approx(2 * 2.7)
    relay = rows["relay"]
    assert relay["cost_usd"] is None  # unknown, not 0
    assert relay["price_unknown_requests"] == 1
    assert relay["cache_read_saved_usd"] is None
    total = doc["total"]
    assert total["requests"] == 3
    assert total["cost_usd"] == pytest.approx(2 * SONNET_COST)
    assert total["price_unknown_requests"] == 1
    assert total["cache_read_share"] == pytest.approx(3_000_000 / (3000 + 3_000_000 + 12_000))
    assert doc["prices_as_of"] == "2026-11-30"


def test_table_by_model_at_80_columns(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    fill()
    monkeypatch.setenv("COLUMNS", "80")
    result = run_cli("usage", "--by", "model", "--since", "7d")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    text = result.stdout
    assert "price unknown" in text
    # A table row, or (when the columns do not fit side by side) a block headed by the model.
    at = next(i for i, line in enumerate(lines) if "mystery-model" in line)
    row = lines[at] if "price unknown" in lines[at] else " ".join(lines[at : at + 7])
    assert "price unknown" in row and "$" not in row
    assert f"${2 * SONNET_COST:,.2f}" in text
    assert "cache reads:" in text and "saving $5.40" in text
    assert "1 requests of models with no known price" in text
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("total"))
    total = lines[at] if len(lines[at].split()) > 1 else " ".join(lines[at : at + 3])
    assert " 4 " in f"{total} "  # both clusters without --cluster


def test_by_day_and_key(run_cli: RunCli) -> None:
    fill()
    days = run_cli("usage", "--by", "day", "--since", "60d", "--cluster", "prod", "--json").json()
    assert len(days["rows"]) == 2
    keys = run_cli("usage", "--by", "key", "--cluster", "prod", "--json").json()
    assert {row["name"]: row["requests"] for row in keys["rows"]} == {"": 2, "alice": 1}


def test_custom_price_from_config(run_cli: RunCli, config_path: Path) -> None:
    config_path.write_text(
        '[pricing."mystery"]\ninput = 1.0\noutput = 2.0\ncache_write_5m = 1.25\n'
        "cache_write_1h = 2.0\ncache_read = 0.1\n",
        encoding="utf-8",
    )
    fill()
    doc = run_cli("usage", "--by", "model", "--json").json()
    rows = {row["name"]: row for row in doc["rows"]}
    # cost was recorded without a price: still unknown; savings use today's prices
    assert rows["mystery-model"]["cost_usd"] is None
    assert rows["mystery-model"]["cache_read_saved_usd"] == pytest.approx(0.9)


def test_no_store_yet(run_cli: RunCli) -> None:
    result = run_cli("usage")
    assert result.exit_code == 0
    assert "no usage recorded since" in result.stderr
    assert not usage_db_path().exists()
    doc = run_cli("usage", "--json").json()
    assert doc["rows"] == [] and doc["total"]["requests"] == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--since", "7x"), ["--since", "7x", "7d", "2026-11-01"]),
        (("--since", "2026-13-01"), ["--since", "2026-13-01"]),
        (("--since", "0d"), ["--since"]),
        (("--by", "colour"), ["--by", "account, model, day, key"]),
    ],
)
def test_bad_options_are_one_line(
    cli_error: RunCli, args: tuple[str, ...], words: list[str]
) -> None:
    cli_error("usage", *args, words=words)


def test_bad_config_is_one_line(cli_error: RunCli, config_path: Path) -> None:
    config_path.write_text('[pricing."x"]\ninput = -1\n', encoding="utf-8")
    cli_error("usage", words=['pricing."x"'])


def test_since_day() -> None:
    noon = time.mktime((2026, 11, 30, 12, 0, 0, 0, 0, -1))
    assert since_day("7d", noon) == "2026-11-24"
    assert since_day("1d", noon) == "2026-11-30"
    assert since_day("today", noon) == "2026-11-30"
    assert since_day(" 2026-11-01 ", noon) == "2026-11-01"
