"""One account, ``[clusters.C.accounts.A]``: its base URL, its one credential (inline, from an
environment variable, from a command, or an ``[oauth]`` table), model renames, outbound proxy,
budgets and connection limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from qcc.config.checks import (
    as_table,
    boolean,
    check_env_name,
    check_name,
    int_at_least,
    no_unknown,
    non_empty,
    one_of,
    optional,
    positive_seconds,
    usd,
    user_path,
)
from qcc.config.model import (
    CREDENTIAL_KINDS,
    DEFAULT_CREDENTIAL_TTL,
    OAUTH_HEADERS,
    PROBE_MODES,
    Account,
    Credential,
    OAuthSettings,
    header_value_problem,
)
from qcc.errors import ConfigValidationError
from qcc.net.proxies import check_setting as check_proxy_setting

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
    ttl = optional(table, location, "credential_ttl", DEFAULT_CREDENTIAL_TTL, positive_seconds)
    if "credential_ttl" in table and not kind.endswith("_command"):
        raise ConfigValidationError(
            f"{location}.credential_ttl", "applies only to api_key_command or auth_token_command"
        )
    if kind == "oauth":
        settings = _oauth(where, table[kind])
        return Credential("oauth", settings.token_url, oauth=settings)
    value = non_empty(where, table[kind])
    if kind.endswith("_command"):
        if not value.strip():
            raise ConfigValidationError(where, 'must be a shell command, e.g. "op read op://…"')
        return Credential(kind, value, ttl=ttl)
    if kind.endswith("_env"):
        check_env_name(where, value, kind.removesuffix("_env"))
    else:
        problem = header_value_problem(value)
        if problem is not None:
            raise ConfigValidationError(where, problem)
    return Credential(kind, value)


def _oauth(location: str, value: object) -> OAuthSettings:
    """``[clusters.C.accounts.A.oauth]``: token_url, client_id, one client secret (inline or
    env) or none, at most one refresh token (none: the client-credentials grant)."""
    table = as_table(location, value)
    no_unknown(location, table, OAUTH_KEYS)
    for key in ("token_url", "client_id"):
        if key not in table:
            raise ConfigValidationError(f"{location}.{key}", "is missing")
    url = non_empty(f"{location}.token_url", table["token_url"])
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
            text = non_empty(where, table[key])
            if key.endswith("_env"):
                check_env_name(where, text, key.removesuffix("_env"))
            elif (problem := header_value_problem(text)) is not None:
                raise ConfigValidationError(where, problem)
            found[key] = text
    return OAuthSettings(
        token_url=url,
        client_id=non_empty(f"{location}.client_id", table["client_id"]),
        client_secret=found.get("client_secret"),
        client_secret_env=found.get("client_secret_env"),
        refresh_token=found.get("refresh_token"),
        refresh_token_env=found.get("refresh_token_env"),
        scope=optional(table, location, "scope", None, non_empty),
        header=optional(table, location, "header", "authorization", one_of(OAUTH_HEADERS)),
    )


# ---- end of credentials -------------------------------------------------------------------


def _models(location: str, value: object) -> Mapping[str, str]:
    table = as_table(location, value)
    renames: dict[str, str] = {}
    for source, target in table.items():
        renames[source] = non_empty(f'{location}."{source}"', target)
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


def account_from(location: str, name: str, value: object) -> Account:
    check_name(location, name)
    table = as_table(location, value)
    no_unknown(location, table, ACCOUNT_KEYS)
    if "base_url" not in table:
        raise ConfigValidationError(f"{location}.base_url", "is missing; set the account's URL")
    return Account(
        name=name,
        base_url=check_base_url(f"{location}.base_url", table["base_url"]),
        credential=credential_from(location, table),
        weight=optional(table, location, "weight", 1, int_at_least(0)),
        priority=optional(table, location, "priority", 0, int_at_least(0)),
        enabled=optional(table, location, "enabled", True, boolean),
        models=optional(table, location, "models", MappingProxyType({}), _models),
        probe=optional(table, location, "probe", "auto", one_of(PROBE_MODES)),
        budget_daily_usd=optional(table, location, "budget_daily_usd", None, usd),
        budget_monthly_usd=optional(table, location, "budget_monthly_usd", None, usd),
        proxy=optional(table, location, "proxy", None, check_outbound_proxy),
        ca_file=optional(table, location, "ca_file", None, user_path),
        max_connections=optional(
            table, location, "max_connections", Account.max_connections, int_at_least(1)
        ),
    )
