from __future__ import annotations

import json
import time

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from qcc.routing.sticky import StickyTable, session_key

SESSION = "0f3c9a4e-7b1d-4c2a-9e8f-123456789abc"
DEVICE = "ab12" * 16


def body(
    user_id: str | None, *, messages: list[object] | None = None, tools: bool = False
) -> bytes:
    payload: dict[str, object] = {
        "model": "claude-sonnet-4-5",
        "messages": messages or [{"role": "user", "content": "hi"}],
    }
    if tools:
        payload["tools"] = [
            {
                "name": "t",
                "input_schema": {"properties": {"metadata": {"type": "object"}}},
            }
        ]
    if user_id is not None:
        payload["metadata"] = {"user_id": user_id}
    payload["max_tokens"] = 100
    payload["stream"] = True
    return json.dumps(payload, separators=(",", ":")).encode()


NEW_FORM = json.dumps(
    {"device_id": DEVICE, "account_uuid": "", "session_id": SESSION}, separators=(",", ":")
)
OLD_FORM = f"user_{DEVICE}_account__session_{SESSION}"
OLD_FORM_WITH_ACCOUNT = (
    f"user_{DEVICE}_account_11111111-2222-3333-4444-555555555555_session_{SESSION}"
)


@pytest.mark.parametrize(
    ("headers", "raw", "expected"),
    [
        pytest.param({}, body(NEW_FORM), SESSION, id="json-encoded user_id"),
        pytest.param({}, body(OLD_FORM), SESSION, id="legacy user_id, empty account"),
        pytest.param({}, body(OLD_FORM_WITH_ACCOUNT), SESSION, id="legacy user_id with account"),
        pytest.param(
            {}, json.dumps({"metadata": {"user_id": NEW_FORM}}).encode(), SESSION, id="spaces"
        ),
        pytest.param({"x-claude-code-session-id": "hdr"}, body(NEW_FORM), "hdr", id="header wins"),
        pytest.param({"X-Claude-Code-Session-Id": "hdr"}, b"", "hdr", id="header any case"),
        pytest.param(
            {"x-claude-code-session-id": "  "}, body(OLD_FORM), SESSION, id="blank header"
        ),
        pytest.param({}, body(None), None, id="no metadata"),
        pytest.param({}, body("someone"), "someone", id="plain user_id is the key"),
        pytest.param({}, body("user-42@example.com"), "user-42@example.com", id="sdk end-user id"),
        pytest.param(
            {"x-claude-code-session-id": "hdr"}, body("someone"), "hdr", id="header over user_id"
        ),
        pytest.param(
            {},
            body(f"user_{DEVICE}_account__session_"),
            f"user_{DEVICE}_account__session_",
            id="empty session: the whole user_id",
        ),
        pytest.param({}, body(""), None, id="empty user_id"),
        pytest.param({}, b"", None, id="empty body"),
        pytest.param({}, b"not json at all", None, id="garbage body"),
        pytest.param({}, b'{"metadata":', None, id="truncated body"),
        pytest.param({}, body(NEW_FORM, tools=True), SESSION, id="metadata in a tool schema"),
        pytest.param(
            {},
            body(
                NEW_FORM,
                messages=[
                    {
                        "role": "user",
                        "content": 'see {"metadata": {"user_id": "user_x_account__session_z"}}',
                    }
                ],
            ),
            SESSION,
            id="metadata quoted in a message",
        ),
    ],
)
def test_session_key(headers: dict[str, str], raw: bytes, expected: str | None) -> None:
    assert session_key(headers, raw) == expected


def test_session_key_from_cimultidict() -> None:
    headers = CIMultiDictProxy(CIMultiDict({"X-Claude-Code-Session-ID": "abc"}))
    assert session_key(headers, b"") == "abc"


def test_metadata_before_a_tool_property_named_metadata() -> None:
    raw = (
        b'{"metadata":{"user_id":"user_x_account__session_' + SESSION.encode() + b'"},'
        b'"tools":[{"input_schema":{"properties":{"metadata":{"type":"object"}}}}]}'
    )
    assert session_key({}, raw) == SESSION


def test_big_body_is_fast() -> None:
    text = 'lorem ipsum "metadata" dolor ' * 12_000  # ~360 KB
    raw = body(NEW_FORM, messages=[{"role": "user", "content": text}])
    assert len(raw) > 300_000
    started = time.perf_counter()
    for _ in range(100):
        assert session_key({}, raw) == SESSION
    assert time.perf_counter() - started < 5.0  # ~10 ms in practice


def test_sticky_get_set_and_ttl() -> None:
    table = StickyTable(ttl=10.0)
    assert table.get("s", 0.0) is None
    table.set("s", "a", now=0.0)
    assert table.get("s", 9.9) == "a"
    assert table.get("s", 10.0) is None
    assert len(table) == 0  # dropped on get


def test_sticky_set_refreshes_ttl_and_rebinds() -> None:
    table = StickyTable(ttl=10.0)
    table.set("s", "a", now=0.0)
    table.set("s", "b", now=8.0)
    assert table.get("s", 17.0) == "b"


def test_sticky_expired_entries_dropped_opportunistically() -> None:
    table = StickyTable(ttl=10.0)
    for i in range(5):
        table.set(f"old{i}", "a", now=float(i))
    table.set("new", "b", now=14.5)
    assert len(table) == 1  # old0..old4 all expired by 14.5 (the last at 14.0)
    assert table.get("new", 15.0) == "b"


def test_sticky_lru_bound() -> None:
    table = StickyTable(ttl=100.0, max_entries=3)
    for key in ("a", "b", "c"):
        table.set(key, "x", now=0.0)
    table.set("a", "y", now=1.0)  # a is now the most recent
    table.set("d", "x", now=2.0)
    assert len(table) == 3
    assert table.get("b", 2.0) is None
    assert table.get("a", 2.0) == "y"
    assert table.get("c", 2.0) == "x"
    assert table.get("d", 2.0) == "x"


def test_sticky_forget_account() -> None:
    table = StickyTable()
    table.set("s1", "a", 0.0)
    table.set("s2", "b", 0.0)
    table.set("s3", "a", 0.0)
    table.forget_account("a")
    assert len(table) == 1
    assert table.get("s2", 1.0) == "b"
    assert table.get("s1", 1.0) is None


def test_sticky_rejects_empty_capacity() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        StickyTable(max_entries=0)


class _NoScan(CIMultiDict[str]):
    def items(self):  # type: ignore[no-untyped-def, override]
        raise AssertionError("a case-insensitive mapping was scanned name by name")


def test_request_headers_without_the_session_header_are_not_scanned() -> None:
    headers = _NoScan({"content-type": "application/json", "x-api-key": "k"})
    assert session_key(headers, b'{"model":"m"}') is None
    assert session_key(CIMultiDictProxy(headers), b"{}") is None
    assert session_key({"X-Claude-Code-Session-Id": " s1 "}, b"") == "s1"  # a plain dict still
