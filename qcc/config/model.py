"""Typed, immutable view of ``config.toml``. Built only by :mod:`qcc.config.validate`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from qcc.errors import CredentialError, NotFoundError
from qcc.routing.rules import Rule
from qcc.usage.pricing import Price

STRATEGIES = ("priority", "round-robin", "weighted", "least-latency")
CREDENTIAL_KINDS = (
    "api_key",
    "auth_token",
    "api_key_env",
    "auth_token_env",
    "api_key_command",
    "auth_token_command",
)
OAUTH_HEADERS = ("authorization", "x-api-key")
DEFAULT_CREDENTIAL_TTL = 300.0
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


def header_value_problem(value: str) -> str | None:
    """What makes ``value`` unfit to send as an HTTP header value, in words that never quote it.

    RFC 9110 allows visible ASCII, obs-text, and spaces or tabs between them. qcc is stricter
    about obs-text: real keys and tokens are ASCII, and bytes above 0x7f are how a pasted
    typographic quote, a non-breaking space or an undecodable argument shows up.
    """
    if value.isascii() and value.isprintable() and value == value.strip():
        return None  # the common case: one scan, nothing to report
    if value.endswith(("\r", "\r\n")):
        return (
            "ends with a carriage return — was it read from a file with Windows line endings? "
            "remove the trailing \\r"
        )
    if value.endswith("\n"):
        return "ends with a line break; remove it (qcc does not strip it for you)"
    if value != value.strip(" \t"):
        return "starts or ends with whitespace; remove it (qcc does not strip it for you)"
    for char in value:
        if char in "\r\n":
            return "contains a control character (a line break); a credential is one line"
        if char != "\t" and (ord(char) < 0x20 or ord(char) == 0x7F):
            return "contains a control character"
    for char in value:
        if 0xDC80 <= ord(char) <= 0xDCFF:  # how Python carries undecodable argv/env bytes
            return "is not valid UTF-8 text; type or paste the credential again"
    if not value.isascii():
        return (
            "contains a non-ASCII character (a typographic quote or dash, or a non-breaking "
            "space?); keys and tokens are plain ASCII"
        )
    return None  # tabs between visible characters are allowed


def check_header_value(value: str, source: str) -> None:
    """Raise :class:`CredentialError` naming ``source`` (never the value) if ``value`` cannot be
    sent as a header value. Every credential source goes through this before it is used."""
    problem = header_value_problem(value)
    if problem is not None:
        raise CredentialError(f"{source} {problem}")


# ---- credentials (issue 15: sources that live elsewhere and change) ---------------------


@dataclass(frozen=True)
class OAuthSettings:
    """An account's OAuth2 token endpoint: the refresh grant (RFC 6749 §6) when a refresh token
    is given, else the client-credentials grant (§4.4). The refresh token here is only the
    *initial* one: rotated ones live in the state dir (:mod:`qcc.credentials.tokens`)."""

    token_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    client_secret_env: str | None = None
    refresh_token: str | None = field(default=None, repr=False)
    refresh_token_env: str | None = None
    scope: str | None = None
    header: str = "authorization"  # authorization (Bearer) | x-api-key

    def secrets(self, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """Every secret of this table (inline or from the environment), to scrub text of."""
        env = os.environ if environ is None else environ
        found = (
            self.client_secret,
            self.refresh_token,
            env.get(self.client_secret_env) if self.client_secret_env else None,
            env.get(self.refresh_token_env) if self.refresh_token_env else None,
        )
        return tuple(s for s in found if s)


@dataclass(frozen=True)
class Credential:
    """Exactly one way to authenticate an account. ``value`` is a secret, an env var name, a
    shell command (``*_command``) or, for ``oauth``, the token URL (the table is ``oauth``)."""

    kind: str
    value: str = field(repr=False)
    ttl: float = DEFAULT_CREDENTIAL_TTL  # seconds a command's output is used (``*_command``)
    oauth: OAuthSettings | None = None

    @property
    def from_env(self) -> bool:
        return self.kind.endswith("_env")

    @property
    def dynamic(self) -> bool:
        """Fetched while the proxy runs (a command, or an OAuth2 token endpoint)."""
        return self.kind.endswith("_command") or self.kind == "oauth"

    @property
    def source(self) -> str:
        """Where the credential comes from: ``inline``, ``env:VAR``, ``command`` or ``oauth``."""
        if self.from_env:
            return f"env:{self.value}"
        if self.kind.endswith("_command"):
            return "command"
        return "oauth" if self.kind == "oauth" else "inline"

    @property
    def header_name(self) -> str:
        if self.oauth is not None:
            return self.oauth.header
        return "x-api-key" if self.kind.startswith("api_key") else "authorization"

    def masked(self) -> str:
        """A display form that never reveals the secret (env var names are not secret; of a
        command only its program is shown, of an OAuth2 endpoint its host)."""
        if self.from_env:
            return f"${self.value}"
        if self.kind.endswith("_command"):
            # The program only: never a leading VAR=value (VAULT_TOKEN=… vault kv get …).
            words = [w for w in self.value.split() if "=" not in w]
            program = words[0].rsplit("/", 1)[-1] if words else ""
            return f"$({program} …)" if program else "$(…)"
        if self.kind == "oauth":
            host = self.value.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[2]
            return f"oauth {host}"
        return mask_secret(self.value)

    def secret(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret itself, read from the environment for ``*_env`` kinds.

        Raises :class:`CredentialError` (never quoting the value) when it is missing or cannot
        be sent as a header value: ``credential from $VAR contains a control character``.
        Dynamic kinds are fetched by :mod:`qcc.credentials`, never here.
        """
        if self.dynamic:
            raise CredentialError(
                f"credential {self.kind} is fetched when it is used; see 'qcc account test'"
            )
        if not self.from_env:
            check_header_value(self.value, f"credential {self.kind}")
            return self.value
        env = os.environ if environ is None else environ
        secret = env.get(self.value, "")
        if not secret:
            raise CredentialError(
                f"environment variable {self.value} is not set; export it before starting qcc"
            )
        check_header_value(secret, f"credential from ${self.value}")
        return secret

    def header(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """The (name, value) header pair to send upstream."""
        return header_for(self.header_name, self.secret(environ))


def header_for(name: str, secret: str) -> tuple[str, str]:
    """The header pair that carries ``secret``: ``x-api-key``, or ``authorization: Bearer``."""
    if name == "authorization":
        return "authorization", f"Bearer {secret}"
    return "x-api-key", secret


# ---- end of credentials ------------------------------------------------------------------


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
    budget_daily_usd: float | None = None
    budget_monthly_usd: float | None = None


# ---- member keys (qcc key ...): one client key per team member --------------------------------


@dataclass(frozen=True)
class MemberKey:
    """A client key of one cluster: only its salted hash is known (see :mod:`qcc.config.keys`)."""

    name: str
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)
    rpm: int | None = None  # requests per minute, None: no limit
    budget_daily_usd: float | None = None
    enabled: bool = True


# ---- clusters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    name: str
    strategy: str = "weighted"
    sticky: bool = True
    accounts: tuple[Account, ...] = ()
    rules: tuple[Rule, ...] = ()  # matched before the built-in rules (qcc.routing.rules)
    headroom_min: float = 0.05  # skip an account announcing less than this share of its limit
    keys: tuple[MemberKey, ...] = ()  # when any: clients must present one (or proxy.access_key)

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
    # Host header values accepted besides the proxy's own address ("*": any, needs access_key).
    allowed_hosts: tuple[str, ...] = ()
    # Origin header values accepted (browsers send one; SDKs and Claude Code do not).
    allowed_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Timeouts:
    """Seconds. None of the defaults cuts a legitimate long generation."""

    connect: float = 10.0
    first_byte: float = 600.0  # response head of a non-streaming request (whole generation)
    stream_first_byte: float = 60.0  # head and first content event of a streaming request
    stream_idle: float = 300.0  # longest silence between two chunks of a stream
    # A client has this long to send a request's head (from connecting, or from the end of its
    # previous response: also the idle keep-alive time) and, separately, its body.
    client_read: float = 60.0


@dataclass(frozen=True)
class HealthSettings:
    failure_threshold: int = 3
    ejection_base: float = 30.0
    ejection_max: float = 300.0
    probe_interval: float = 60.0
    probe_timeout: float = 10.0
    exhausted_recheck: float = 1800.0  # an exhausted account's next trial, if it announced none
    # How long a 429 (or a stream opening with rate_limit_error) rests an account that announced
    # neither retry-after nor a reset time. Short: such a 429 is usually about one request.
    rate_limit_default: float = 5.0


@dataclass(frozen=True)
class RetrySettings:
    budget_ratio: float = 0.2  # failovers allowed as a share of recent requests...
    budget_min: int = 10  # ...plus this many per window, so a quiet proxy can still fail over
    budget_window: float = 10.0


@dataclass(frozen=True)
class SharedSettings:
    """``[shared]``: instances that share one pool through Redis (:mod:`qcc.shared`)."""

    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    redis_password_env: str | None = None  # the env var holding the password, if not in the URL


@dataclass(frozen=True)
class Config:
    default_cluster: str | None = None
    proxy: ProxySettings = ProxySettings()
    timeouts: Timeouts = Timeouts()
    health: HealthSettings = HealthSettings()
    retry: RetrySettings = RetrySettings()
    clusters: Mapping[str, Cluster] = field(default_factory=lambda: MappingProxyType({}))
    pricing: Mapping[str, Price] = field(default_factory=lambda: MappingProxyType({}))
    shared: SharedSettings = SharedSettings()

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
