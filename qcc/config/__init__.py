"""The config file: typed model, whole-file validation, and safe storage."""

from qcc.config.model import (
    CREDENTIAL_KINDS,
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
from qcc.config.store import ConfigStore

__all__ = [
    "CREDENTIAL_KINDS",
    "STRATEGIES",
    "Account",
    "Cluster",
    "Config",
    "ConfigStore",
    "Credential",
    "HealthSettings",
    "ProxySettings",
    "RetrySettings",
    "Timeouts",
]
