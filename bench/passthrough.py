"""The minimal aiohttp pass-through qcc is measured against.

``python bench/passthrough.py --port P --upstream URL``: one ``ClientSession``; method, path,
query, body and end-to-end headers go to the fixed upstream, and the response streams back chunk
by chunk. No credential rewrite, routing, health, stats or logging. Server settings and event
loop match qcc's (uvloop when installed, no access log, handler cancellation, backlog 1024).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from upstream import loop_factory, raise_fd_limit

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "host"}
    | {"content-length", "proxy-connection", "proxy-authorization", "proxy-authenticate"}
)
SESSION = web.AppKey("session", aiohttp.ClientSession)
TARGET = web.AppKey("target", str)


def end_to_end(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in HOP_BY_HOP:
            out.add(name, value)
    return out


async def forward(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    async with request.app[SESSION].request(
        request.method,
        request.app[TARGET] + request.raw_path,
        headers=end_to_end(request.headers),
        data=body,
        allow_redirects=False,
    ) as upstream:
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=end_to_end(upstream.headers)
        )
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def create_app(target: str) -> web.Application:
    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=300),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        yield
        await app[SESSION].close()

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[TARGET] = target.rstrip("/")
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(host: str, port: int, target: str) -> None:
    runner = web.AppRunner(create_app(target), access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024, reuse_address=True).start()
        print(f"bench pass-through listening on http://{host}:{port}", flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000")
    args = parser.parse_args()
    raise_fd_limit()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args.host, args.port, args.upstream))


if __name__ == "__main__":
    main()
