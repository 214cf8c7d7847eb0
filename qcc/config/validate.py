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

from qcc.config.keys import KEY_PREFIX, parse_stored
from qcc.config.model import (
    CREDENTIAL_KINDS,
    DEFAULT_CREDENTIAL_TTL,
    OAUTH_HEADERS,
    PROBE_MODES,
    STRATEGIES,
    Account,
    Cluster,
    Config,
    Credential,
    HealthSettings,
    MemberKey,
    OAuthSettings,
    ProxySettings,
    RetrySettings,
    SharedSettings,
    Timeouts,
    header_value_problem,
)
from qcc.errors import ConfigValidationError
from qcc.net.proxies import check_setting as check_proxy_setting
from qcc.redact import looks_like_secret
from qcc.routing.rules import ACTIONS, REGEX_PREFIX, Rule
from qcc.usage.pricing import pricing_from

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_RULE = "must be 1-64 letters, digits, '-' or '_', starting with a letter or digit"

T = TypeVar("T")


def check_name(location: str, name: str) -> str:
    if not NAME_RE.match(name):
        shown = "that" if looks_like_secret(name) else f"'{name}'"  # a key pasted as a name
        raise ConfigValidationError(location, f"{shown} is not a valid name: {NAME_RULE}")
    return name


URL_RULE = "must be an http(s) URL such as https://api.anthropic.com"
PORT_RULE = "the port must be a number from 1 to 65535"


def check_base_url(location: str, value: object) -> str:
    """The URL without a trailing ``/``; errors never quote it (it may hold a password)."""
    if not isinstance(value, str):
        raise ConfigValidationError(location, URL_RULE)
    url = value.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Port out of range 0-65535", a bad [IPv6] literal...
        if "out of range" in str(exc):
            raise ConfigValidationError(location, PORT_RULE) from None
        raise ConfigValidationError(location, URL_RULE) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigValidationError(location, URL_RULE)
    # urlsplit drops tabs and line breaks silently; the URL itself must not have them
    if any(ord(c) < 0x21 or ord(c) == 0x7F or 0xDC80 <= ord(c) <= 0xDCFF for c in url):
        raise ConfigValidationError(
            location, "must not contain spaces, control characters or undecodable bytes"
        )
    if "@" in parts.netloc:
        raise ConfigValidationError(
            location,
            "must not contain a user name or password; credentials go in api_key or auth_token "
            "(or api_key_env / auth_token_env)",
        )
    if port == 0:
        raise ConfigValidationError(location, PORT_RULE)
    if parts.query or parts.fragment:
        raise ConfigValidationError(location, f"{URL_RULE}, without ?query or #fragment")
    path = parts.path.rstrip("/")
    if path.lower().endswith("/v1"):
        raise ConfigValidationError(
            location,
            "drop the trailing /v1: qcc adds the request path, which starts with /v1 "
            "(https://api.anthropic.com, not https://api.anthropic.com/v1)",
        )
    return url.rstrip("/")


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


def _usd(location: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigValidationError(location, "must be an amount in US dollars > 0, e.g. 20.0")
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


# ---- credentials --------------------------------------------------------------------------

OAUTH_KEYS = (
    "token_url",
    "client_id",
    "client_secret",
    "client_secret_env",
    "refresh_token",
    "refresh_token_env",
    "scope",
    "header",
)
CREDENTIAL_KEYS = (*CREDENTIAL_KINDS, "oauth", "credential_ttl")


def credential_from(location: str, table: Mapping[str, Any]) -> Credential:
    present = [kind for kind in (*CREDENTIAL_KINDS, "oauth") if kind in table]
    if not present:
        raise ConfigValidationError(
            location,
            "needs a credential: set one of api_key, auth_token, api_key_env, auth_token_env, "
            "api_key_command, auth_token_command or an [oauth] table",
        )
    if len(present) > 1:
        raise ConfigValidationError(
            location, f"has both {present[0]} and {present[1]}; keep exactly one credential"
        )
    kind = present[0]
    where = f"{location}.{kind}"
    ttl = _get(table, location, "credential_ttl", DEFAULT_CREDENTIAL_TTL, _seconds)
    if "credential_ttl" in table and not kind.endswith("_command"):
        raise ConfigValidationError(
            f"{location}.credential_ttl", "applies only to api_key_command or auth_token_command"
        )
    if kind == "oauth":
        settings = _oauth(where, table[kind])
        return Credential("oauth", settings.token_url, oauth=settings)
    value = _string(where, table[kind])
    if kind.endswith("_command"):
        if not value.strip():
            raise ConfigValidationError(where, 'must be a shell command, e.g. "op read op://…"')
        return Credential(kind, value, ttl=ttl)
    if kind.endswith("_env"):
        _env_name(where, value, kind.removesuffix("_env"))
    else:
        problem = header_value_problem(value)
        if problem is not None:
            raise ConfigValidationError(where, problem)
    return Credential(kind, value)


def _env_name(where: str, value: str, inline: str) -> None:
    if not ENV_NAME_RE.match(value):
        what = (
            f"that looks like a key, not a variable name; put a key in {inline} instead"
            if looks_like_secret(value)
            else "must be the name of an environment variable, e.g. MY_API_KEY"
        )
        raise ConfigValidationError(where, what)


def _oauth(location: str, value: object) -> OAuthSettings:
    """``[clusters.C.accounts.A.oauth]``: token_url, client_id, one client secret (inline or
    env) or none, at most one refresh token (none: the client-credentials grant)."""
    table = _table(location, value)
    _no_unknown(location, table, OAUTH_KEYS)
    for key in ("token_url", "client_id"):
        if key not in table:
            raise ConfigValidationError(f"{location}.{key}", "is missing")
    url = _string(f"{location}.token_url", table["token_url"])
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigValidationError(
            f"{location}.token_url", "must be an http(s) URL, e.g. https://sso.example.com/token"
        )
    if parts.username or parts.password:
        raise ConfigValidationError(
            f"{location}.token_url",
            "must not contain a user name or password; use client_id and client_secret",
        )
    found: dict[str, str] = {}
    for pair in (("client_secret", "client_secret_env"), ("refresh_token", "refresh_token_env")):
        given = [key for key in pair if key in table]
        if len(given) > 1:
            raise ConfigValidationError(
                location, f"has both {given[0]} and {given[1]}; keep exactly one"
            )
        for key in given:
            where = f"{location}.{key}"
            text = _string(where, table[key])
            if key.endswith("_env"):
                _env_name(where, text, key.removesuffix("_env"))
            elif (problem := header_value_problem(text)) is not None:
                raise ConfigValidationError(where, problem)
            found[key] = text
    return OAuthSettings(
        token_url=url,
        client_id=_string(f"{location}.client_id", table["client_id"]),
        client_secret=found.get("client_secret"),
        client_secret_env=found.get("client_secret_env"),
        refresh_token=found.get("refresh_token"),
        refresh_token_env=found.get("refresh_token_env"),
        scope=_get(table, location, "scope", None, _string),
        header=_get(table, location, "header", "authorization", _one_of(OAUTH_HEADERS)),
    )


# ---- end of credentials -------------------------------------------------------------------


def _models(location: str, value: object) -> Mapping[str, str]:
    table = _table(location, value)
    renames: dict[str, str] = {}
    for source, target in table.items():
        renames[source] = _string(f'{location}."{source}"', target)
    return MappingProxyType(renames)


ACCOUNT_KEYS = (
    "base_url",
    *CREDENTIAL_KINDS[:4],
    "weight",
    "priority",
    "enabled",
    "models",
    "probe",
    "budget_daily_usd",
    "budget_monthly_usd",
    "proxy",
    "ca_file",
    "max_connections",
    *CREDENTIAL_KEYS[4:],  # fetched credentials (issue 15)
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
        budget_daily_usd=_get(table, location, "budget_daily_usd", None, _usd),
        budget_monthly_usd=_get(table, location, "budget_monthly_usd", None, _usd),
        proxy=_get(table, location, "proxy", None, check_outbound_proxy),
        ca_file=_get(table, location, "ca_file", None, _path),
        max_connections=_get(
            table, location, "max_connections", Account.max_connections, _int_at_least(1)
        ),
    )


RULE_KEYS = ("status", "match", "action", "cooldown")


def _status(location: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ConfigValidationError(location, "must be an HTTP status from 100 to 599")
    return value


def rule_from(location: str, value: object) -> Rule:
    """One ``[[clusters.NAME.rules]]`` table; its regex (``re:...``) is compiled here, once."""
    table = _table(location, value)
    _no_unknown(location, table, RULE_KEYS)
    if "match" not in table:
        raise ConfigValidationError(
            f"{location}.match",
            "is missing; set the text to look for in the error body (or re:<regex>)",
        )
    if "action" not in table:
        raise ConfigValidationError(
            f"{location}.action", f"is missing; set one of: {', '.join(ACTIONS)}"
        )
    match = _string(f"{location}.match", table["match"])
    if match == REGEX_PREFIX:
        raise ConfigValidationError(f"{location}.match", "needs a regular expression after re:")
    action = _one_of(ACTIONS)(f"{location}.action", table["action"])
    try:
        return Rule(
            match=match,
            action=action,
            status=_get(table, location, "status", None, _status),
            cooldown=_get(table, location, "cooldown", None, _seconds),
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


# ---- member keys ([clusters.NAME.keys.MEMBER]) ------------------------------------------------

KEY_KEYS = ("hash", "rpm", "budget_daily_usd", "enabled")


def _key_hash(location: str, value: object) -> tuple[bytes, bytes]:
    parsed = parse_stored(value) if isinstance(value, str) else None
    if parsed is None:  # never quoted: it may be a key pasted where its hash belongs
        pasted = isinstance(value, str) and (
            value.startswith(KEY_PREFIX) or looks_like_secret(value)
        )
        raise ConfigValidationError(
            location,
            (
                "that looks like a key itself; config.toml keeps only its hash: "
                if pasted
                else "must be the hash 'qcc key add' wrote (sha256:SALT:DIGEST); "
            )
            + "create a key with 'qcc key add NAME'",
        )
    return parsed


def member_key_from(location: str, name: str, value: object) -> MemberKey:
    check_name(location, name)
    table = _table(location, value)
    _no_unknown(location, table, KEY_KEYS)
    if "hash" not in table:
        raise ConfigValidationError(
            f"{location}.hash", "is missing; create member keys with 'qcc key add NAME'"
        )
    salt, digest = _key_hash(f"{location}.hash", table["hash"])
    return MemberKey(
        name=name,
        salt=salt,
        digest=digest,
        rpm=_get(table, location, "rpm", None, _int_at_least(1)),
        budget_daily_usd=_get(table, location, "budget_daily_usd", None, _usd),
        enabled=_get(table, location, "enabled", True, _bool),
    )


def _member_keys(location: str, value: object) -> tuple[MemberKey, ...]:
    table = _table(location, value)
    return tuple(member_key_from(f"{location}.{n}", n, body) for n, body in table.items())


# ---- clusters -------------------------------------------------------------------------------


def cluster_from(location: str, name: str, value: object) -> Cluster:
    check_name(location, name)
    table = _table(location, value)
    _no_unknown(
        location, table, ("strategy", "sticky", "headroom_min", "rules", "accounts", "keys")
    )
    accounts_loc = f"{location}.accounts"
    accounts = _table(accounts_loc, table.get("accounts", {}))
    return Cluster(
        name=name,
        strategy=_get(table, location, "strategy", "weighted", _one_of(STRATEGIES)),
        sticky=_get(table, location, "sticky", True, _bool),
        accounts=tuple(
            account_from(f"{accounts_loc}.{acc}", acc, body) for acc, body in accounts.items()
        ),
        rules=_get(table, location, "rules", (), _rules),
        headroom_min=_get(table, location, "headroom_min", Cluster.headroom_min, _ratio),
        keys=_get(table, location, "keys", (), _member_keys),
    )


def _host_names(location: str, value: object) -> tuple[str, ...]:
    names = _strings(location, value)
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
    names = _strings(location, value)
    for i, name in enumerate(names):
        parts = urlsplit(name)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigValidationError(
                f"{location}[{i}]", f"'{name}' is not an origin (e.g. \"https://app.example.com\")"
            )
    return tuple(name.rstrip("/").lower() for name in names)


def _strings(location: str, value: object) -> list[str]:
    if not isinstance(value, list):
        raise ConfigValidationError(location, "must be a list of strings")
    return [_string(f"{location}[{i}]", item) for i, item in enumerate(value)]


PROXY_KEYS = ("host", "port", "access_key", "drain_timeout", "allowed_hosts", "allowed_origins")


def _proxy(location: str, value: object) -> ProxySettings:
    table = _table(location, value)
    _no_unknown(location, table, PROXY_KEYS)
    default = ProxySettings()
    settings = ProxySettings(
        host=_get(table, location, "host", default.host, _string),
        port=_get(table, location, "port", default.port, _port),
        access_key=_get(table, location, "access_key", None, _string),
        drain_timeout=_get(table, location, "drain_timeout", default.drain_timeout, _seconds),
        allowed_hosts=_get(table, location, "allowed_hosts", (), _host_names),
        allowed_origins=_get(table, location, "allowed_origins", (), _origins),
    )
    if "*" in settings.allowed_hosts and settings.access_key is None:
        raise ConfigValidationError(
            f"{location}.allowed_hosts",
            '"*" (any Host) needs proxy.access_key: without it any web page could use the '
            "proxy through DNS rebinding; set access_key or list the host names",
        )
    return settings


def _timeouts(location: str, value: object) -> Timeouts:
    table = _table(location, value)
    default = Timeouts()
    keys = ("connect", "first_byte", "stream_first_byte", "stream_idle", "client_read")
    _no_unknown(location, table, keys)
    return Timeouts(**{k: _get(table, location, k, getattr(default, k), _seconds) for k in keys})


def _health(location: str, value: object) -> HealthSettings:
    table = _table(location, value)
    default = HealthSettings()
    seconds = (
        "ejection_base",
        "ejection_max",
        "probe_interval",
        "probe_timeout",
        "rate_limit_default",
        "exhausted_recheck",
    )
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


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _shared(location: str, value: object) -> SharedSettings:
    table = _table(location, value)
    _no_unknown(location, table, ("redis_url", "redis_password_env"))
    url = _get(table, location, "redis_url", None, _string)
    if url is not None and not url.startswith(REDIS_SCHEMES):
        raise ConfigValidationError(
            f"{location}.redis_url",
            "must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379/0)",
        )
    return SharedSettings(url, _get(table, location, "redis_password_env", None, _string))


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
        pricing=_get(data, "", "pricing", MappingProxyType({}), pricing_from),
        shared=_get(data, "", "shared", SharedSettings(), _shared),
    )
