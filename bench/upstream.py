"""A fast fake Anthropic upstream for the benchmark: ``python bench/upstream.py --port P``.

``POST /v1/messages`` answers a small JSON message, or with ``"stream": true`` in the body an SSE
stream of :data:`EVENTS` events written in three writes. ``?slow=SECONDS`` (or the header
``x-bench-slow``) spreads the stream over that many seconds in ``?ticks=N`` writes (default 20):
the first write carries ``message_start`` at once, the last one ``message_stop``.

Misbehaving accounts for the failover scenario (S5), chosen by a base URL path prefix:
``/529/...`` answers every request with 529 ``overloaded_error``; ``/sse-error/...`` answers a
streaming Messages request with a 200 stream whose first event is ``event: error``
(``overloaded_error``) and everything else as without the prefix (so health probes pass).

Every response is rendered once at start-up, from :mod:`qcc.wire` (the builders the fake account
of the tests uses, so the benchmark streams what the tests check); a handler only reads the body
and writes bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import resource
import sys
from typing import Any

from aiohttp import web

from qcc import wire

EVENTS = 100  # message_start, content_block_start, deltas, content_block_stop, message_delta, stop
DELTAS = EVENTS - 5
MESSAGE_DOC = wire.message(
    "Hello from the bench upstream.",
    id="msg_bench",
    model="claude-bench",
    usage=wire.token_usage(output_tokens=DELTAS),
)
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')


def _events(events: list[wire.Event]) -> bytes:
    return wire.sse_stream(events, compact=True)  # compact JSON, as api.anthropic.com sends it


MESSAGE = wire.encode(MESSAGE_DOC, compact=True)
STREAM_EVENTS = wire.stream_events(
    MESSAGE_DOC, [f"word{i} " for i in range(DELTAS)], with_ping=False
)
assert len(STREAM_EVENTS) == EVENTS
HEAD = _events(STREAM_EVENTS[:2])
DELTA_EVENTS = [_events([event]) for event in STREAM_EVENTS[2:-3]]
TAIL = _events(STREAM_EVENTS[-3:])
FAST_STREAM = (HEAD, b"".join(DELTA_EVENTS), TAIL)
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
JSON_HEADERS = {"Content-Type": "application/json"}
COUNT = wire.encode(wire.token_count(3), compact=True)
MODELS = wire.encode(wire.models("claude-bench"), compact=True)
OVERLOADED = wire.error("overloaded_error", "bench: overloaded")
OVERLOADED_BODY = wire.encode(OVERLOADED, compact=True)
ERROR_FIRST = _events([("error", OVERLOADED)])
NOT_FOUND = wire.encode(wire.error("not_found_error", "bench: not found"), compact=True)
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
    error_first = False
    if not path.startswith("/v1/"):
        if path.startswith("/529/"):
            return web.Response(status=529, body=OVERLOADED_BODY, headers=JSON_HEADERS)
        if path.startswith("/sse-error/"):
            error_first, path = True, path[len("/sse-error") :]
    if path == "/v1/messages" and request.method == "POST":
        if b'"stream"' in body and _STREAM_RE.search(body):
            if error_first:
                return web.Response(body=ERROR_FIRST, headers=SSE_HEADERS)
            slow = request.query.get("slow") or request.headers.get("x-bench-slow") or "0"
            return await _stream(request, float(slow), int(request.query.get("ticks", "20")))
        return web.Response(body=MESSAGE, headers=JSON_HEADERS)
    if path == "/v1/messages/count_tokens":
        return web.Response(body=COUNT, headers=JSON_HEADERS)
    if path == "/v1/models":
        return web.Response(body=MODELS, headers=JSON_HEADERS)
    return web.Response(status=404, body=NOT_FOUND, headers=JSON_HEADERS)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loop_factory() -> Any:
    """uvloop, unless ``QCC_LOOP=asyncio`` (how run.py puts the pass-through on asyncio)."""
    if os.environ.get("QCC_LOOP", "").strip().lower() == "asyncio":
        return None
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
