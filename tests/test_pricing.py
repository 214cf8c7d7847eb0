from __future__ import annotations

import tomllib
from typing import Any

import pytest

from qcc.config.validate import config_from
from qcc.errors import ConfigValidationError
from qcc.usage.pricing import (
    Price,
    PriceTable,
    Tokens,
    builtin_prices,
    cache_read_saved,
    cost,
    price_table,
    tokens,
)

SONNET = Price(input=3.0, output=15.0, cache_write_5m=3.75, cache_write_1h=6.0, cache_read=0.3)


@pytest.mark.parametrize(
    ("model", "expected_input"),
    [
        ("claude-sonnet-4-5-20250929", 3.0),
        ("claude-sonnet-4-20250514", 3.0),
        ("claude-sonnet-4-6[1m]", 3.0),
        ("claude-3-7-sonnet-20250219", 3.0),
        ("claude-opus-4-20250514", 15.0),
        ("claude-opus-4-1-20250805", 15.0),
        ("claude-opus-4-5-20251101", 5.0),  # longer prefix beats claude-opus-4
        ("claude-opus-4-6", 5.0),
        ("claude-opus-5", 5.0),
        ("claude-opus-5-5", 4.0),  # longer prefix beats claude-opus-5
        ("claude-haiku-4-5-20251001", 1.0),
        ("claude-3-5-haiku-20241022", 0.8),
        ("claude-3-haiku-20240307", 0.25),
        ("claude-sonnet-5-5", None),  # left out on purpose: price unknown
        ("gpt-4o", None),
        ("", None),
    ],
)
def test_builtin_prefix_matching(model: str, expected_input: float | None) -> None:
    price = builtin_prices().lookup(model)
    assert (price.input if price else None) == expected_input


def test_builtin_table_has_a_date_and_consistent_cache_multiples() -> None:
    table = builtin_prices()
    assert table.as_of == "2026-11-30"
    for prefix, price in table.prices.items():
        assert price.output > price.input > price.cache_read > 0, prefix
        assert price.cache_write_1h > price.cache_write_5m > price.input, prefix


def test_builtin_table_is_package_data() -> None:
    from importlib import resources

    text = resources.files("qcc.usage").joinpath("prices.toml").read_text(encoding="utf-8")
    assert tomllib.loads(text)["as_of"] == "2026-11-30"


def test_longest_prefix_wins_whatever_the_order() -> None:
    a = Price(1, 1, 1, 1, 1)
    b = Price(2, 2, 2, 2, 2)
    assert PriceTable({"claude-x-1": b, "claude-x": a}).lookup("claude-x-1-2") is b
    assert PriceTable({"claude-x": a, "claude-x-1": b}).lookup("claude-x-1-2") is b
    assert PriceTable({"claude-x": a, "claude-x-1": b}).lookup("claude-x-2") is a


def test_overrides_replace_and_extend() -> None:
    cheap = Price(0.5, 1.0, 0.6, 1.0, 0.05)
    table = price_table({"claude-sonnet-4-5": cheap, "my-relay-model": SONNET})
    assert table.lookup("claude-sonnet-4-5-20250929") is cheap
    assert table.lookup("claude-sonnet-4-20250514") == SONNET  # builtin still there
    assert table.lookup("my-relay-model-v2") is SONNET
    assert price_table() is builtin_prices()


# ---- arithmetic ------------------------------------------------------------------------------


def test_cost_plain_input_output() -> None:
    assert cost(SONNET, {"input_tokens": 1_000_000, "output_tokens": 1_000_000}) == 18.0
    assert cost(SONNET, {"input_tokens": 1000, "output_tokens": 500}) == pytest.approx(0.0105)


def test_cache_creation_without_split_is_all_5m() -> None:
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 1_000_000}
    assert tokens(usage) == Tokens(input=10, cache_write_5m=1_000_000)
    assert cost(SONNET, usage) == pytest.approx(3.75 + 10 * 3 / 1e6)


def test_cache_creation_split_5m_vs_1h() -> None:
    usage = {
        "cache_creation_input_tokens": 3_000_000,
        "cache_creation": {
            "ephemeral_5m_input_tokens": 1_000_000,
            "ephemeral_1h_input_tokens": 2_000_000,
        },
    }
    assert tokens(usage) == Tokens(cache_write_5m=1_000_000, cache_write_1h=2_000_000)
    assert cost(SONNET, usage) == pytest.approx(3.75 + 2 * 6.0)


def test_split_that_misses_part_counts_the_rest_as_5m() -> None:
    usage = {
        "cache_creation_input_tokens": 1000,
        "cache_creation": {"ephemeral_1h_input_tokens": 400},
    }
    assert tokens(usage) == Tokens(cache_write_5m=600, cache_write_1h=400)


def test_cache_read_is_a_tenth_and_saves_the_rest() -> None:
    usage = {"cache_read_input_tokens": 1_000_000}
    assert cost(SONNET, usage) == pytest.approx(0.3)
    assert cache_read_saved(SONNET, 1_000_000) == pytest.approx(2.7)


def test_reads_vs_writes_vs_input_full_example() -> None:
    usage: dict[str, Any] = {
        "input_tokens": 2_000,
        "output_tokens": 1_000,
        "cache_read_input_tokens": 100_000,
        "cache_creation_input_tokens": 20_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 5_000, "ephemeral_1h_input_tokens": 15_000},
    }
    expected = (2_000 * 3 + 1_000 * 15 + 100_000 * 0.3 + 5_000 * 3.75 + 15_000 * 6) / 1e6
    assert cost(SONNET, usage) == pytest.approx(expected)


def test_garbled_counts_are_zero() -> None:
    usage = {
        "input_tokens": "12",
        "output_tokens": -5,
        "cache_read_input_tokens": True,
        "cache_creation_input_tokens": None,
        "cache_creation": "nope",
    }
    assert tokens(usage) == Tokens()
    assert cost(SONNET, usage) == 0.0


# ---- config ----------------------------------------------------------------------------------


def test_config_pricing_parsed() -> None:
    data = tomllib.loads(
        '[pricing."claude-sonnet-4"]\n'
        "input = 3\noutput = 15.0\ncache_write_5m = 3.75\ncache_write_1h = 6.0\ncache_read = 0.3\n"
    )
    config = config_from(data)
    assert dict(config.pricing) == {"claude-sonnet-4": SONNET}
    assert config_from({}).pricing == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("pricing = 3\n", "pricing: must be a table"),
        ('[pricing]\n"claude-x" = 3\n', 'pricing."claude-x": must be a table of prices'),
        (
            '[pricing."claude-x"]\ninput = 1\n',
            'pricing."claude-x".output: is missing; give USD per million tokens',
        ),
        (
            '[pricing."claude-x"]\ninput = -1\noutput = 1\ncache_write_5m = 1\n'
            "cache_write_1h = 1\ncache_read = 1\n",
            'pricing."claude-x".input: must be a number >= 0',
        ),
        (
            '[pricing."claude-x"]\ninput = "3"\noutput = 1\ncache_write_5m = 1\n'
            "cache_write_1h = 1\ncache_read = 1\n",
            'pricing."claude-x".input: must be a number >= 0',
        ),
        (
            '[pricing."claude-x"]\ninput = nan\noutput = 1\ncache_write_5m = 1\n'
            "cache_write_1h = 1\ncache_read = 1\n",
            'pricing."claude-x".input: must be a number >= 0',
        ),
        (
            '[pricing."claude-x"]\ninputs = 1\n',
            'pricing."claude-x".inputs: unknown key; expected one of: input, output',
        ),
        ('[pricing." "]\n', 'pricing." ": the model prefix must not be empty'),
    ],
)
def test_config_pricing_errors_are_located(body: str, message: str) -> None:
    with pytest.raises(ConfigValidationError) as info:
        config_from(tomllib.loads(body))
    assert str(info.value).startswith(message), str(info.value)
