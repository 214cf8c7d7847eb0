"""The edits the CLI makes to the config document. Pure: no I/O, no printing.

Each function takes the tomlkit document from :meth:`ConfigStore.edit` and changes only the keys it
manages, so comments and hand-written keys elsewhere survive. Bad input raises a :class:`QccError`
before anything is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tomlkit
from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from qcc.config.checks import check_name
from qcc.config.model import STRATEGIES, Credential
from qcc.config.validate_account import check_base_url, check_outbound_proxy
from qcc.errors import AlreadyExistsError, ConfigValidationError, NotFoundError


def _clusters(doc: TOMLDocument, create: bool = False) -> Any:
    if "clusters" not in doc:
        if not create:
            return {}
        doc["clusters"] = tomlkit.table(is_super_table=True)
    return doc["clusters"]


def _cluster(doc: TOMLDocument, name: str) -> Any:
    clusters = _clusters(doc)
    if name not in clusters:
        raise NotFoundError(
            f"no cluster named '{name}'; see 'qcc cluster list' or create it with "
            f"'qcc cluster add {name}'"
        )
    return clusters[name]


def _account(doc: TOMLDocument, cluster: str, name: str) -> Any:
    accounts = _cluster(doc, cluster).get("accounts", {})
    if name not in accounts:
        raise NotFoundError(
            f"no account '{name}' in cluster '{cluster}'; "
            f"see 'qcc account list --cluster {cluster}'"
        )
    return accounts[name]


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ConfigValidationError(
            "--strategy", f"'{strategy}' is not a strategy; use one of: {', '.join(STRATEGIES)}"
        )
    return strategy


def add_cluster(
    doc: TOMLDocument, name: str, strategy: str = "weighted", sticky: bool = True
) -> bool:
    """Add a cluster; returns True when it also became the default cluster."""
    check_name("cluster name", name)
    check_strategy(strategy)
    clusters = _clusters(doc, create=True)
    if name in clusters:
        raise AlreadyExistsError(f"cluster '{name}' already exists; pick another name")
    table = tomlkit.table()
    table["strategy"] = strategy
    table["sticky"] = sticky
    clusters[name] = table
    if "default_cluster" not in doc:
        doc["default_cluster"] = name  # tomlkit keeps plain keys above the first table
        return True
    return False


def remove_cluster(doc: TOMLDocument, name: str) -> None:
    _cluster(doc, name)
    del doc["clusters"][name]
    if doc.get("default_cluster") == name:
        del doc["default_cluster"]


def set_default_cluster(doc: TOMLDocument, name: str) -> None:
    _cluster(doc, name)
    doc["default_cluster"] = name


def add_account(
    doc: TOMLDocument,
    cluster: str,
    name: str,
    base_url: str,
    credential: Credential,
    weight: int = 1,
    priority: int = 0,
    models: Mapping[str, str] | None = None,
    proxy: str | None = None,
) -> None:
    check_name("account name", name)
    if proxy is not None:
        proxy = check_outbound_proxy("--proxy", proxy)
    base_url = check_base_url("--base-url", base_url)
    if weight < 0:
        raise ConfigValidationError("--weight", f"must be an integer >= 0, got {weight}")
    if priority < 0:
        raise ConfigValidationError("--priority", f"must be an integer >= 0, got {priority}")
    table = _cluster(doc, cluster)
    if "accounts" not in table:
        table["accounts"] = tomlkit.table(is_super_table=True)
    accounts = table["accounts"]
    if name in accounts:
        raise AlreadyExistsError(
            f"account '{name}' already exists in cluster '{cluster}'; pick another name "
            f"or remove it first with 'qcc account remove {name} --cluster {cluster}'"
        )
    account = tomlkit.table()
    account["base_url"] = base_url
    account[credential.kind] = credential.value
    account["weight"] = weight
    account["priority"] = priority
    account["enabled"] = True
    if models:
        renames = tomlkit.table()
        for source, target in models.items():
            renames[source] = target
        account["models"] = renames
    if proxy is not None:
        account["proxy"] = proxy
    accounts[name] = account


def remove_account(doc: TOMLDocument, cluster: str, name: str) -> None:
    _account(doc, cluster, name)
    del doc["clusters"][cluster]["accounts"][name]


def set_account_enabled(doc: TOMLDocument, cluster: str, name: str, enabled: bool) -> None:
    account: Table = _account(doc, cluster, name)
    account["enabled"] = enabled


# ---- member keys (qcc key ...) --------------------------------------------------------------


def _member_key(doc: TOMLDocument, cluster: str, name: str) -> Any:
    keys = _cluster(doc, cluster).get("keys", {})
    if name not in keys:
        raise NotFoundError(
            f"no member key '{name}' in cluster '{cluster}'; see 'qcc key list --cluster {cluster}'"
        )
    return keys[name]


def add_member_key(
    doc: TOMLDocument,
    cluster: str,
    name: str,
    stored: str,
    rpm: int | None = None,
    budget_daily_usd: float | None = None,
) -> None:
    """Add a member key by its stored form (:func:`qcc.config.keys.stored_form`), never the key."""
    check_name("key name", name)
    if rpm is not None and rpm < 1:
        raise ConfigValidationError("--rpm", f"must be an integer >= 1, got {rpm}")
    if budget_daily_usd is not None and not budget_daily_usd > 0:
        raise ConfigValidationError(
            "--budget-daily-usd", "must be an amount in US dollars > 0, e.g. 5.0"
        )
    table = _cluster(doc, cluster)
    if "keys" not in table:
        table["keys"] = tomlkit.table(is_super_table=True)
    keys = table["keys"]
    if name in keys:
        raise AlreadyExistsError(
            f"member key '{name}' already exists in cluster '{cluster}'; pick another name, or "
            f"remove it first with 'qcc key remove {name} --cluster {cluster}'"
        )
    key = tomlkit.table()
    key["hash"] = stored
    if rpm is not None:
        key["rpm"] = rpm
    if budget_daily_usd is not None:
        key["budget_daily_usd"] = budget_daily_usd
    key["enabled"] = True
    keys[name] = key


def remove_member_key(doc: TOMLDocument, cluster: str, name: str) -> None:
    _member_key(doc, cluster, name)
    keys = doc["clusters"][cluster]["keys"]
    del keys[name]
    if not keys:
        del doc["clusters"][cluster]["keys"]


def set_member_key_enabled(doc: TOMLDocument, cluster: str, name: str, enabled: bool) -> None:
    key: Table = _member_key(doc, cluster, name)
    key["enabled"] = enabled
