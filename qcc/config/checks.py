"""The value checks every part of config validation shares: names, tables, unknown keys,
optional keys with a default, and typed scalars (strings, booleans, integers, seconds, ratios,
US dollars, ports, choices, paths, environment variable names).

Each check takes the dotted location of the value and raises :class:`ConfigValidationError`
naming it, e.g. ``proxy.port: must be an integer from 1 to 65535``; it never quotes a value that
may be a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from qcc.errors import ConfigValidationError
from qcc.redact import looks_like_secret

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_RULE = "must be 1-64 letters, digits, '-' or '_', starting with a letter or digit"

T = TypeVar("T")


def check_name(location: str, name: str) -> str:
    if not NAME_RE.match(name):
        shown = "that" if looks_like_secret(name) else f"'{name}'"  # a key pasted as a name
        raise ConfigValidationError(location, f"{shown} is not a valid name: {NAME_RULE}")
    return name


def as_table(location: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigValidationError(location, "must be a table")
    return value


def no_unknown(location: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            where = f"{location}.{key}" if location else key
            raise ConfigValidationError(where, f"unknown key; expected one of: {', '.join(known)}")


def optional(
    table: Mapping[str, Any],
    location: str,
    key: str,
    default: T,
    check: Callable[[str, object], T],
) -> T:
    if key not in table:
        return default
    return check(f"{location}.{key}" if location else key, table[key])


def non_empty(location: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigValidationError(location, "must be a non-empty string")
    return value


def boolean(location: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigValidationError(location, "must be true or false")
    return value


def int_at_least(minimum: int) -> Callable[[str, object], int]:
    def check(location: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigValidationError(location, f"must be an integer >= {minimum}")
        return value

    return check


def positive_seconds(location: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigValidationError(location, "must be a number of seconds > 0")
    return float(value)


def ratio(location: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigValidationError(location, "must be a number from 0 to 1")
    return float(value)


def usd(location: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigValidationError(location, "must be an amount in US dollars > 0, e.g. 20.0")
    return float(value)


def port_number(location: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigValidationError(location, "must be an integer from 1 to 65535")
    return value


def one_of(choices: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(location: str, value: object) -> str:
        if value not in choices:
            raise ConfigValidationError(location, f"must be one of: {', '.join(choices)}")
        assert isinstance(value, str)
        return value

    return check


def user_path(location: str, value: object) -> str:
    return os.path.expanduser(non_empty(location, value))


def string_list(location: str, value: object) -> list[str]:
    if not isinstance(value, list):
        raise ConfigValidationError(location, "must be a list of strings")
    return [non_empty(f"{location}[{i}]", item) for i, item in enumerate(value)]


def check_env_name(where: str, value: str, inline: str) -> None:
    if not ENV_NAME_RE.match(value):
        what = (
            f"that looks like a key, not a variable name; put a key in {inline} instead"
            if looks_like_secret(value)
            else "must be the name of an environment variable, e.g. MY_API_KEY"
        )
        raise ConfigValidationError(where, what)
