"""Whole-file validation: a plain dict (from TOML) becomes a :class:`Config` or one clear error.

Every error is a :class:`ConfigValidationError` whose message starts with the dotted location of
the bad value and says what would be right, e.g.
``clusters.prod.accounts.main.base_url: must be an http(s) URL``.

This module is the entry point (:func:`config_from`) and owns the top-level sections (``proxy``,
``timeouts``, ``health``, ``retry``, ``shared``, ``pricing``), clusters and their
``[[rules]]``. One account (with its credential) is :mod:`qcc.config.validate_account`'s job,
member keys are :mod:`qcc.config.validate_keys`'s, and the value checks they all share live in
:mod:`qcc.config.checks`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from qcc.config.checks import (
    as_table,
    boolean,
    check_name,
    int_at_least,
    no_unknown,
    non_empty,
    one_of,
    optional,
    port_number,
    positive_seconds,
    ratio,
    string_list,
)
from qcc.config.model import (
    STRATEGIES,
    Cluster,
    Config,
    HealthSettings,
    ProxySettings,
    RetrySettings,
    SharedSettings,
    Timeouts,
)
from qcc.config.validate_account import account_from
from qcc.config.validate_keys import member_keys_from
from qcc.errors import ConfigValidationError
from qcc.routing.rules import ACTIONS, REGEX_PREFIX, Rule
from qcc.usage.pricing import pricing_from

RULE_KEYS = ("status", "match", "action", "cooldown")


def _status(location: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ConfigValidationError(location, "must be an HTTP status from 100 to 599")
    return value


def rule_from(location: str, value: object) -> Rule:
    """One ``[[clusters.NAME.rules]]`` table; its regex (``re:...``) is compiled here, once."""
    table = as_table(location, value)
    no_unknown(location, table, RULE_KEYS)
    if "match" not in table:
        raise ConfigValidationError(
            f"{location}.match",
            "is missing; set the text to look for in the error body (or re:<regex>)",
        )
    if "action" not in table:
        raise ConfigValidationError(
            f"{location}.action", f"is missing; set one of: {', '.join(ACTIONS)}"
        )
    match = non_empty(f"{location}.match", table["match"])
    if match == REGEX_PREFIX:
        raise ConfigValidationError(f"{location}.match", "needs a regular expression after re:")
    action = one_of(ACTIONS)(f"{location}.action", table["action"])
    try:
        return Rule(
            match=match,
            action=action,
            status=optional(table, location, "status", None, _status),
            cooldown=optional(table, location, "cooldown", None, positive_seconds),
            name=location,
        )
    except re.error as exc:
        raise ConfigValidationError(
            f"{location}.match", f"invalid regular expression after re: ({exc}); fix it"
        ) from None


def _rules(location: str, value: object) -> tuple[Rule, ...]:
    if not isinstance(value, list):
        raise ConfigValidationError(
            location, f"must be an array of tables: write each rule under [[{location}]]"
        )
    return tuple(rule_from(f"{location}[{i}]", item) for i, item in enumerate(value))


# ---- clusters -------------------------------------------------------------------------------


def cluster_from(location: str, name: str, value: object) -> Cluster:
    check_name(location, name)
    table = as_table(location, value)
    no_unknown(location, table, ("strategy", "sticky", "headroom_min", "rules", "accounts", "keys"))
    accounts_loc = f"{location}.accounts"
    accounts = as_table(accounts_loc, table.get("accounts", {}))
    return Cluster(
        name=name,
        strategy=optional(table, location, "strategy", "weighted", one_of(STRATEGIES)),
        sticky=optional(table, location, "sticky", True, boolean),
        accounts=tuple(
            account_from(f"{accounts_loc}.{acc}", acc, body) for acc, body in accounts.items()
        ),
        rules=optional(table, location, "rules", (), _rules),
        headroom_min=optional(table, location, "headroom_min", Cluster.headroom_min, ratio),
        keys=optional(table, location, "keys", (), member_keys_from),
    )


def _host_names(location: str, value: object) -> tuple[str, ...]:
    names = string_list(location, value)
    for i, name in enumerate(names):
        if name != "*" and not re.fullmatch(
            r"[A-Za-z0-9._-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?", name
        ):
            raise ConfigValidationError(
                f"{location}[{i}]",
                f'\'{name}\' is not a host name (e.g. "myhost.lan" or "myhost.lan:7860")',
            )
    return tuple(name.lower() for name in names)


def _origins(location: str, value: object) -> tuple[str, ...]:
    names = string_list(location, value)
    for i, name in enumerate(names):
        parts = urlsplit(name)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigValidationError(
                f"{location}[{i}]", f"'{name}' is not an origin (e.g. \"https://app.example.com\")"
            )
    return tuple(name.rstrip("/").lower() for name in names)


PROXY_KEYS = ("host", "port", "access_key", "drain_timeout", "allowed_hosts", "allowed_origins")


def _proxy(location: str, value: object) -> ProxySettings:
    table = as_table(location, value)
    no_unknown(location, table, PROXY_KEYS)
    default = ProxySettings()
    settings = ProxySettings(
        host=optional(table, location, "host", default.host, non_empty),
        port=optional(table, location, "port", default.port, port_number),
        access_key=optional(table, location, "access_key", None, non_empty),
        drain_timeout=optional(
            table, location, "drain_timeout", default.drain_timeout, positive_seconds
        ),
        allowed_hosts=optional(table, location, "allowed_hosts", (), _host_names),
        allowed_origins=optional(table, location, "allowed_origins", (), _origins),
    )
    if "*" in settings.allowed_hosts and settings.access_key is None:
        raise ConfigValidationError(
            f"{location}.allowed_hosts",
            '"*" (any Host) needs proxy.access_key: without it any web page could use the '
            "proxy through DNS rebinding; set access_key or list the host names",
        )
    return settings


def _timeouts(location: str, value: object) -> Timeouts:
    table = as_table(location, value)
    default = Timeouts()
    keys = ("connect", "first_byte", "stream_first_byte", "stream_idle", "client_read")
    no_unknown(location, table, keys)
    return Timeouts(
        **{k: optional(table, location, k, getattr(default, k), positive_seconds) for k in keys}
    )


def _health(location: str, value: object) -> HealthSettings:
    table = as_table(location, value)
    default = HealthSettings()
    seconds = (
        "ejection_base",
        "ejection_max",
        "probe_interval",
        "probe_timeout",
        "rate_limit_default",
        "exhausted_recheck",
    )
    no_unknown(location, table, ("failure_threshold", *seconds))
    settings = HealthSettings(
        failure_threshold=optional(
            table, location, "failure_threshold", default.failure_threshold, int_at_least(1)
        ),
        **{k: optional(table, location, k, getattr(default, k), positive_seconds) for k in seconds},
    )
    if settings.ejection_max < settings.ejection_base:
        raise ConfigValidationError(f"{location}.ejection_max", "must be >= health.ejection_base")
    return settings


def _retry(location: str, value: object) -> RetrySettings:
    table = as_table(location, value)
    default = RetrySettings()
    no_unknown(location, table, ("budget_ratio", "budget_min", "budget_window"))
    return RetrySettings(
        budget_ratio=optional(table, location, "budget_ratio", default.budget_ratio, ratio),
        budget_min=optional(table, location, "budget_min", default.budget_min, int_at_least(0)),
        budget_window=optional(
            table, location, "budget_window", default.budget_window, positive_seconds
        ),
    )


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _shared(location: str, value: object) -> SharedSettings:
    table = as_table(location, value)
    no_unknown(location, table, ("redis_url", "redis_password_env"))
    url = optional(table, location, "redis_url", None, non_empty)
    if url is not None and not url.startswith(REDIS_SCHEMES):
        raise ConfigValidationError(
            f"{location}.redis_url",
            "must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379/0)",
        )
    return SharedSettings(url, optional(table, location, "redis_password_env", None, non_empty))


TOP_KEYS = (
    "default_cluster",
    "proxy",
    "timeouts",
    "health",
    "retry",
    "clusters",
    "pricing",
    "shared",
)


def config_from(data: Mapping[str, Any]) -> Config:
    """Validate a whole parsed config file; raise on the first problem found."""
    no_unknown("", data, TOP_KEYS)
    clusters_table = as_table("clusters", data.get("clusters", {}))
    clusters = {
        name: cluster_from(f"clusters.{name}", name, body) for name, body in clusters_table.items()
    }
    default = optional(data, "", "default_cluster", None, non_empty)
    if default is not None and default not in clusters:
        raise ConfigValidationError(
            "default_cluster",
            f"names cluster '{default}', which does not exist; "
            f"create it with 'qcc cluster add {default}' or change default_cluster",
        )
    return Config(
        default_cluster=default,
        proxy=optional(data, "", "proxy", ProxySettings(), _proxy),
        timeouts=optional(data, "", "timeouts", Timeouts(), _timeouts),
        health=optional(data, "", "health", HealthSettings(), _health),
        retry=optional(data, "", "retry", RetrySettings(), _retry),
        clusters=MappingProxyType(clusters),
        pricing=optional(data, "", "pricing", MappingProxyType({}), pricing_from),
        shared=optional(data, "", "shared", SharedSettings(), _shared),
    )
