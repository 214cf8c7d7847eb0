"""Network failures talking to an account. Their text is safe to log: no headers, no secrets,
and a proxy is shown masked (``http://user:***@host:3128``)."""

from __future__ import annotations

import errno
import os
import socket
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qcc.net.proxies import ProxyURL


class UpstreamError(Exception):
    """A network-level failure talking to an account (never includes request headers)."""

    describe = "network error"
    local = False  # qcc's own limit, not the account's fault (e.g. all connection slots busy)

    def __str__(self) -> str:
        return self.describe


class CannotConnect(UpstreamError):
    def __init__(self, os_error: OSError, via: ProxyURL | None = None) -> None:
        super().__init__()
        self.os_error = os_error
        where = f" to proxy {via.masked()}" if via is not None else ""
        self.describe = f"cannot connect{where} ({_why(os_error)})"
        # Out of file descriptors is this process's trouble, not the account's.
        self.local = os_error.errno in (errno.EMFILE, errno.ENFILE)


class ProxyFailed(UpstreamError):
    """The proxy refused the tunnel (CONNECT non-2xx, 407, a SOCKS error) or broke it."""

    def __init__(self, proxy: ProxyURL, reason: str) -> None:
        super().__init__()
        self.describe = f"proxy {proxy.masked()} {reason}"


class BadSetting(UpstreamError):
    """A route that cannot be used as configured (bad proxy variable, unreadable ca_file)."""

    def __init__(self, describe: str) -> None:
        super().__init__()
        self.describe = describe


def _why(error: OSError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or type(error).__name__}"
    if error.errno and error.errno > 0 and not isinstance(error, socket.gaierror):
        return os.strerror(error.errno)  # asyncio's own text names the address; this is shorter
    return error.strerror or (str(error) if error.args else "") or type(error).__name__


class ConnectTimeout(UpstreamError, TimeoutError):
    describe = "connect timed out"

    def __init__(self, describe: str | None = None, *, local: bool = False) -> None:
        super().__init__()
        if describe is not None:
            self.describe = describe
        self.local = local


class ReadTimeout(TimeoutError):
    """No byte arrived before the deadline."""


class Disconnected(UpstreamError):
    describe = "server disconnected"


class BodyBroken(UpstreamError):
    describe = "response body broken off"


class BadResponse(UpstreamError):
    describe = "invalid HTTP response"
