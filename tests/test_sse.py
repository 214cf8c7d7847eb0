"""The proxy's SSE helpers: event parsing before commit, watching after, usage extraction.

The streams are built by :mod:`qcc.wire`, in both JSON spacings an account may send.
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from qcc import wire
from qcc.proxy import sse

MESSAGE = wire.message(
    "hi",
    usage=wire.token_usage(
        input_tokens=10, output_tokens=42, cache_read_input_tokens=30, cache_creation_input_tokens=2
    ),
)
EVENTS = wire.stream_events(MESSAGE)
# api.anthropic.com sends compact JSON; the fake account json.dumps' default spacing.
STREAMS = {
    "compact": wire.sse_stream(EVENTS, compact=True),
    "spaced": wire.sse_stream(EVENTS),
}
STREAM = STREAMS["compact"]
both_forms = pytest.mark.parametrize("form", list(STREAMS))


@both_forms
def test_next_event_walks_events(form: str) -> None:
    stream = STREAMS[form]
    seen = []
    pos = 0
    while (event := sse.next_event(stream, pos)) is not None:
        name, data, pos = event
        seen.append((name, json.loads(data)))
    assert seen == EVENTS
    assert pos == len(stream)


def test_next_event_crlf_incomplete_and_default_name() -> None:
    assert sse.next_event(b"event: ping\ndata: {}", 0) is None  # not complete yet
    assert sse.next_event(b"event: ping\r\ndata: {}\r\n\r\n", 0) == ("ping", b"{}", 25)
    assert sse.next_event(b"data: x\n\n", 0) == ("message", b"x", 9)
    assert sse.next_event(b": comment\n\n", 0) == (None, b"", 11)


def test_error_type_and_error_event() -> None:
    data = wire.encode(wire.error("overloaded_error", "Overloaded"))
    assert sse.error_type(data) == "overloaded_error"
    assert sse.error_type(b"not json") == ""
    event = sse.error_event("api_error", "qcc: broke")
    name, payload, _ = sse.next_event(event, 0)  # type: ignore[misc]
    assert name == "error"
    assert json.loads(payload) == {
        "type": "error",
        "error": {"type": "api_error", "message": "qcc: broke"},
    }


def test_usage_numbers_reads_nested_usage_blocks() -> None:
    blob = (
        b'{"usage":{"input_tokens":5,"cache_creation":{"ephemeral_5m_input_tokens":3},'
        b'"cache_read_input_tokens":9,"output_tokens":12,"server_tool_use":{"web_search_requests":1}}}'
    )
    assert sse.usage_numbers(blob) == {
        "input_tokens": 5,
        "cache_read_input_tokens": 9,
        "output_tokens": 12,
    }
    assert sse.usage_numbers(b'{"id": "x"}') == {}


@both_forms
@pytest.mark.parametrize("size", [1, 3, 7, 16, 50, 1 << 20])
def test_watcher_sees_usage_and_stop_whatever_the_chunking(form: str, size: int) -> None:
    stream = STREAMS[form]
    watcher = sse.StreamWatcher()
    for i in range(0, len(stream), size):
        watcher.feed(stream[i : i + size])
    assert watcher.stopped
    assert watcher.usage == {"output_tokens": 42}


@both_forms
def test_watcher_sees_markers_split_anywhere(form: str) -> None:
    stream = STREAMS[form]
    for cut in range(1, len(stream)):
        for second in (cut + 1, cut + 5, cut + 17):
            watcher = sse.StreamWatcher()
            for piece in (stream[:cut], stream[cut:second], stream[second:]):
                watcher.feed(piece)
            assert watcher.stopped, (cut, second)
            assert watcher.usage == {"output_tokens": 42}, (cut, second)


def test_watcher_without_stop_is_not_stopped() -> None:
    watcher = sse.StreamWatcher()
    watcher.feed(STREAM[: STREAM.index(b"event: message_stop")])
    assert not watcher.stopped


@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate"])
def test_body_tail_reads_usage_through_encodings(encoding: str) -> None:
    usage = wire.token_usage(input_tokens=7, output_tokens=3)
    raw = wire.encode(wire.message("x" * 20000, usage=usage))
    if encoding == "gzip":
        raw = gzip.compress(raw)
    elif encoding == "deflate":
        raw = zlib.compress(raw)
    tail = sse.BodyTail(encoding)
    for i in range(0, len(raw), 1000):
        tail.feed(raw[i : i + 1000])
    assert tail.usage() == usage
    assert len(tail.tail) <= sse.BodyTail.KEEP


def test_body_tail_ignores_unknown_encodings_and_garbage() -> None:
    assert sse.BodyTail("br").usage() == {}
    broken = sse.BodyTail("gzip")
    broken.feed(b"not gzip at all")
    assert broken.usage() == {}
