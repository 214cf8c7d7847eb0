"""``qcc demo``'s engine: built-in fake accounts, a temporary cluster, the real proxy, a burst.

Nothing here reads or writes the user's config or state: the cluster lives in memory, usage is
not persisted, and every socket is on 127.0.0.1 with a port the OS picks. The CLI renders what
:func:`run_demo` reports; this module never prints.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from qcc.config.validate import config_from
from qcc.fake_upstream import Behavior, FakeUpstream
from qcc.proxy.admin import stats_document
from qcc.proxy.app import create_app
from qcc.proxy.runtime import RUNTIME_KEY, Runtime

ACCOUNTS = {
    "steady": Behavior(deltas=6, interval=0.02, text="Steady account answering."),
    "slow": Behavior(deltas=6, interval=0.02, delay=0.4, text="Slow account answering."),
    "flaky": Behavior(deltas=6, interval=0.02, fail_rate=0.5, text="Flaky account answering."),
}
FAILURE_THRESHOLD = 2


def intro(requests: int) -> list[str]:
    """What the demo is about to show, said before the first request (one line per account)."""
    slow, flaky = ACCOUNTS["slow"], ACCOUNTS["flaky"]
    return [
        "qcc demo: the real proxy in front of three fake accounts on 127.0.0.1",
        "(nothing leaves this machine; your config is not read):",
        "  steady  answers every request at once",
        f"  slow    answers every request, but only after {slow.delay:g} s",
        f"  flaky   fails {flaky.fail_rate:.0%} of requests with 529 overloaded: qcc fails over",
        f"          to another account, and ejects flaky after {FAILURE_THRESHOLD} failures "
        "in a row",
        f"Sending {requests} streaming requests, round-robin:",
    ]


@dataclass
class DemoReport:
    """What the demo has seen so far; passed to the renderer after every request."""

    stats: dict[str, Any]
    sent: int = 0
    ok: int = 0
    failed: int = 0
    events: list[str] = field(default_factory=list)
    url: str = ""


async def _start(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 at a port the OS picks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=2)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{port}"


def _config(urls: dict[str, str]) -> dict[str, Any]:
    return {
        "default_cluster": "demo",
        "health": {
            "failure_threshold": FAILURE_THRESHOLD,
            "ejection_base": 1.5,
            "ejection_max": 5,
            "probe_interval": 30,
            "probe_timeout": 2,
        },
        "clusters": {
            "demo": {
                "strategy": "round-robin",
                "sticky": False,
                "accounts": {
                    name: {"base_url": url, "api_key": f"demo-placeholder-key-{name}"}
                    for name, url in urls.items()
                },
            }
        },
    }


async def run_demo(
    requests: int,
    pace: float,
    on_update: Callable[[DemoReport], None],
    seed: int = 7,
) -> DemoReport:
    """Send ``requests`` through a proxy in front of three fake accounts, ``pace`` s apart."""
    runners: list[web.AppRunner] = []
    fakes = {name: FakeUpstream(name, behavior) for name, behavior in ACCOUNTS.items()}
    for fake in fakes.values():
        fake.rng = random.Random(f"{seed}-{fake.name}")
    runtimes: list[Runtime] = []
    try:
        urls = {}
        for name, fake in fakes.items():
            runner, urls[name] = await _start(fake.app())
            runners.append(runner)
        config = config_from(_config(urls))
        proxy_app = create_app(config, "demo", persist_usage=False, on_ready=runtimes.append)
        runner, proxy_url = await _start(proxy_app)
        runners.append(runner)
        runtime = proxy_app[RUNTIME_KEY]
        loop = asyncio.get_running_loop()
        report = DemoReport(stats_document(runtime, loop.time(), time.time()), url=proxy_url)
        on_update(report)
        body = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "Say hello."}],
        }
        async with aiohttp.ClientSession() as session:
            for i in range(requests):
                before = {n: dict(m.stats.outcomes) for n, m in runtime.pool.members.items()}
                report.sent += 1
                async with session.post(
                    proxy_url + "/v1/messages",
                    data=json.dumps(body),
                    headers={"content-type": "application/json", "x-api-key": "demo"},
                ) as resp:
                    text = await resp.text()
                served = _served_by(runtime, before)
                failed_over = _failed(runtime, before)
                if resp.status == 200 and "message_stop" in text:
                    report.ok += 1
                    line = f"#{i + 1}: 200 from {served or '?'}"
                    if failed_over:
                        line += f" after failing over from {', '.join(failed_over)}"
                else:
                    report.failed += 1
                    line = f"#{i + 1}: HTTP {resp.status} (every account failed)"
                report.events.append(line)
                report.stats = stats_document(runtime, loop.time(), time.time())
                on_update(report)
                await asyncio.sleep(pace)
        return report
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def _served_by(runtime: Runtime, before: dict[str, dict[str, int]]) -> str | None:
    for name, member in runtime.pool.members.items():
        if member.stats.outcomes.get("success", 0) > before[name].get("success", 0):
            return name
    return None


def _failed(runtime: Runtime, before: dict[str, dict[str, int]]) -> list[str]:
    out = []
    for name, member in runtime.pool.members.items():
        now = sum(v for k, v in member.stats.outcomes.items() if k != "success")
        then = sum(v for k, v in before[name].items() if k != "success")
        if now > then:
            out.append(name)
    return out
