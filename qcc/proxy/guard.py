"""The proxy's edge rules, as pure checks: who may listen where, which Host and Origin a request
may carry, which paths leave for an account, and how an encoded request body is read.

Nothing here does I/O; :mod:`qcc.proxy.app` applies these checks to every request in one
middleware, and the hot-reload watcher applies :func:`check_bind` to every new config.

- **Host.** A web page can make a browser send requests to ``127.0.0.1``, and, through DNS
  rebinding (a name of its own that resolves to ``127.0.0.1``), even read the answers. Such a
  request carries the page's host name in ``Host``; the proxy accepts only its own address:
  ``127.0.0.1:P``, ``localhost:P``, ``[::1]:P``, the host it listens on and the address the
  connection arrived on (``P`` is that connection's port), plus ``[proxy] allowed_hosts``.
- **Origin.** Browsers send ``Origin`` on cross-site requests; SDKs and Claude Code send none.
  Any ``Origin`` not listed in ``[proxy] allowed_origins`` is refused, except the proxy's own
  (``http://`` + an accepted ``Host``): the dashboard's same-origin POSTs carry it.
- **Paths.** The request path is percent-decoded and its dot segments resolved before it is
  judged; only what stays inside ``/v1/`` is forwarded, as the client's raw segments (so the
  account decodes exactly what was judged), never an absolute-form target.
- **Encoded bodies.** The client's bytes are forwarded as sent, with their ``Content-Encoding``;
  a decoded copy (gzip/deflate, bounded) serves only to read the request (stream flag, sticky
  key, model rename).
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from qcc.config.model import Config, ProxySettings
from qcc.errors import ProxyError
from qcc.proxy.messages import rename_model

TARGET = web.RequestKey("qcc_target", str)  # the normalised target to forward (path + query)
VIEW = web.RequestKey("qcc_view", bytes)  # the decoded copy of an encoded request body
# Who an admitted API request is: its member key's name, "" for proxy.access_key (or no keys).
CALLER = web.RequestKey("qcc_caller", str)

# ---- where the proxy may listen -------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(
    config: Config, host: str, *, running: bool = False, cluster: str | None = None
) -> None:
    """Refuse to expose accounts beyond this machine without an access key (or, for the served
    ``cluster``, member keys).

    ``running``: the config is a reload for a proxy already listening on ``host``.
    """
    if is_loopback(host) or config.proxy.access_key is not None:
        return
    served = config.clusters.get(cluster) if cluster is not None else None
    if served is not None and served.keys:
        return
    if running:
        raise ProxyError(
            f"proxy.access_key: cannot be removed while the proxy listens on {host} (beyond "
            "this machine) and its cluster has no member keys; the running keys stay in force. "
            "Keep a key, or restart the proxy on 127.0.0.1"
        )
    raise ProxyError(
        f"refusing to listen on {host} without an access key: anyone who can reach it "
        "could spend your accounts; set proxy.access_key in config.toml, add member keys "
        "with 'qcc key add NAME', or use 127.0.0.1"
    )


# ---- Host and Origin ------------------------------------------------------------------------


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class EdgePolicy:
    """Which ``Host`` and ``Origin`` values a request may carry. Built per config."""

    def __init__(self, proxy: ProxySettings, listen_host: str) -> None:
        self.any_host = "*" in proxy.allowed_hosts
        names = {"127.0.0.1", "localhost", "[::1]", _bracketed(listen_host.lower())}
        exact: set[str] = set()
        for entry in proxy.allowed_hosts:
            # "name" is accepted on the port the connection arrived on; "name:port" as written.
            (exact if entry.rpartition(":")[2].isdigit() else names).add(entry)
        self._names = frozenset(names)
        self._exact = frozenset(exact)
        self._origins = frozenset(proxy.allowed_origins)
        self._by_sock: dict[Any, frozenset[str]] = {}  # one entry per local address:port

    def _for_sock(self, sockname: Any) -> frozenset[str]:
        allowed = set(self._exact)
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            ip, port = sockname[0], sockname[1]
            for name in (*self._names, _bracketed(str(ip).lower())):
                allowed.add(f"{name}:{port}")
                if port == 80:
                    allowed.add(name)
        result = frozenset(allowed)
        if len(self._by_sock) < 64:
            self._by_sock[sockname] = result
        return result

    def host_ok(self, host: str | None, sockname: Any) -> bool:
        """``host``: the request's Host header (None when absent: no browser omits it)."""
        if host is None or self.any_host:
            return True
        allowed = self._by_sock.get(sockname)
        if allowed is None:
            allowed = self._for_sock(sockname)
        return host in allowed or host.lower() in allowed

    def origin_ok(self, origin: str | None) -> bool:
        return origin is None or origin.rstrip("/").lower() in self._origins


def same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` is the proxy's own (``http://`` + the request's ``Host``, which the
    caller has already accepted): a page the proxy served, posting back to it."""
    return host is not None and origin.lower() == f"http://{host.lower()}"


# ---- paths ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request answered by the proxy itself (an Anthropic-format error)."""

    status: int
    kind: str
    message: str


def _bad_path(why: str) -> Refusal:
    return Refusal(400, "invalid_request_error", f"qcc: bad request path: {why}")


def api_target(raw: str) -> str | Refusal | None:
    """The target to forward for request target ``raw`` (path and query, as the client sent it).

    Returns the normalised path (raw segments, dot segments resolved) plus the unchanged query
    when it stays inside ``/v1/``; None when it resolves elsewhere; a :class:`Refusal` (400) for
    targets that are not a plain path (absolute-form, ``*``) or hide a separator in a segment.
    """
    if raw.startswith("/v1/") and "%" not in raw and "/." not in raw and "\\" not in raw:
        return raw  # the usual request: nothing to decode or resolve
    if not raw.startswith("/"):
        return _bad_path("only origin-form targets (/v1/...) are accepted, not a full URL")
    path, mark, query = raw.partition("?")
    if "%" not in path and "/." not in path and "\\" not in path:
        return raw if path.startswith("/v1/") else None
    out: list[str] = []
    trailing = False
    for segment in path.split("/")[1:]:
        decoded = unquote(segment) if "%" in segment else segment
        if "/" in decoded or "\\" in decoded or any(c < " " or c == "\x7f" for c in decoded):
            return _bad_path("a path segment holds an encoded separator or control character")
        trailing = decoded in (".", "..")
        if decoded == "..":
            if out:
                out.pop()
        elif decoded != ".":
            out.append(segment)
    if trailing:
        out.append("")
    if len(out) < 2 or unquote(out[0]) != "v1":
        return None
    out[0] = "v1"
    return "/" + "/".join(out) + mark + query


# ---- encoded request bodies -----------------------------------------------------------------

READABLE_CODINGS = ("gzip", "x-gzip", "deflate", "identity")


def codings(header: str) -> list[str]:
    """The content codings of a ``Content-Encoding`` value, in the order they were applied."""
    return [c.strip().lower() for c in header.split(",") if c.strip()]


def decoded_view(body: bytes, content_encoding: str, limit: int) -> bytes | Refusal:
    """A decoded copy of ``body`` (at most ``limit`` bytes) for reading it, or why not."""
    applied = codings(content_encoding)
    unknown = [c for c in applied if c not in READABLE_CODINGS]
    if unknown:
        return Refusal(
            415,
            "invalid_request_error",
            f"qcc: cannot read a request body with Content-Encoding {unknown[0]}; "
            "send it uncompressed, gzip or deflate",
        )
    data = body
    for coding in reversed(applied):
        if coding == "identity":
            continue
        decoded = _inflate(data, gzip=coding != "deflate", limit=limit)
        if decoded is None:
            return Refusal(
                400,
                "invalid_request_error",
                f"qcc: the request body is not valid {coding} data (Content-Encoding: {coding})",
            )
        if len(decoded) > limit:
            return Refusal(
                413,
                "request_too_large",
                f"qcc: the request body decodes to more than {limit // (1024 * 1024)} MB",
            )
        data = decoded
    return data


def _inflate(data: bytes, *, gzip: bool, limit: int) -> bytes | None:
    """gzip (members may be concatenated) or deflate (zlib-wrapped, else raw); None if broken."""
    attempts = (31,) if gzip else (15, -15)
    for wbits in attempts:
        out: list[bytes] = []
        size = 0
        rest = data
        try:
            while rest:
                inflater = zlib.decompressobj(wbits)
                chunk = inflater.decompress(rest, limit + 1 - size)
                out.append(chunk)
                size += len(chunk)
                if size > limit:
                    return b"".join(out)  # the caller reports it as too large
                if not inflater.eof:
                    raise zlib.error("truncated")
                rest = inflater.unused_data if gzip else b""
                if rest and not gzip:
                    raise zlib.error("trailing data")
        except zlib.error:
            continue
        return b"".join(out)
    return None


def encode_as(data: bytes, content_encoding: str) -> bytes:
    """Encode ``data`` with the same codings a client applied (gzip/deflate/identity only)."""
    for coding in codings(content_encoding):
        if coding in ("gzip", "x-gzip"):
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
            data = compressor.compress(data) + compressor.flush()
        elif coding == "deflate":
            data = zlib.compress(data)
    return data


def renamed_body(
    body: bytes, view: bytes, headers: Mapping[str, str], renames: Mapping[str, str]
) -> bytes:
    """The body to send an account with ``models`` renames.

    A plain body is renamed as before. An encoded one (``view`` is its decoded copy) is sent as
    the client's bytes when no rename applies, else renamed and encoded again the same way: the
    account receives a valid body with its header, never decoded bytes labelled gzip.
    """
    renamed = rename_model(view, renames)
    if view is body:
        return renamed
    if renamed is view:
        return body
    return encode_as(renamed, headers.get("content-encoding", ""))
