"""Whole-file validation: a plain dict (from TOML) becomes a :class:`Config` or one clear error.

Every error is a :class:`ConfigValidationError` whose message starts with the dotted location of
the bad value and says what would be right, e.g.
``clusters.prod.accounts.main.base_url: must be an http(s) URL``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from qcc.config.model import (
    CREDENTIAL_KINDS,
    PROBE_MODES,
    STRATEGIES,
    Account,
    Cluster,
    Config,
    Credential,
    HealthSettings,
    ProxySettings,
    RetrySettings,
    Timeouts,
)
from qcc.errors import ConfigValidationError
from qcc.net.proxies import check_setting as check_proxy_setting

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_RULE = "must be 1-64 letters, digits, '-' or '_', starting with a letter or digit"

T = TypeVar("T")


def check_name(location: str, name: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigValidationError(location, f"'{name}' is not a valid name: {NAME_RULE}")
    return name


def check_base_url(location: str, value: object) -> str:
    if isinstance(value, str):
        parts = urlsplit(value.strip())
        if parts.scheme in ("http", "https") and parts.hostname and not parts.query:
            return value.strip().rstrip("/")
    raise ConfigValidationError(
        location, "must be an http(s) URL such as https://api.anthropic.com"
    )


def _table(location: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigValidationError(location, "must be a table")
    return value


def _no_unknown(location: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            where = f"{location}.{key}" if location else key
            raise ConfigValidationError(where, f"unknown key; expected one of: {', '.join(known)}")


def _get(
    table: Mapping[str, Any],
    location: str,
    key: str,
    default: T,
    check: Callable[[str, object], T],
) -> T:
    if key not in table:
        return default
    return check(f"{location}.{key}" if location else key, table[key])


def _string(location: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigValidationError(location, "must be a non-empty string")
    return value


def _bool(location: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigValidationError(location, "must be true or false")
    return value


def _int_at_least(minimum: int) -> Callable[[str, object], int]:
    def check(location: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigValidationError(location, f"must be an integer >= {minimum}")
        return value

    return check


def _seconds(location: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigValidationError(location, "must be a number of seconds > 0")
    return float(value)


def _ratio(location: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigValidationError(location, "must be a number from 0 to 1")
    return float(value)


def _port(location: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigValidationError(location, "must be an integer from 1 to 65535")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(location: str, value: object) -> str:
        if value not in choices:
            raise ConfigValidationError(location, f"must be one of: {', '.join(choices)}")
        assert isinstance(value, str)
        return value

    return check


def credential_from(location: str, table: Mapping[str, Any]) -> Credential:
    present = [kind for kind in CREDENTIAL_KINDS if kind in table]
    if not present:
        raise ConfigValidationError(
            location,
            "needs a credential: set one of api_key, auth_token, api_key_env or auth_token_env",
        )
    if len(present) > 1:
        raise ConfigValidationError(
            location, f"has both {present[0]} and {present[1]}; keep exactly one credential"
        )
    kind = present[0]
    value = _string(f"{location}.{kind}", table[kind])
    if kind.endswith("_env") and not ENV_NAME_RE.match(value):
        raise ConfigValidationError(
            f"{location}.{kind}", "must be the name of an environment variable, e.g. MY_API_KEY"
        )
    if not kind.endswith("_env") and (value != value.strip() or "\n" in value):
        raise ConfigValidationError(
            f"{location}.{kind}", "must not contain spaces or line breaks at either end"
        )
    return Credential(kind, value)


def _models(location: str, value: object) -> Mapping[str, str]:
    table = _table(location, value)
    renames: dict[str, str] = {}
    for source, target in table.items():
        renames[source] = _string(f'{location}."{source}"', target)
    return MappingProxyType(renames)


ACCOUNT_KEYS = (
    "base_url",
    *CREDENTIAL_KINDS,
    "weight",
    "priority",
    "enabled",
    "models",
    "probe",
    "proxy",
    "ca_file",
    "max_connections",
)


def check_outbound_proxy(location: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigValidationError(location, 'must be a proxy URL such as "http://host:3128"')
    try:
        check_proxy_setting(value)
    except ValueError as exc:
        raise ConfigValidationError(
            location, f'{exc} (or "none" for a direct connection)'
        ) from None
    return "none" if value.strip().lower() == "none" else value.strip()


def _path(location: str, value: object) -> str:
    return os.path.expanduser(_string(location, value))


def account_from(location: str, name: str, value: object) -> Account:
    check_name(location, name)
    table = _table(location, value)
    _no_unknown(location, table, ACCOUNT_KEYS)
    if "base_url" not in table:
        raise ConfigValidationError(f"{location}.base_url", "is missing; set the account's URL")
    return Account(
        name=name,
        base_url=check_base_url(f"{location}.base_url", table["base_url"]),
        credential=credential_from(location, table),
        weight=_get(table, location, "weight", 1, _int_at_least(0)),
        priority=_get(table, location, "priority", 0, _int_at_least(0)),
        enabled=_get(table, location, "enabled", True, _bool),
        models=_get(table, location, "models", MappingProxyType({}), _models),
        probe=_get(table, location, "probe", "auto", _one_of(PROBE_MODES)),
        proxy=_get(table, location, "proxy", None, check_outbound_proxy),
        ca_file=_get(table, location, "ca_file", None, _path),
        max_connections=_get(table, location, "max_connections", 100, _int_at_least(1)),
    )


def cluster_from(location: str, name: str, value: object) -> Cluster:
    check_name(location, name)
    table = _table(location, value)
    _no_unknown(location, table, ("strategy", "sticky", "accounts"))
    accounts_loc = f"{location}.accounts"
    accounts = _table(accounts_loc, table.get("accounts", {}))
    return Cluster(
        name=name,
        strategy=_get(table, location, "strategy", "weighted", _one_of(STRATEGIES)),
        sticky=_get(table, location, "sticky", True, _bool),
        accounts=tuple(
            account_from(f"{accounts_loc}.{acc}", acc, body) for acc, body in accounts.items()
        ),
    )


def _proxy(location: str, value: object) -> ProxySettings:
    table = _table(location, value)
    _no_unknown(location, table, ("host", "port", "access_key", "drain_timeout"))
    default = ProxySettings()
    return ProxySettings(
        host=_get(table, location, "host", default.host, _string),
        port=_get(table, location, "port", default.port, _port),
        access_key=_get(table, location, "access_key", None, _string),
        drain_timeout=_get(table, location, "drain_timeout", default.drain_timeout, _seconds),
    )


def _timeouts(location: str, value: object) -> Timeouts:
    table = _table(location, value)
    default = Timeouts()
    keys = ("connect", "first_byte", "stream_first_byte", "stream_idle")
    _no_unknown(location, table, keys)
    return Timeouts(**{k: _get(table, location, k, getattr(default, k), _seconds) for k in keys})


def _health(location: str, value: object) -> HealthSettings:
    table = _table(location, value)
    default = HealthSettings()
    seconds = ("ejection_base", "ejection_max", "probe_interval", "probe_timeout")
    _no_unknown(location, table, ("failure_threshold", *seconds))
    settings = HealthSettings(
        failure_threshold=_get(
            table, location, "failure_threshold", default.failure_threshold, _int_at_least(1)
        ),
        **{k: _get(table, location, k, getattr(default, k), _seconds) for k in seconds},
    )
    if settings.ejection_max < settings.ejection_base:
        raise ConfigValidationError(f"{location}.ejection_max", "must be >= health.ejection_base")
    return settings


def _retry(location: str, value: object) -> RetrySettings:
    table = _table(location, value)
    default = RetrySettings()
    _no_unknown(location, table, ("budget_ratio", "budget_min", "budget_window"))
    return RetrySettings(
        budget_ratio=_get(table, location, "budget_ratio", default.budget_ratio, _ratio),
        budget_min=_get(table, location, "budget_min", default.budget_min, _int_at_least(0)),
        budget_window=_get(table, location, "budget_window", default.budget_window, _seconds),
    )


TOP_KEYS = ("default_cluster", "proxy", "timeouts", "health", "retry", "clusters")


def config_from(data: Mapping[str, Any]) -> Config:
    """Validate a whole parsed config file; raise on the first problem found."""
    _no_unknown("", data, TOP_KEYS)
    clusters_table = _table("clusters", data.get("clusters", {}))
    clusters = {
        name: cluster_from(f"clusters.{name}", name, body) for name, body in clusters_table.items()
    }
    default = _get(data, "", "default_cluster", None, _string)
    if default is not None and default not in clusters:
        raise ConfigValidationError(
            "default_cluster",
            f"names cluster '{default}', which does not exist; "
            f"create it with 'qcc cluster add {default}' or change default_cluster",
        )
    return Config(
        default_cluster=default,
        proxy=_get(data, "", "proxy", ProxySettings(), _proxy),
        timeouts=_get(data, "", "timeouts", Timeouts(), _timeouts),
        health=_get(data, "", "health", HealthSettings(), _health),
        retry=_get(data, "", "retry", RetrySettings(), _retry),
        clusters=MappingProxyType(clusters),
    )
