"""What the proxy does to a request on its way to an account, and the errors it answers with.

Pure helpers: header filtering (precomputed sets), the per-account model rename, the cheap
"is this a streaming request?" test, and Anthropic-format error bodies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from multidict import CIMultiDict, MultiMapping

from qcc.routing.jsonkeys import rfind_quoted

# RFC 9110 §7.6.1 hop-by-hop headers, plus those recomputed for the new connection.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
CLIENT_CREDENTIALS = frozenset({"x-api-key", "authorization"})
REQUEST_DROP = HOP_BY_HOP | CLIENT_CREDENTIALS
RESPONSE_DROP = HOP_BY_HOP

_NOTHING: frozenset[str] = frozenset()
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')


def wants_stream(body: bytes) -> bool:
    """True when a Messages request body asks for SSE (``"stream": true``)."""
    # From the end: clients put "stream" after the (large) messages, so this is usually a short
    # scan; jumping from quote to quote, a long string costs one memrchr. A few earlier hits are
    # checked too, in case a tool schema also has a "stream" key.
    end = len(body)
    for _ in range(4):
        at = rfind_quoted(body, b'"stream"', end)
        if at == -1:
            return False
        if _STREAM_RE.match(body, at) is not None:
            return True
        end = at
    return False


def _connection_tokens(values: Iterable[str]) -> frozenset[str]:
    """The header names listed by every ``Connection`` header (hop-by-hop, RFC 9110 §7.6.1)."""
    return frozenset(token.strip().lower() for value in values for token in value.split(","))


def upstream_headers(
    client: MultiMapping[str],
    credential: tuple[str, str],
    *,
    identity: bool,
) -> list[str]:
    """The client's end-to-end headers as ``Name: value`` lines, its credentials replaced.

    ``identity``: ask the account for an uncompressed body (streams, which the proxy reads).
    """
    listed = client.getall("connection", None)  # usually absent: no set to build
    also_drop = _connection_tokens(listed) if listed else _NOTHING
    out: list[str] = []
    for name, value in client.items():
        lower = name.lower()
        if lower in REQUEST_DROP or lower in also_drop:
            continue
        if identity and lower == "accept-encoding":
            continue
        out.append(f"{name}: {value}")
    if identity:
        out.append("accept-encoding: identity")
    out.append(f"{credential[0]}: {credential[1]}")
    return out


def downstream_headers(upstream: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """An account's end-to-end response headers, from its (name, value) pairs."""
    out: CIMultiDict[str] = CIMultiDict()
    connection: list[str] = []
    for name, value in upstream:
        lower = name.lower()
        if lower in RESPONSE_DROP:
            if lower == "connection":
                connection.append(value)
            continue
        out.add(name, value)
    for name in _connection_tokens(connection):
        out.popall(name, None)
    return out


def rename_model(body: bytes, renames: Mapping[str, str]) -> bytes:
    """Apply an account's ``models`` rename to a JSON body; other bodies pass unchanged.

    Only a body that mentions one of the source names is parsed at all.
    """
    if not renames or b'"model"' not in body:
        return body
    if not any(source.encode() in body for source in renames):
        return body
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    model = data.get("model")
    if not isinstance(model, str) or model not in renames:
        return body
    data["model"] = renames[model]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def error_body(kind: str, message: str) -> bytes:
    """An Anthropic-format error document."""
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


def describe_attempts(attempts: Iterable[tuple[str, str]]) -> str:
    return "; ".join(f"{name}: {reason}" for name, reason in attempts)
