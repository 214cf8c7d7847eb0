"""A fake Anthropic Messages API that misbehaves on request. Used by ``qcc demo`` and the tests.

It speaks enough of the API for Claude Code and the official SDK: ``POST /v1/messages`` (JSON or
SSE), ``POST /v1/messages/count_tokens`` and ``GET /v1/models``. A :class:`Behavior` decides how
each request is answered; tests change it between requests. Every request is recorded.
Every document it sends is built by :mod:`qcc.wire`, as the benchmark's upstream's are.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from qcc import wire


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
    # with mode status: the error body as sent (bytes as is, a str as UTF-8) instead of the usual
    # Anthropic error; gzip-encoded with ``compress``, sent in two writes with ``chunked``
    body: bytes | str | None = None
    content_type: str = "application/json"
    text: str = "Hello from a fake account."
    usage: dict[str, int] = field(default_factory=wire.token_usage)


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
                if b.body is not None:
                    return await self.custom_error(request, status)
                key = request.headers.get("x-api-key", "") if b.echo_key else None
                return self.error(status, b.headers, key)
            if request.path == "/v1/models":
                return web.json_response(wire.models("claude-haiku-4-5"))
            if request.path == "/v1/messages/count_tokens":
                return web.json_response(wire.token_count(3))
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
        kind = wire.error_type(status)
        message = f"{self.name}: {kind}" if key is None else f"invalid x-api-key: {key}"
        return web.json_response(wire.error(kind, message), status=status, headers=headers)

    async def custom_error(self, request: web.Request, status: int) -> web.StreamResponse:
        b = self.behavior
        assert b.body is not None
        body = b.body.encode() if isinstance(b.body, str) else b.body
        headers = {"content-type": b.content_type} | b.headers
        if b.compress:
            body = gzip.compress(body)
            headers["content-encoding"] = "gzip"
        if not b.chunked:
            return web.Response(status=status, body=body, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        half = len(body) // 2
        await response.write(body[:half])
        await asyncio.sleep(0.01)  # the halves arrive apart
        await response.write(body[half:])
        await response.write_eof()
        return response

    async def cut_body(self, request: web.Request, payload: dict[str, Any]) -> web.StreamResponse:
        body = wire.encode(self.message(payload))
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
        b = self.behavior
        model = payload.get("model", "claude-test")
        return wire.message(b.text, id=f"msg_{self.name}", model=model, usage=b.usage)

    def events(self, payload: dict[str, Any]) -> list[wire.Event]:
        b = self.behavior
        return wire.stream_events(self.message(payload), wire.split_text(b.text, b.deltas))

    async def stream(self, request: web.Request, payload: dict[str, Any]) -> web.StreamResponse:
        b = self.behavior
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"} | b.headers
        )
        await response.prepare(request)
        overloaded = wire.sse("error", wire.error("overloaded_error", "Overloaded"))
        if b.mode == "error_event":
            await response.write(overloaded)
            return response
        deltas = 0
        for name, data in self.events(payload):
            if name == "content_block_delta":
                if b.mode == "error_after_start":
                    await response.write(overloaded)
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
            await response.write(wire.sse(name, data))
            if b.interval:
                await asyncio.sleep(b.interval)
        await response.write_eof()
        self.completed += 1
        return response
