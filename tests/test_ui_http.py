"""The dashboard's HTTP side, without a browser: routes, headers, access, origin, actions."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from proxyharness import SECRET, MakeHarness, cluster_config, harness_factory, wait_for

from qcc.fake_upstream import Behavior
from qcc.proxy.app import create_app
from qcc.proxy.ui import DASHBOARD_KEY, SECURITY_HEADERS, load_files

KEY = "qcc-ui-test-access-key-0123456789"
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": []}
ACT = {"x-qcc-action": "1"}


@pytest.fixture
def make_harness(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


def own_origin(h: Any) -> str:
    return str(h.client.make_url("")).rstrip("/")


async def test_root_redirects_browsers_only(make_harness: MakeHarness) -> None:
    h = await make_harness("main")
    head = await h.client.head("/", allow_redirects=False)
    assert head.status == 200
    plain = await h.client.get("/", allow_redirects=False)
    assert plain.status == 200
    assert "ANTHROPIC_BASE_URL" in await plain.text()
    sdk = await h.client.get("/", headers={"Accept": "application/json"}, allow_redirects=False)
    assert sdk.status == 200
    browser = await h.client.get(
        "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, allow_redirects=False
    )
    assert browser.status == 302
    assert browser.headers["Location"] == "/ui/"
    bare = await h.client.get("/ui", allow_redirects=False)
    assert (bare.status, bare.headers["Location"]) == (302, "/ui/")


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/favicon.svg", "image/svg+xml"),
        ("/ui/state", "application/json"),
        ("/ui/nothing.js", "application/json"),  # 404, with the same headers
    ],
)
async def test_every_ui_answer_has_the_strict_headers(
    make_harness: MakeHarness, path: str, ctype: str
) -> None:
    h = await make_harness("main")
    response = await h.client.get(path)
    assert response.headers["Content-Type"].startswith(ctype)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


async def test_the_page_has_no_inline_script_or_style() -> None:
    html = load_files()["index.html"].decode()
    assert "<script>" not in html and "style=" not in html and "<style" not in html
    assert "http://" not in html.replace('"http://www.w3.org', "")  # nothing from elsewhere
    js = load_files()["app.js"].decode()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js


async def test_state_document_has_what_the_page_shows_and_no_secret(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(
        "main", "backup", behaviors={"main": Behavior(mode="status", status=529)}
    )
    for _ in range(3):
        response = await h.client.post("/v1/messages", json=BODY)
        assert response.status == 200
    response = await h.client.get("/ui/state")
    assert response.status == 200
    text = await response.text()
    assert SECRET not in text
    doc = json.loads(text)
    assert doc["cluster"] == "test" and doc["total_accounts"] == 2
    assert doc["failovers_last_minute"] == 3
    assert doc["requests_per_s"] > 0
    assert doc["panic"] is False
    backup = {a["name"]: a for a in doc["accounts"]}["backup"]
    assert backup["requests"] == 3 and backup["p95_ms"] is not None
    series = doc["series"]
    assert len(series["requests"]["backup"]) == 180
    assert sum(series["requests"]["backup"]) == 3
    assert sum(series["errors"]["overloaded"]) == 3
    recent = doc["recent"]
    assert len(recent) == 3
    assert recent[0]["account"] == "backup" and recent[0]["status"] == 200
    assert recent[0]["failovers"] == [
        {"account": "main", "outcome": "overloaded", "reason": "HTTP 529 overloaded_error"}
    ]
    assert recent[0]["output_tokens"] > 0


async def test_state_is_built_once_per_interval_for_all_pages(make_harness: MakeHarness) -> None:
    h = await make_harness("main")
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = await (await h.client.get("/ui/state")).read()
    await (await h.client.post("/v1/messages", json=BODY)).read()
    second = await (await h.client.get("/ui/state")).read()
    if loop.time() - started < 0.9:  # (a very loaded machine may take longer than REFRESH)
        assert second == first  # the same bytes: not rebuilt for each page
    await asyncio.sleep(1.05)
    third = json.loads(await (await h.client.get("/ui/state")).read())
    assert third["requests"] == 1


async def test_own_origin_is_accepted_foreign_origins_refused(make_harness: MakeHarness) -> None:
    h = await make_harness("main", monitor=True)
    origin = own_origin(h)
    port = origin.rsplit(":", 1)[1]
    ok = await h.client.post("/ui/accounts/main/probe", headers=ACT | {"Origin": origin})
    assert ok.status == 202
    local = origin.replace("127.0.0.1", "localhost")
    ok = await h.client.post(
        "/ui/accounts/main/probe",
        headers=ACT | {"Origin": local, "Host": f"localhost:{port}"},
    )
    assert ok.status == 202
    for foreign in ("http://evil.example", "http://127.0.0.1:1", "https://" + origin[7:], "null"):
        refused = await h.client.post("/ui/accounts/main/probe", headers=ACT | {"Origin": foreign})
        assert refused.status == 403, foreign
        assert "Origin" in await refused.text()
    # a rebinding page: its own Host and Origin match each other, but the Host is not ours
    rebound = await h.client.post(
        "/ui/accounts/main/probe",
        headers=ACT | {"Origin": "http://evil.example:" + port, "Host": "evil.example:" + port},
    )
    assert rebound.status == 403
    # the own-origin rule does not open the API to pages: same answer as without an Origin
    api = await h.client.post("/v1/messages", json=BODY, headers={"Origin": "http://evil.example"})
    assert api.status == 403


async def test_actions_need_the_action_header(make_harness: MakeHarness, tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    h = await make_harness("main", "backup", config_path=config_path)
    before = config_path.read_bytes()
    form = await h.client.post(
        "/ui/accounts/main/disable",
        data="x=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status == 403
    assert config_path.read_bytes() == before
    get = await h.client.get("/ui/accounts/main/disable")
    assert get.status == 404
    assert config_path.read_bytes() == before
    unknown = await h.client.post("/ui/accounts/nobody/disable", headers=ACT)
    assert unknown.status == 404
    bad = await h.client.post("/ui/accounts/main/explode", headers=ACT)
    assert bad.status == 404
    assert config_path.read_bytes() == before


async def test_disable_and_enable_write_the_config_and_reach_traffic(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    config_path = tmp_path / "config.toml"
    h = await make_harness("main", "backup", config_path=config_path)
    response = await h.client.post("/ui/accounts/main/disable", headers=ACT)
    assert response.status == 200
    assert "enabled = false" in config_path.read_text()
    assert config_path.stat().st_mode & 0o777 == 0o600
    await wait_for(lambda: h.member("main").health.state.value == "disabled")
    await (await h.client.post("/v1/messages", json=BODY)).read()
    assert len(h.upstreams["main"].requests) == 0
    assert len(h.upstreams["backup"].requests) == 1
    response = await h.client.post("/ui/accounts/main/enable", headers=ACT)
    assert response.status == 200
    await wait_for(lambda: h.member("main").health.state.value == "healthy")
    await (await h.client.post("/v1/messages", json=BODY)).read()
    assert len(h.upstreams["main"].requests) == 1


async def test_disable_without_a_config_file_says_so(make_harness: MakeHarness) -> None:
    h = await make_harness("main")
    response = await h.client.post("/ui/accounts/main/disable", headers=ACT)
    assert response.status == 409
    assert "config file" in (await response.json())["error"]


async def test_probe_now_probes_the_account(make_harness: MakeHarness) -> None:
    h = await make_harness("main", monitor=True)
    fake = h.upstreams["main"]
    await wait_for(lambda: len(fake.requests) >= 1)  # the start-up probe
    monitor = h.app[DASHBOARD_KEY].monitor
    assert monitor is not None
    await wait_for(lambda: not monitor.probing)
    seen = len(fake.requests)
    response = await h.client.post("/ui/accounts/main/probe", headers=ACT)
    assert response.status == 202
    await wait_for(lambda: len(fake.requests) == seen + 1)
    assert fake.requests[-1].path_qs.startswith("/v1/")


async def test_probe_now_needs_the_monitor(make_harness: MakeHarness) -> None:
    h = await make_harness("main")  # monitor=False
    response = await h.client.post("/ui/accounts/main/probe", headers=ACT)
    assert response.status == 409


async def test_with_an_access_key_data_and_actions_need_it(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    h = await make_harness(
        "main", config_path=tmp_path / "config.toml", extra={"proxy": {"access_key": KEY}}
    )
    page = await h.client.get("/ui/")  # the page itself holds no data: it asks for the key
    assert page.status == 200
    for headers in ({}, {"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}):
        state = await h.client.get("/ui/state", headers=headers)
        assert state.status == 401
        action = await h.client.post("/ui/accounts/main/disable", headers=ACT | headers)
        assert action.status == 401
    state = await h.client.get("/ui/state", headers={"x-api-key": KEY})
    assert state.status == 200
    assert KEY not in await state.text()
    done = await h.client.post("/ui/accounts/main/disable", headers=ACT | {"x-api-key": KEY})
    assert done.status == 200


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


async def test_without_a_key_only_loopback_clients_are_served(aiohttp_server: Any) -> None:
    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    config = cluster_config({"main": "http://127.0.0.1:9"})
    app: web.Application = create_app(config, "test", host="0.0.0.0", monitor=False)
    server: TestServer = await aiohttp_server(app, host="0.0.0.0")
    async with ClientSession() as session:
        base = f"http://{address}:{server.port}"
        for path in ("/ui/", "/ui/app.js", "/ui/state"):
            async with session.get(base + path) as response:
                assert response.status == 403, path
        async with session.post(base + "/ui/accounts/main/probe", headers=ACT) as response:
            assert response.status == 403
        async with session.get(f"http://127.0.0.1:{server.port}/ui/state") as response:
            assert response.status == 200
