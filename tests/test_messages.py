"""Pure request/response rewriting: stream detection, headers, model rename, error bodies."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from qcc.proxy.messages import (
    downstream_headers,
    error_body,
    rename_model,
    upstream_headers,
    wants_stream,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"model":"m","stream":true}', True),
        (b'{"model": "m", "stream" : true, "max_tokens": 5}', True),
        (b'{"stream":true,"messages":[{"role":"user","content":"x"}]}', True),
        (b'{"model":"m","stream":false}', False),
        (b'{"model":"m"}', False),
        (b'{"messages":[{"content":"say \\"stream\\": true"}]}', False),
        (b'{"stream":true,"tools":[{"input_schema":{"properties":{"stream":{}}}}]}', True),
        (b"", False),
    ],
)
def test_wants_stream(body: bytes, expected: bool) -> None:
    assert wants_stream(body) is expected


def _lines(lines: list[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, _, value = line.partition(": ")
        out.add(name, value)
    return out


def test_upstream_headers_replace_credentials_and_drop_hop_by_hop() -> None:
    client = CIMultiDict(
        [
            ("Host", "127.0.0.1:7860"),
            ("X-Api-Key", "client"),
            ("Authorization", "Bearer client"),
            ("Connection", "keep-alive, X-Custom-Hop"),
            ("X-Custom-Hop", "1"),
            ("Connection", "X-Second-Hop"),
            ("X-Second-Hop", "2"),
            ("Anthropic-Beta", "a"),
            ("Anthropic-Beta", "b"),
            ("Accept-Encoding", "gzip"),
            ("Content-Length", "10"),
            ("Transfer-Encoding", "chunked"),
        ]
    )
    out = _lines(upstream_headers(client, ("authorization", "Bearer acct"), identity=False))
    assert out.getall("anthropic-beta") == ["a", "b"]
    assert out["authorization"] == "Bearer acct"
    assert "x-api-key" not in out and "host" not in out and "x-custom-hop" not in out
    assert "x-second-hop" not in out  # every Connection header counts, not just the first
    assert "content-length" not in out and "transfer-encoding" not in out
    assert out["accept-encoding"] == "gzip"
    streaming = _lines(upstream_headers(client, ("x-api-key", "acct"), identity=True))
    assert streaming["accept-encoding"] == "identity"
    assert streaming["x-api-key"] == "acct" and "authorization" not in streaming


def test_downstream_headers_keep_end_to_end() -> None:
    upstream = CIMultiDict(
        [
            ("Content-Type", "text/event-stream"),
            ("Request-Id", "req_1"),
            ("Transfer-Encoding", "chunked"),
            ("Keep-Alive", "timeout=5"),
            ("Connection", "keep-alive, X-Hop-One"),
            ("X-Hop-One", "1"),
            ("Connection", "X-Hop-Two"),
            ("X-Hop-Two", "2"),
            ("anthropic-ratelimit-requests-remaining", "9"),
        ]
    )
    out = downstream_headers(upstream.items())
    assert dict(out) == {
        "Content-Type": "text/event-stream",
        "Request-Id": "req_1",
        "anthropic-ratelimit-requests-remaining": "9",
    }


def test_rename_model_only_touches_a_matching_body() -> None:
    renames = {"claude-sonnet-4-5": "vendor/sonnet"}
    raw = b'{"model":  "claude-opus-4-5", "max_tokens": 5}'
    assert rename_model(raw, renames) is raw
    assert rename_model(b"not json claude-sonnet-4-5", renames) == b"not json claude-sonnet-4-5"
    body = json.dumps({"model": "claude-sonnet-4-5", "messages": [{"content": "é"}]}).encode()
    renamed = json.loads(rename_model(body, renames))
    assert renamed == {"model": "vendor/sonnet", "messages": [{"content": "é"}]}
    assert rename_model(body, {}) is body


def test_error_body_is_anthropic_format() -> None:
    assert json.loads(error_body("api_error", "boom")) == {
        "type": "error",
        "error": {"type": "api_error", "message": "boom"},
    }
