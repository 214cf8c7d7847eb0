"""What tokens cost: the shipped price table, config overrides, and the arithmetic.

Prices are USD per million tokens, looked up by model-id prefix (the longest prefix wins), so
``claude-sonnet-4`` prices ``claude-sonnet-4-5-20250929`` unless a longer prefix is listed. The
table ships as ``prices.toml`` next to this module (with its "as of" date); ``[pricing."prefix"]``
tables in ``config.toml`` replace or extend it. A model with no price has no cost: callers show
"price unknown", never 0.

Pure, except :func:`builtin_prices`, which reads the package data once.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from types import MappingProxyType
from typing import Any, NamedTuple

from qcc.errors import ConfigValidationError

PER = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens of each kind."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def cache_read_saving(self) -> float:
        """What one million cache-read tokens saved against sending them as plain input."""
        return max(0.0, self.input - self.cache_read)


PRICE_KEYS = tuple(f.name for f in fields(Price))


def price_from(location: str, value: object) -> Price:
    """A :class:`Price` from a TOML table; errors name ``location`` and the fix."""
    if not isinstance(value, Mapping):
        raise ConfigValidationError(location, "must be a table of prices: " + ", ".join(PRICE_KEYS))
    for key in value:
        if key not in PRICE_KEYS:
            raise ConfigValidationError(
                f"{location}.{key}", f"unknown key; expected one of: {', '.join(PRICE_KEYS)}"
            )
    numbers: dict[str, float] = {}
    for key in PRICE_KEYS:
        if key not in value:
            raise ConfigValidationError(
                f"{location}.{key}", "is missing; give USD per million tokens, e.g. 3.0"
            )
        number = value[key]
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
            or number < 0
        ):
            raise ConfigValidationError(
                f"{location}.{key}", "must be a number >= 0 (USD per million tokens)"
            )
        numbers[key] = float(number)
    return Price(**numbers)


def pricing_from(location: str, value: object) -> Mapping[str, Price]:
    """``[pricing]`` of config.toml: ``{model-prefix: Price}``."""
    if not isinstance(value, Mapping):
        raise ConfigValidationError(location, 'must be a table of [pricing."model-prefix"] tables')
    prices: dict[str, Price] = {}
    for prefix, body in value.items():
        where = f'{location}."{prefix}"'
        if not prefix.strip():
            raise ConfigValidationError(where, "the model prefix must not be empty")
        prices[prefix] = price_from(where, body)
    return MappingProxyType(prices)


@dataclass(frozen=True)
class PriceTable:
    """Prices by model-id prefix; :meth:`lookup` picks the longest matching prefix."""

    prices: Mapping[str, Price]
    as_of: str | None = None
    _ordered: tuple[tuple[str, Price], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # longest first, so the first match is the longest prefix
        ordered = tuple(sorted(self.prices.items(), key=lambda item: -len(item[0])))
        object.__setattr__(self, "_ordered", ordered)

    def lookup(self, model: str) -> Price | None:
        """The price of ``model``, or None when no prefix matches."""
        for prefix, price in self._ordered:
            if model.startswith(prefix):
                return price
        return None

    def with_overrides(self, overrides: Mapping[str, Price]) -> PriceTable:
        """This table with ``overrides`` replacing or adding prefixes."""
        if not overrides:
            return self
        return PriceTable(MappingProxyType({**self.prices, **overrides}), self.as_of)


@functools.cache
def builtin_prices() -> PriceTable:
    """The table shipped with qcc (``qcc/usage/prices.toml``)."""
    text = resources.files(__package__).joinpath("prices.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    table = pricing_from("prices", data.get("prices", {}))
    as_of = data.get("as_of")
    return PriceTable(table, as_of if isinstance(as_of, str) else None)


def price_table(overrides: Mapping[str, Price] | None = None) -> PriceTable:
    """The shipped table with the config's ``[pricing]`` applied."""
    return builtin_prices().with_overrides(overrides or {})


# ---- arithmetic ------------------------------------------------------------------------------


class Tokens(NamedTuple):
    """One response's (or a total's) tokens, cache writes split by lifetime."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def tokens(usage: Mapping[str, Any]) -> Tokens:
    """The tokens of an Anthropic ``usage`` object.

    ``cache_creation_input_tokens`` is split by ``cache_creation.ephemeral_5m_input_tokens`` /
    ``ephemeral_1h_input_tokens`` when present; what the split does not account for (or all of
    it, when there is no split) is a 5-minute write, the default lifetime. Missing or garbled
    counts are 0.
    """
    get = usage.get
    split = get("cache_creation")
    if split is None:  # the proxy's own usage dicts (plain counts): the quick way
        inp, out = get("input_tokens", 0), get("output_tokens", 0)
        read, created = get("cache_read_input_tokens", 0), get("cache_creation_input_tokens", 0)
        if type(inp) is type(out) is type(read) is type(created) is int:
            return Tokens(max(inp, 0), max(out, 0), max(read, 0), max(created, 0), 0)
    created = _count(get("cache_creation_input_tokens"))
    write_5m, write_1h = created, 0
    if isinstance(split, Mapping):
        write_1h = _count(split.get("ephemeral_1h_input_tokens"))
        write_5m = max(_count(split.get("ephemeral_5m_input_tokens")), created - write_1h)
    return Tokens(
        input=_count(get("input_tokens")),
        output=_count(get("output_tokens")),
        cache_read=_count(get("cache_read_input_tokens")),
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
    )


def tokens_cost(price: Price, counted: Tokens) -> float:
    """USD for ``counted`` tokens at ``price``."""
    return (
        counted.input * price.input
        + counted.output * price.output
        + counted.cache_read * price.cache_read
        + counted.cache_write_5m * price.cache_write_5m
        + counted.cache_write_1h * price.cache_write_1h
    ) / PER


def cost(price: Price, usage: Mapping[str, Any]) -> float:
    """USD for one Anthropic ``usage`` object at ``price``."""
    return tokens_cost(price, tokens(usage))


def cache_read_saved(price: Price, cache_read_tokens: int) -> float:
    """USD that ``cache_read_tokens`` saved against paying full input price for them."""
    return cache_read_tokens * price.cache_read_saving / PER
