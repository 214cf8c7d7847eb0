"""A fake Anthropic Messages API that misbehaves on request. Used by ``qcc demo`` and the tests.

It speaks enough of the API for Claude Code and the official SDK: ``POST /v1/messages`` (JSON or
SSE), ``POST /v1/messages/count_tokens`` and ``GET /v1/models``. A :class:`Behavior` decides how
each request is answered; tests change it between requests. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

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


@dataclass
class Behavior:
    """How to answer. ``mode``:

    ok | status | hang | reset | error_event (an ``event: error`` first) |
    error_after_start (``message_start``, ``ping``, then an ``event: error``) |
    reset_after_start (``message_start``, ``ping``, then the connection drops) |
    die_after (``die_after`` deltas, then the connection drops) |
    stall_after (``die_after`` deltas, then silence) |
    cut_body (a plain answer whose body breaks off half-way; ``chunked`` without a length).
    """

    mode: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    deltas: int = 3  # content deltas per message
    interval: float = 0.0  # seconds between stream events
    delay: float = 0.0  # seconds before the response head
    die_after: int = 2  # with mode die_after: deltas sent before the connection drops
    fail_rate: float = 0.0  # chance that a request gets 529 instead (for the demo)
    compress: bool = False  # gzip JSON bodies when the client accepts it
    chunked: bool = False  # with mode cut_body: no Content-Length, chunked framing
    echo_key: bool = False  # error bodies quote the key received ("invalid x-api-key: sk-…")
    text: str = "Hello from a fake account."
    usage: dict[str, int] = field(
        default_factory=lambda: {
            "input_tokens": 12,
            "output_tokens": 7,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 5,
        }
    )


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


class FakeUpstream:
    def __init__(self, name: str = "fake", behavior: Behavior | None = None) -> None:
        self.name = name
        self.behavior = behavior or Behavior()
        self.requests: list[Seen] = []
        self.disconnects = 0
        self.completed = 0
        self.rng = random.Random(name)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        b = self.behavior
        try:
            if b.delay:
                await asyncio.sleep(b.delay)
            if b.mode == "hang":
                await asyncio.sleep(3600)
            if b.mode == "reset":
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=500)
            status = b.status if b.mode == "status" else 200
            if b.fail_rate and self.rng.random() < b.fail_rate:
                status = 529
            if status != 200:
                key = request.headers.get("x-api-key", "") if b.echo_key else None
                return self.error(status, b.headers, key)
            if request.path == "/v1/models":
                return web.json_response({"data": [{"id": "claude-haiku-4-5", "type": "model"}]})
            if request.path == "/v1/messages/count_tokens":
                return web.json_response({"input_tokens": 3})
            if request.path != "/v1/messages":
                return self.error(404, {})
            payload = json.loads(body or b"{}")
            if payload.get("stream"):
                return await self.stream(request, payload)
            if b.mode == "cut_body":
                return await self.cut_body(request, payload)
            self.completed += 1
            response = web.json_response(self.message(payload), headers=b.headers)
            if b.compress:
                response.enable_compression()
            return response
        except asyncio.CancelledError:
            self.disconnects += 1
            raise

    def error(self, status: int, headers: dict[str, str], key: str | None = None) -> web.Response:
        kind = ERROR_TYPES.get(status, "api_error")
        message = f"{self.name}: {kind}" if key is None else f"invalid x-api-key: {key}"
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return web.json_response(body, status=status, headers=headers)

    async def cut_body(self, request: web.Request, payload: dict[str, Any]) -> web.StreamResponse:
        body = json.dumps(self.message(payload)).encode()
        response = web.StreamResponse(headers={"content-type": "application/json"})
        if not self.behavior.chunked:
            response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        await asyncio.sleep(0.01)  # let the half reach the proxy before the connection drops
        assert request.transport is not None
        request.transport.abort()
        return response

    def message(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"msg_{self.name}",
            "type": "message",
            "role": "assistant",
            "model": payload.get("model", "claude-test"),
            "content": [{"type": "text", "text": self.behavior.text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": dict(self.behavior.usage),
        }

    def events(self, payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        b = self.behavior
        start_usage = {k: v for k, v in b.usage.items() if k != "output_tokens"}
        message = self.message(payload) | {
            "content": [],
            "stop_reason": None,
            "usage": start_usage | {"output_tokens": 1},
        }
        size = -(-len(b.text) // b.deltas) if b.deltas else 0  # ceil: contiguous pieces
        chunks = [b.text[i : i + size] for i in range(0, len(b.text), size)] if size else []
        chunks += [""] * (b.deltas - len(chunks))
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": message}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        for chunk in chunks:
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": chunk},
                    },
                )
            )
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": b.usage["output_tokens"]},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return events

    async def stream(self, request: web.Request, payload: dict[str, Any]) -> web.StreamResponse:
        b = self.behavior
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"} | b.headers
        )
        await response.prepare(request)
        if b.mode == "error_event":
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            await response.write(f"event: error\ndata: {json.dumps(error)}\n\n".encode())
            return response
        deltas = 0
        for name, data in self.events(payload):
            if name == "content_block_delta":
                if b.mode == "error_after_start":
                    error = {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    }
                    await response.write(f"event: error\ndata: {json.dumps(error)}\n\n".encode())
                    return response
                if b.mode == "reset_after_start" or (
                    b.mode == "die_after" and deltas >= b.die_after
                ):
                    await asyncio.sleep(0.01)  # what was written reaches the proxy first
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if b.mode == "stall_after" and deltas >= b.die_after:
                    await asyncio.sleep(3600)
                deltas += 1
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            if b.interval:
                await asyncio.sleep(b.interval)
        await response.write_eof()
        self.completed += 1
        return response
