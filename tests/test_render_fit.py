"""Tables stay readable at 80 columns: low-value columns go, free text is shortened at a word
boundary, and names, states and URLs are never broken."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from qcc.cli import render
from qcc.cli.health import accounts_table

NAMES = ("openrouter-backup-eu", "anthropic-main", "relay")
STATES = ("rate_limited", "healthy", "auth_failed")
ERROR = "HTTP 529 overloaded_error: the upstream account is overloaded, try again later please"


def stats_doc() -> dict[str, Any]:
    now = time.time()
    accounts = [
        {
            "name": name,
            "state": state,
            "reason": "retry-after 30s from the account (HTTP 429)" if i == 0 else None,
            "since": now - 300,
            "until": now + 30 if i == 0 else None,
            "requests": 123456,
            "failures": 42,
            "p50_ms": 812.4,
            "usage": {"input_tokens": 9_876_543, "output_tokens": 1_234_567},
            "cache_read_share": 0.83,
            "last_error": ERROR if i != 1 else None,
        }
        for i, (name, state) in enumerate(zip(NAMES, STATES, strict=True))
    ]
    return {
        "cluster": "production",
        "strategy": "least-latency",
        "available_accounts": 1,
        "total_accounts": 3,
        "requests": 370368,
        "accounts": accounts,
    }


def rendered(renderable: Any, width: int) -> list[str]:
    out = Console(
        file=io.StringIO(), width=width, record=True, markup=False, highlight=False, soft_wrap=True
    )
    out.print(renderable)
    return out.export_text().splitlines()


def words(lines: list[str]) -> set[str]:
    return {word for line in lines for word in line.replace("│", " ").split()}


@pytest.mark.parametrize("rates", [None, {"relay": 1.5}])
def test_health_and_top_table_fit_80_columns(rates: dict[str, float] | None) -> None:
    lines = rendered(accounts_table(stats_doc(), "proxy http://127.0.0.1:7860", rates), 80)
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    seen = words(lines)
    assert set(NAMES) | set(STATES) | {"http://127.0.0.1:7860"} <= seen, "\n".join(lines)
    text = "\n".join(lines)
    assert "HTTP 529…" in text or "HTTP 529 overloaded_error:…" in text  # cut at a word
    assert "since" not in text and "cache read" not in text  # the low-value columns went


def test_wide_terminal_keeps_every_column() -> None:
    lines = rendered(accounts_table(stats_doc(), "proxy http://127.0.0.1:7860", {}), 300)
    header = next(line for line in lines if "account" in line)
    for column in ("since", "until", "failures", "req/s", "tokens in/out", "cache read"):
        assert column in header
    assert ERROR in "\n".join(lines)


@pytest.mark.parametrize("columns", [80, 50])
def test_account_list_fits_the_terminal(
    run_cli: Any, config_path: Path, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    config_path.write_text(
        'default_cluster = "prod"\n[clusters.prod.accounts.openrouter-backup-eu]\n'
        'base_url = "https://relay.example.com/anthropic"\n'
        'api_key_env = "OPENROUTER_BACKUP_KEY"\nweight = 3\npriority = 1\n'
        "[clusters.prod.accounts.openrouter-backup-eu.models]\n"
        'opus = "claude-opus-4-1"\nsonnet = "claude-sonnet-4-5"\n'
        '[clusters.prod.accounts.main]\nbase_url = "https://api.anthropic.com"\n'
        'api_key = "sk-ant-api03-FITFITFITFITFITFITFIT-a1b2"\n'
    )
    config_path.chmod(0o600)
    monkeypatch.setenv("COLUMNS", str(columns))
    result = run_cli("account", "list")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns, result.stdout
    if columns < 60:  # too narrow for the columns side by side: one block per account
        assert "prod / openrouter-backup-eu" in lines and "prod / main" in lines
        assert {"opus→claude-opus-4-1,", "sonnet→claude-sonnet-4-5"} <= words(lines)
    seen = words(lines)
    expected = {"openrouter-backup-eu", "https://relay.example.com/anthropic", "main"}
    assert (
        expected | {"$OPENROUTER_BACKUP_KEY", "sk-ant-…a1b2", "https://api.anthropic.com"} <= seen
    )


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("short", 10, "short"),
        ("three consecutive failures", 20, "three consecutive…"),
        ("averyveryverylongtoken", 10, "averyvery…"),
        ("HTTP 529, overloaded", 12, "HTTP 529…"),
        ("retry-after 30s from the account", 16, "retry-after 30s…"),
    ],
)
def test_shorten_cuts_at_a_word(text: str, width: int, expected: str) -> None:
    assert render.shorten(text, width) == expected
    assert len(render.shorten(text, width)) <= width
