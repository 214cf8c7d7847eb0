"""The Python load client, for what wrk cannot do; prints one JSON document on stdout.

``python bench/client.py streams URL --count 1000 --seconds 5``: opens COUNT slow streams at once
(one round) and reports time to first body byte (p50, p99), completions and failures.
``python bench/client.py seq URL --count 10000``: COUNT small requests one after another.
``python bench/client.py latency URL --count 300 [--stream]``: COUNT requests one after another,
each timed: the first one alone (``first_ms``), then p50/p99 of the others; a stream counts as
answered when its ``message_stop`` arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp
from upstream import loop_factory, raise_fd_limit

HEADERS = {
    "content-type": "application/json",
    "x-api-key": "bench-client-key",
    "anthropic-version": "2023-06-01",
}
SMALL = (
    b'{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}'
)
STREAM = SMALL[:-1] + b',"stream":true}'


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def one_stream(session: aiohttp.ClientSession, url: str) -> tuple[float | None, bool, str]:
    """(seconds to first body byte, completed, error)."""
    started = time.perf_counter()
    ttfb: float | None = None
    tail = b""
    try:
        async with session.post(url, data=STREAM, headers=HEADERS) as response:
            if response.status != 200:
                return None, False, f"HTTP {response.status}"
            async for chunk in response.content.iter_any():
                if ttfb is None:
                    ttfb = time.perf_counter() - started
                tail = (tail + chunk)[-256:]
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return ttfb, False, type(exc).__name__
    done = b"event: message_stop" in tail and b"event: error" not in tail
    return ttfb, done, "" if done else "no message_stop"


async def streams(base: str, count: int, seconds: float) -> dict[str, Any]:
    url = f"{base.rstrip('/')}/v1/messages?slow={seconds:g}"
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=seconds + 60)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with asyncio.timeout(seconds + 90):
            results = await asyncio.gather(*(one_stream(session, url) for _ in range(count)))
    ttfbs = [t for t, _, _ in results if t is not None]
    errors: dict[str, int] = {}
    for _, _, error in results:
        if error:
            errors[error] = errors.get(error, 0) + 1
    return {
        "count": count,
        "completed": sum(1 for _, done, _ in results if done),
        "ttfb_p50_ms": percentile(ttfbs, 50) * 1000,
        "ttfb_p99_ms": percentile(ttfbs, 99) * 1000,
        "ttfb_max_ms": max(ttfbs, default=float("nan")) * 1000,
        "wall_s": time.perf_counter() - started,
        "errors": errors,
    }


async def sequential(base: str, count: int) -> dict[str, Any]:
    url = f"{base.rstrip('/')}/v1/messages"
    failed = 0
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with asyncio.timeout(count * 0.05 + 60):
            for _ in range(count):
                async with session.post(url, data=SMALL, headers=HEADERS) as response:
                    await response.read()
                    failed += response.status != 200
    return {"count": count, "failed": failed, "wall_s": time.perf_counter() - started}


async def latency(base: str, count: int, stream: bool) -> dict[str, Any]:
    url = f"{base.rstrip('/')}/v1/messages"
    data = STREAM if stream else SMALL
    times: list[float] = []
    failed = 0
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with asyncio.timeout(count * 0.5 + 60):
            for _ in range(count):
                started = time.perf_counter()
                async with session.post(url, data=data, headers=HEADERS) as response:
                    body = await response.read()
                times.append(time.perf_counter() - started)
                answered = response.status == 200 and b'"error"' not in body[:200]
                if stream:
                    answered = response.status == 200 and b"event: message_stop" in body[-300:]
                failed += not answered
    rest = [t * 1000 for t in times[1:]]
    return {
        "count": count,
        "failed": failed,
        "first_ms": times[0] * 1000 if times else float("nan"),
        "p50_ms": percentile(rest, 50),
        "p99_ms": percentile(rest, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("streams", "seq", "latency"))
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--stream", action="store_true", help="latency: streaming requests")
    args = parser.parse_args()
    raise_fd_limit()
    if args.mode == "streams":
        work = streams(args.url, args.count, args.seconds)
    elif args.mode == "latency":
        work = latency(args.url, args.count, args.stream)
    else:
        work = sequential(args.url, args.count)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        print(json.dumps(runner.run(work)))


if __name__ == "__main__":
    main()
