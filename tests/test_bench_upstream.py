"""The bench upstream's misbehaving accounts (S5), served for real on localhost."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import ClientSession

from qcc.proxy import sse

BENCH_UPSTREAM = Path(__file__).resolve().parent.parent / "bench" / "upstream.py"
SMALL = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
STREAM = SMALL[:-1] + b',"stream":true}'


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_upstream_s5", BENCH_UPSTREAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_misbehaving_prefixes(bench: ModuleType, aiohttp_raw_server: Any) -> None:
    server = await aiohttp_raw_server(bench.handle)
    base = str(server.make_url("")).rstrip("/")
    async with ClientSession() as client:
        async with client.post(f"{base}/529/v1/messages", data=SMALL) as r:
            assert (r.status, (await r.json())["error"]["type"]) == (529, "overloaded_error")
        async with client.post(f"{base}/sse-error/v1/messages", data=STREAM) as r:
            body = await r.read()
            assert r.status == 200 and r.content_type == "text/event-stream"
            name, data, _ = sse.next_event(body, 0) or (None, b"", 0)
            assert (name, sse.error_type(data)) == ("error", "overloaded_error")
        async with client.post(f"{base}/sse-error/v1/messages", data=SMALL) as r:
            assert r.status == 200 and (await r.json())["type"] == "message"
        async with client.get(f"{base}/sse-error/v1/models") as r:
            assert r.status == 200  # health probes of account (c) succeed
        async with client.post(f"{base}/v1/messages", data=STREAM) as r:
            assert b"event: message_stop" in await r.read()
