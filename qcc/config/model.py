"""Typed, immutable view of ``config.toml``. Built only by :mod:`qcc.config.validate`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from qcc.errors import CredentialError, NotFoundError

STRATEGIES = ("priority", "round-robin", "weighted", "least-latency")
CREDENTIAL_KINDS = ("api_key", "auth_token", "api_key_env", "auth_token_env")
PROBE_MODES = ("auto", "count_tokens", "models", "message")


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


def mask_secret(secret: str) -> str:
    """Show just enough of a secret to recognise it: ``sk-ant-…a1b2``."""
    if len(secret) < 12:
        return "…"
    if len(secret) < 24:
        return f"…{secret[-4:]}"
    return f"{secret[:7]}…{secret[-4:]}"


@dataclass(frozen=True)
class Credential:
    """Exactly one way to authenticate an account. ``value`` is a secret or an env var name."""

    kind: str
    value: str = field(repr=False)

    @property
    def from_env(self) -> bool:
        return self.kind.endswith("_env")

    @property
    def header_name(self) -> str:
        return "x-api-key" if self.kind.startswith("api_key") else "authorization"

    def masked(self) -> str:
        """A display form that never reveals the secret (env var names are not secret)."""
        if self.from_env:
            return f"${self.value}"
        return mask_secret(self.value)

    def secret(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret itself, read from the environment for ``*_env`` kinds."""
        if not self.from_env:
            return self.value
        env = os.environ if environ is None else environ
        secret = env.get(self.value, "")
        if not secret:
            raise CredentialError(
                f"environment variable {self.value} is not set; export it before starting qcc"
            )
        return secret

    def header(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """The (name, value) header pair to send upstream."""
        secret = self.secret(environ)
        if self.header_name == "authorization":
            return "authorization", f"Bearer {secret}"
        return "x-api-key", secret


@dataclass(frozen=True)
class Account:
    name: str
    base_url: str
    credential: Credential
    weight: int = 1
    priority: int = 0
    enabled: bool = True
    models: Mapping[str, str] = field(default_factory=_empty)
    probe: str = "auto"
    proxy: str | None = field(default=None, repr=False)  # URL (may hold a password) or "none"
    ca_file: str | None = None  # extra trust for this account, on top of the system's
    max_connections: int = 100  # open connections at once; more requests wait (connect timeout)


@dataclass(frozen=True)
class Cluster:
    name: str
    strategy: str = "weighted"
    sticky: bool = True
    accounts: tuple[Account, ...] = ()

    def account(self, name: str) -> Account:
        for account in self.accounts:
            if account.name == name:
                return account
        raise NotFoundError(
            f"no account '{name}' in cluster '{self.name}'; "
            f"see 'qcc account list --cluster {self.name}'"
        )


@dataclass(frozen=True)
class ProxySettings:
    host: str = "127.0.0.1"
    port: int = 7860
    access_key: str | None = field(default=None, repr=False)
    drain_timeout: float = 30.0


@dataclass(frozen=True)
class Timeouts:
    """Seconds. None of the defaults cuts a legitimate long generation."""

    connect: float = 10.0
    first_byte: float = 600.0  # response head of a non-streaming request (whole generation)
    stream_first_byte: float = 60.0  # head and first event of a streaming request
    stream_idle: float = 300.0  # longest silence between two chunks of a stream


@dataclass(frozen=True)
class HealthSettings:
    failure_threshold: int = 3
    ejection_base: float = 30.0
    ejection_max: float = 300.0
    probe_interval: float = 60.0
    probe_timeout: float = 10.0


@dataclass(frozen=True)
class RetrySettings:
    budget_ratio: float = 0.2  # failovers allowed as a share of recent requests...
    budget_min: int = 10  # ...plus this many per window, so a quiet proxy can still fail over
    budget_window: float = 10.0


@dataclass(frozen=True)
class Config:
    default_cluster: str | None = None
    proxy: ProxySettings = ProxySettings()
    timeouts: Timeouts = Timeouts()
    health: HealthSettings = HealthSettings()
    retry: RetrySettings = RetrySettings()
    clusters: Mapping[str, Cluster] = field(default_factory=lambda: MappingProxyType({}))

    def cluster(self, name: str | None = None) -> Cluster:
        """The named cluster, else the default one, else the only one."""
        if name is None:
            name = self.default_cluster
            if name is None:
                if len(self.clusters) == 1:
                    return next(iter(self.clusters.values()))
                if not self.clusters:
                    raise NotFoundError(
                        "no cluster is configured; create one with 'qcc cluster add NAME'"
                    )
                raise NotFoundError(
                    "no default cluster; pass --cluster NAME or set one with "
                    "'qcc cluster default NAME'"
                )
        try:
            return self.clusters[name]
        except KeyError:
            raise NotFoundError(
                f"no cluster named '{name}'; see 'qcc cluster list' or create it with "
                f"'qcc cluster add {name}'"
            ) from None
