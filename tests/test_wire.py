"""qcc.wire: one set of Anthropic documents for the fake account, the tests and the benchmark."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from qcc import wire
from qcc.fake_upstream import Behavior, FakeUpstream
from qcc.proxy import sse

BENCH_UPSTREAM = Path(__file__).resolve().parent.parent / "bench" / "upstream.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """``bench/upstream.py``, a script rather than a package module."""
    spec = importlib.util.spec_from_file_location("bench_upstream", BENCH_UPSTREAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing look the module up by name
    spec.loader.exec_module(module)
    return module


def parse(stream: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """The events of ``stream`` as the proxy's parser reads them."""
    events = []
    pos = 0
    while (event := sse.next_event(stream, pos)) is not None:
        name, data, pos = event
        events.append((name, json.loads(data)))
    assert pos == len(stream)
    return events


def watch(stream: bytes, size: int = 4096) -> sse.StreamWatcher:
    watcher = sse.StreamWatcher()
    for i in range(0, len(stream), size):
        watcher.feed(stream[i : i + size])
    return watcher


def shape(events: list[Any]) -> list[str]:
    return [name for name, _ in events if name != "ping"]


def test_stream_and_message_agree_on_id_model_text_and_usage() -> None:
    message = wire.message("Hello there", id="msg_x", model="m", usage=wire.token_usage(3, 9, 1, 2))
    events = wire.stream_events(message, wire.split_text("Hello there", 4))
    start = events[0][1]["message"]
    assert (start["id"], start["model"], start["content"]) == ("msg_x", "m", [])
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == message["content"][0]["text"]
    # What the proxy counts from the stream is what the JSON answer says.
    for compact in (False, True):
        stream = wire.sse_stream(events, compact=compact)
        assert sse.usage_numbers(wire.sse("message_start", events[0][1])) == message["usage"] | {
            "output_tokens": 1
        }
        watcher = watch(stream, 7)
        assert watcher.stopped
        assert watcher.usage == {"output_tokens": message["usage"]["output_tokens"]}
        assert sse.usage_numbers(wire.encode(message, compact=compact)) == message["usage"]


@pytest.mark.parametrize(
    ("text", "pieces", "chunks"),
    [
        ("abcdefg", 3, ["abc", "def", "g"]),
        ("ab", 4, ["a", "b", "", ""]),
        ("", 2, ["", ""]),
        ("abc", 0, []),
    ],
)
def test_split_text(text: str, pieces: int, chunks: list[str]) -> None:
    assert wire.split_text(text, pieces) == chunks


def test_error_documents() -> None:
    assert wire.error("overloaded_error", "Overloaded") == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert wire.error_type(529) == "overloaded_error"
    assert wire.error_type(503) == "api_error"
    event = wire.sse("error", wire.error("api_error", "x"))
    assert sse.error_type(sse.next_event(event, 0)[1]) == "api_error"  # type: ignore[index]


def test_fake_account_streams_wire_events() -> None:
    fake = FakeUpstream("a", Behavior(deltas=5, text="Hello from a test."))
    events = fake.events({"model": "claude-x"})
    assert parse(wire.sse_stream(events)) == events
    assert shape(events) == shape(wire.stream_events(wire.message(), ["", "", "", "", ""]))
    assert events[0][1]["message"]["id"] == "msg_a"
    assert events[0][1]["message"]["model"] == "claude-x"


def test_bench_upstream_streams_what_the_tests_check(bench: ModuleType) -> None:
    stream = b"".join(bench.FAST_STREAM)
    events = parse(stream)
    assert len(events) == bench.EVENTS
    fake = FakeUpstream("a", Behavior(deltas=bench.DELTAS)).events({})
    assert shape(events) == shape(fake)  # the fake's stream, without its ping
    for writes in (bench.slow_writes(2), bench.slow_writes(20)):
        assert b"".join(writes) == stream
    watcher = watch(stream, 512)
    assert watcher.stopped
    assert watcher.usage == {"output_tokens": bench.DELTAS}
    message = json.loads(bench.MESSAGE)
    assert message == events[0][1]["message"] | {
        "content": message["content"],
        "stop_reason": "end_turn",
        "usage": message["usage"],
    }
    assert set(message["usage"]) == set(wire.token_usage())
    assert json.loads(bench.NOT_FOUND)["type"] == "error"
