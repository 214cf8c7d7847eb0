"""Where the shared Redis is: ``QCC_REDIS_URL``, else ``[shared] redis_url``.

The password comes from the URL or from the env var named by ``redis_password_env``; it is never
logged or shown (:func:`shown` masks it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from qcc.config.model import SharedSettings
from qcc.errors import ProxyError

URL_ENV = "QCC_REDIS_URL"
SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class Target:
    url: str = field(repr=False)  # may hold a password
    password: str | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        return shown(self.url)


def shown(url: str) -> str:
    """The URL without its user, password or query (``?password=`` works too):
    ``redis://***@host:6379/0``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"***@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))


def target(settings: SharedSettings, environ: Mapping[str, str] | None = None) -> Target | None:
    """The Redis to share through, or None: sharing is off (the default)."""
    env = os.environ if environ is None else environ
    url = env.get(URL_ENV, "").strip() or settings.redis_url
    if not url:
        return None
    if not url.startswith(SCHEMES):
        raise ProxyError(
            f"{URL_ENV} must start with redis://, rediss:// or unix:// "
            "(e.g. redis://127.0.0.1:6379/0)"
        )
    password = None
    name = settings.redis_password_env
    if name is not None:
        password = env.get(name)
        if not password:
            raise ProxyError(
                f"shared.redis_password_env names {name}, which is not set; "
                "export it before starting qcc"
            )
    return Target(url, password)
