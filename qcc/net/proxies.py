"""Which outbound proxy an account's connections go through: pure decisions, no I/O.

An account's own ``proxy`` setting wins (``"none"`` means direct). Otherwise the environment is
read the way curl and aiohttp's ``trust_env`` read it: ``https_proxy``/``HTTPS_PROXY`` for https
accounts, ``http_proxy``/``HTTP_PROXY`` for http ones, ``all_proxy``/``ALL_PROXY`` for both, and
``no_proxy``/``NO_PROXY`` (hosts, domain suffixes, ``*``, IP addresses and CIDR ranges) to skip.
Loopback is never sent to a proxy taken from the environment.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

SCHEMES = ("http", "socks5", "socks5h")
DEFAULT_PORTS = {"http": 3128, "socks5": 1080, "socks5h": 1080}


@dataclass(frozen=True, slots=True)
class ProxyURL:
    """One outbound proxy. ``str()`` and :meth:`masked` never show the password."""

    scheme: str
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> ProxyURL:
        """Parse a proxy URL; ``ValueError`` (with a message free of credentials) if unusable."""
        parts = urlsplit(text.strip())
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            shown = scheme or "none"
            raise ValueError(
                f"proxy scheme {shown!r} is not supported; use http://, socks5:// or socks5h://"
            )
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise ValueError("proxy port must be a number from 1 to 65535") from None
        if not host:
            raise ValueError(f"proxy URL needs a host, e.g. {scheme}://proxy.example:3128")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"a proxy URL is {scheme}://[user:pass@]host:port, with no path")
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(scheme, host, port or DEFAULT_PORTS[scheme], user, password)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def masked(self) -> str:
        """``http://user:***@host:3128``: the user name stays, the password never shows."""
        auth = ""
        if self.username is not None:
            auth = self.username + (":***" if self.password else "") + "@"
        return f"{self.scheme}://{auth}{self.address}"

    def __str__(self) -> str:
        return self.masked()

    def basic_auth(self) -> str | None:
        """The ``Proxy-Authorization`` value for an HTTP proxy with credentials."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def check_setting(value: str) -> None:
    """Validate an account's ``proxy`` value (``"none"`` or a proxy URL); ``ValueError`` if bad."""
    if value.strip().lower() != "none":
        ProxyURL.parse(value)


def choose(
    setting: str | None, scheme: str, host: str, environ: Mapping[str, str]
) -> tuple[ProxyURL | None, str]:
    """The proxy for an account (or None: direct) and where that choice came from.

    ``setting`` is the account's ``proxy`` value; ``scheme`` is its base URL's (http/https).
    Raises ``ValueError`` naming the variable when an environment value is not a proxy URL.
    """
    if setting is not None:
        if setting.strip().lower() == "none":
            return None, "proxy = none"
        return ProxyURL.parse(setting), "the account's proxy setting"
    if is_loopback(host) or bypassed(host, _env(environ, "no_proxy")):
        return None, "no proxy for this host"
    for name in (f"{scheme}_proxy", "all_proxy"):
        value = _env(environ, name).strip()
        if value:
            if "://" not in value:
                value = "http://" + value  # curl reads a bare host:port as an HTTP proxy
            try:
                return ProxyURL.parse(value), f"${name.upper()}"
            except ValueError as exc:
                raise ValueError(f"${name.upper()}: {exc}") from None
    return None, "no proxy configured"


def _env(environ: Mapping[str, str], name: str) -> str:
    """Lower case first, as curl and urllib do; then the upper-case spelling."""
    return environ.get(name) or environ.get(name.upper()) or ""


def is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``host`` matches a ``NO_PROXY`` list (host, .suffix, suffix, *, IP, CIDR)."""
    if not no_proxy:
        return False
    host = host.lower().rstrip(".").strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:
            try:
                if ip is not None and ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = _without_port(entry).strip("[]").rstrip(".")
        if ip is not None:
            try:
                if ip == ipaddress.ip_address(entry):
                    return True
            except ValueError:
                pass
            continue
        bare = entry.lstrip("*").lstrip(".")
        if bare and (host == bare or host.endswith("." + bare)):
            return True
    return False


def _without_port(entry: str) -> str:
    if entry.startswith("["):
        return entry.split("]")[0] + "]"
    if entry.count(":") == 1:
        return entry.split(":")[0]
    return entry
