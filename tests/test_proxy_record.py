"""The proxy record's helpers: the one-per-state-dir lock and the admin client."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from e2e import free_port

from qcc.errors import ProxyError
from qcc.proxy import record


def test_second_lock_in_the_state_dir_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record, "LOCK_WAIT", 0.05)
    monkeypatch.setattr(record, "RECORD_WAIT", 0.05)
    first = record.hold_lock()
    try:
        state = Path(os.environ["QCC_STATE_DIR"])
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "proxy.lock").stat().st_mode) == 0o600
        with pytest.raises(ProxyError, match="another qcc proxy is starting with state dir"):
            record.hold_lock()
    finally:
        first.release()
    record.hold_lock().release()  # free again once released


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:7860"),
        ("::", "http://[::1]:7860"),
        ("::1", "http://[::1]:7860"),
        ("192.168.1.5", "http://192.168.1.5:7860"),
    ],
)
def test_client_url(host: str, url: str) -> None:
    assert record.client_url(host, 7860) == url


async def test_admin_client_never_goes_through_http_proxy(
    aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    app = web.Application()
    app.router.add_get("/health", health)
    server = await aiohttp_server(app)
    closed = f"http://127.0.0.1:{free_port()}"
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", closed)
    monkeypatch.setenv("HTTP_PROXY", closed)
    url = str(server.make_url("/health"))
    status, doc = await asyncio.to_thread(record.fetch_json, url)
    assert (status, doc) == (200, {"status": "healthy"})
