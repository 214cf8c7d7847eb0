"""A fast fake Anthropic upstream for the benchmark: ``python bench/upstream.py --port P``.

``POST /v1/messages`` answers a small JSON message, or with ``"stream": true`` in the body an SSE
stream of :data:`EVENTS` events written in three writes. ``?slow=SECONDS`` (or the header
``x-bench-slow``) spreads the stream over that many seconds in ``?ticks=N`` writes (default 20):
the first write carries ``message_start`` at once, the last one ``message_stop``.

Every response is rendered once at start-up; a handler only reads the body and writes bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import resource
import sys
from typing import Any

from aiohttp import web

EVENTS = 100  # message_start, content_block_start, deltas, content_block_stop, message_delta, stop
DELTAS = EVENTS - 5
USAGE = {
    "input_tokens": 12,
    "output_tokens": DELTAS,
    "cache_read_input_tokens": 30,
    "cache_creation_input_tokens": 5,
}
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _message(**overrides: Any) -> dict[str, Any]:
    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-bench",
        "content": [{"type": "text", "text": "Hello from the bench upstream."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": USAGE,
    }
    return message | overrides


MESSAGE = json.dumps(_message(), separators=(",", ":")).encode()
HEAD = _event(
    "message_start",
    {
        "type": "message_start",
        "message": _message(content=[], stop_reason=None, usage=USAGE | {"output_tokens": 1}),
    },
) + _event(
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)
DELTA_EVENTS = [
    _event(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
    )
    for w in (f"word{i} " for i in range(DELTAS))
]
TAIL = (
    _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    + _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": DELTAS},
        },
    )
    + _event("message_stop", {"type": "message_stop"})
)
FAST_STREAM = (HEAD, b"".join(DELTA_EVENTS), TAIL)
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
JSON_HEADERS = {"Content-Type": "application/json"}
_slow_cache: dict[int, list[bytes]] = {}


def slow_writes(ticks: int) -> list[bytes]:
    """The stream cut into ``ticks`` writes: HEAD first, deltas spread, TAIL with the last."""
    ticks = max(2, min(ticks, DELTAS + 1))
    if ticks not in _slow_cache:
        groups = ticks - 1
        cuts = [round(i * DELTAS / groups) for i in range(groups + 1)]
        middle = [b"".join(DELTA_EVENTS[a:b]) for a, b in itertools.pairwise(cuts)]
        middle[-1] += TAIL
        _slow_cache[ticks] = [HEAD, *middle]
    return _slow_cache[ticks]


async def _stream(request: web.BaseRequest, slow: float, ticks: int) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    if slow <= 0:
        for part in FAST_STREAM:
            await response.write(part)
    else:
        writes = slow_writes(ticks)
        pause = slow / (len(writes) - 1)
        await response.write(writes[0])
        for part in writes[1:]:
            await asyncio.sleep(pause)
            await response.write(part)
    await response.write_eof()
    return response


async def handle(request: web.BaseRequest) -> web.StreamResponse:
    body = await request.read()
    path = request.path
    if path == "/v1/messages" and request.method == "POST":
        if b'"stream"' in body and _STREAM_RE.search(body):
            slow = request.query.get("slow") or request.headers.get("x-bench-slow") or "0"
            return await _stream(request, float(slow), int(request.query.get("ticks", "20")))
        return web.Response(body=MESSAGE, headers=JSON_HEADERS)
    if path == "/v1/messages/count_tokens":
        return web.Response(body=b'{"input_tokens":3}', headers=JSON_HEADERS)
    if path == "/v1/models":
        return web.Response(body=b'{"data":[{"id":"claude-bench","type":"model"}]}')
    return web.Response(status=404, body=b'{"type":"error"}', headers=JSON_HEADERS)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(host: str, port: int) -> None:
    server = web.Server(handle, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, host, port, backlog=4096, reuse_address=True)
    print(f"bench upstream listening on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        listener.close()
        await server.shutdown(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_fd_limit()
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
