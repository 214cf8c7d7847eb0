"""Anthropic Messages API documents, built one way for the fake upstream, the tests and the bench.

Pure: each builder returns the JSON document as a dict, and :func:`encode` / :func:`sse` /
:func:`sse_stream` turn documents into the bytes an account sends. No I/O, no aiohttp.

One answer is one :func:`message`; its stream is derived from it (:func:`stream_events`), so the
JSON answer and the SSE answer always agree on id, model, text and usage::

    message_start        the message with no content, no stop_reason, output_tokens 1
    content_block_start  index 0, an empty text block
    ping                 (unless with_ping=False)
    content_block_delta  one per chunk of the text
    content_block_stop
    message_delta        stop_reason and the final output_tokens
    message_stop

JSON is written as ``json.dumps`` does by default (``{"a": 1}``) unless ``compact`` (``{"a":1}``,
as api.anthropic.com sends it): the proxy must read both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

# The error ``type`` Anthropic sends with each status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

Event = tuple[str, dict[str, Any]]


# --- documents -------------------------------------------------------------------------------


def token_usage(
    input_tokens: int = 12,
    output_tokens: int = 7,
    cache_read_input_tokens: int = 30,
    cache_creation_input_tokens: int = 5,
) -> dict[str, int]:
    """A ``usage`` object with the four counts qcc reads (defaults: the fake account's)."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
        "cache_creation_input_tokens": cache_creation_input_tokens,
    }


def message(
    text: str = "Hello from a fake account.",
    *,
    id: str = "msg_fake",
    model: str = "claude-test",
    usage: dict[str, int] | None = None,
    stop_reason: str = "end_turn",
) -> dict[str, Any]:
    """A complete (non-streamed) assistant message with one text block."""
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": dict(usage) if usage is not None else token_usage(),
    }


def error(kind: str, message: str) -> dict[str, Any]:
    """An error document (the body of an error status, or the data of ``event: error``)."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_type(status: int) -> str:
    """The error ``type`` for an HTTP status (``api_error`` for the ones not listed)."""
    return ERROR_TYPES.get(status, "api_error")


def models(*ids: str) -> dict[str, Any]:
    """The ``GET /v1/models`` answer."""
    return {"data": [{"id": model_id, "type": "model"} for model_id in ids]}


def token_count(input_tokens: int) -> dict[str, int]:
    """The ``POST /v1/messages/count_tokens`` answer."""
    return {"input_tokens": input_tokens}


# --- stream events ---------------------------------------------------------------------------


def message_start(message: dict[str, Any]) -> dict[str, Any]:
    """``message_start`` for ``message``: no content yet, its usage with output_tokens 1."""
    start = message | {"content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = message["usage"] | {"output_tokens": 1}
    return {"type": "message_start", "message": start}


def content_block_start(index: int = 0) -> dict[str, Any]:
    return {
        "type": "content_block_start",
        "index": index,
        "content_block": {"type": "text", "text": ""},
    }


def ping() -> dict[str, Any]:
    return {"type": "ping"}


def content_block_delta(text: str, index: int = 0) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": text},
    }


def content_block_stop(index: int = 0) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(output_tokens: int, stop_reason: str = "end_turn") -> dict[str, Any]:
    """The last usage of a stream (``output_tokens`` is the final count, not an increment)."""
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }


def message_stop() -> dict[str, Any]:
    return {"type": "message_stop"}


def split_text(text: str, pieces: int) -> list[str]:
    """``text`` in ``pieces`` contiguous chunks (the last ones empty if it is too short)."""
    size = -(-len(text) // pieces) if pieces > 0 else 0  # ceil
    chunks = [text[i : i + size] for i in range(0, len(text), size)] if size else []
    return chunks + [""] * (pieces - len(chunks))


def stream_events(
    message: dict[str, Any], chunks: Sequence[str] | None = None, *, with_ping: bool = True
) -> list[Event]:
    """The SSE events that stream ``message``, its text sent as ``chunks`` (default: one)."""
    if chunks is None:
        chunks = [block["text"] for block in message["content"] if block["type"] == "text"]
    events: list[Event] = [
        ("message_start", message_start(message)),
        ("content_block_start", content_block_start()),
    ]
    if with_ping:
        events.append(("ping", ping()))
    events += [("content_block_delta", content_block_delta(chunk)) for chunk in chunks]
    events += [
        ("content_block_stop", content_block_stop()),
        ("message_delta", message_delta(message["usage"]["output_tokens"], message["stop_reason"])),
        ("message_stop", message_stop()),
    ]
    return events


# --- bytes -----------------------------------------------------------------------------------


def encode(document: Any, *, compact: bool = False) -> bytes:
    """``document`` as JSON bytes."""
    return json.dumps(document, separators=(",", ":") if compact else None).encode()


def sse(name: str, data: dict[str, Any], *, compact: bool = False) -> bytes:
    """One SSE event: ``event: NAME``, ``data: JSON``, a blank line."""
    return b"event: " + name.encode() + b"\ndata: " + encode(data, compact=compact) + b"\n\n"


def sse_stream(events: Iterable[Event], *, compact: bool = False) -> bytes:
    return b"".join(sse(name, data, compact=compact) for name, data in events)
