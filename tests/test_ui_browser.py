"""The dashboard in a real browser: Debian's ``chromium`` driven by Playwright's async API, against
a real proxy app with fake accounts on 127.0.0.1.

Skipped (with the reason) only when ``/usr/bin/chromium`` or the ``playwright`` package is
missing; ``playwright install`` is never needed. Screenshots go to ``$QCC_TEST_ARTIFACTS`` (else
the test's temp dir); with ``QCC_UPDATE_DOCS_SCREENSHOT=1`` the 1280x800 one also replaces
``docs/dashboard.png``.

These tests are slower than the rest (a browser starts for each, about a second).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from e2e import env_for, free_port, qcc, running_proxy, write_config
from proxyharness import SECRET, Harness, MakeHarness, harness_factory, wait_for

from qcc.fake_upstream import Behavior, FakeUpstream
from qcc.proxy.activity import ACTIVITY_KEY, BUCKET, BUCKETS
from qcc.proxy.failed import Failure
from qcc.routing.classify import Outcome

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_PNG = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"
XSS = "<img src=x onerror=window.__xss=1>"

if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)",
        allow_module_level=True,
    )
if importlib.util.find_spec("playwright") is None:
    pytest.skip(
        "the playwright package is missing: pip install -e '.[test]'", allow_module_level=True
    )

from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect  # noqa: E402


@pytest.fixture
def make_harness(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    where = os.environ.get("QCC_TEST_ARTIFACTS")
    path = Path(where) if where else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


def base(h: Harness) -> str:
    return str(h.client.make_url("")).rstrip("/")


async def open_page(
    browser: Browser, h: Harness, width: int = 1280, height: int = 800
) -> tuple[Page, list[str]]:
    """A fresh page on the dashboard; the list collects console errors and page errors."""
    page = await browser.new_page(viewport={"width": width, "height": height})
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    await page.goto(base(h) + "/")  # a browser asking for / lands on /ui/
    assert page.url == base(h) + "/ui/"
    return page, problems


async def traffic(h: Harness, n: int, stream: bool = False) -> None:
    for _ in range(n):
        response = await h.client.post(
            "/v1/messages",
            json={"model": "claude-sonnet-4-5", "max_tokens": 8, "stream": stream, "messages": []},
        )
        await response.read()


def backfill(h: Harness, minutes: float = 15.0) -> None:
    """History from before the test started, through the recorder's own entry point (so the
    screenshots show full charts)."""
    activity = h.app[ACTIVITY_KEY]
    now = time.time()
    names = list(h.runtime.pool.members)
    steps = int(minutes * 60 / BUCKET)
    for step in range(min(steps, BUCKETS - 1), 0, -1):
        wall = now - step * BUCKET
        for i, name in enumerate(names):
            count = 2 + (step * (i + 3)) % 7 - i
            for k in range(max(0, count)):
                ttfb = 0.25 + 0.1 * i + 0.02 * ((step + k) % 9)
                usage = {
                    "input_tokens": 1200,
                    "output_tokens": 300,
                    "cache_read_input_tokens": 9000,
                }
                fails = []
                if (step + k) % 23 == 0:
                    fails = [
                        Failure(names[-1], Outcome.OVERLOADED, "HTTP 529 overloaded_error", 529)
                    ]
                activity.add(wall, name, 200, "ok", fails, ttfb, ttfb + 1.5, usage)


async def boxes(page: Page) -> list[tuple[float, float]]:
    """Top and height of every account row and of each section: what must not jump."""
    found = await page.evaluate(
        """() => [...document.querySelectorAll('#accounts tbody tr, main > section')]
            .map((e) => { const r = e.getBoundingClientRect(); return [r.top, r.height]; })"""
    )
    return [(round(top, 1), round(height, 1)) for top, height in found]


async def test_dashboard_shows_live_state_and_escapes_text(
    make_harness: MakeHarness, browser: Browser, artifacts: Path, tmp_path: Path
) -> None:
    h = await make_harness(
        "main", "backup", "spare", monitor=True, config_path=tmp_path / "config.toml"
    )
    backfill(h)
    await traffic(h, 6)
    await traffic(h, 2, stream=True)
    page, problems = await open_page(browser, h)
    main = page.locator("tr[data-account='main']")
    await expect(main.locator(".badge")).to_have_text("healthy")
    await expect(page.locator("#k-available")).to_have_text("3 / 3")
    await expect(page.locator("#recent tbody tr").first).to_contain_text("main")
    assert await page.locator("#c-rate svg rect").count() > 0

    # Nothing jumps as numbers grow.
    before = await boxes(page)
    await traffic(h, 120)
    await expect(main.locator("td").nth(3)).to_have_text("128")
    assert await boxes(page) == before

    # An account starts failing: it shows as ejected, with its countdown, within 3 s.
    h.upstreams["main"].behavior = Behavior(mode="status", status=529)
    flipped = time.monotonic()
    await traffic(h, h.runtime.config.health.failure_threshold)
    assert h.member("main").health.state.value == "ejected"
    await expect(main.locator(".badge")).to_have_text("ejected", timeout=3000)
    assert time.monotonic() - flipped < 3.0
    await expect(main.locator(".until")).to_contain_text("in ")
    await expect(page.locator("#k-available")).to_have_text("2 / 3")
    await expect(page.locator("#recent tbody tr").first).to_contain_text("main: HTTP 529")
    await page.screenshot(path=str(artifacts / "dashboard-1280x800.png"))
    if os.environ.get("QCC_UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_PNG.parent.mkdir(exist_ok=True)
        shutil.copyfile(artifacts / "dashboard-1280x800.png", DOCS_PNG)

    # An account's error message that is markup renders as text (account names cannot carry
    # it: config validation allows [A-Za-z0-9_-] only; last_error carries what accounts say).
    backup = page.locator("tr[data-account='backup']")
    fake = h.upstreams["backup"]
    fake.name = XSS  # the fake puts its name in its error messages
    fake.behavior = Behavior(mode="status", status=500)
    await traffic(h, 1)
    await expect(backup.locator(".lasterror")).to_contain_text(XSS)
    assert await page.locator("img").count() == 0
    assert await page.evaluate("window.__xss") is None

    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(main.locator(".badge")).to_be_visible()
    await page.wait_for_timeout(300)  # the charts redraw for the new width
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at 390 px ({width} px wide)"
    chart = await page.evaluate("document.querySelector('#c-rate svg').getAttribute('width')")
    assert int(chart) < 390
    await page.screenshot(path=str(artifacts / "dashboard-390.png"))
    await page.screenshot(path=str(artifacts / "dashboard-390-full.png"), full_page=True)
    assert problems == []


async def test_dark_scheme_and_fields_of_newer_proxies(
    make_harness: MakeHarness, browser: Browser, artifacts: Path
) -> None:
    """Headroom, spend and the last matched rule are shown when the proxy sends them (newer
    proxies do; the page is served the real document with those fields added)."""
    h = await make_harness("main", "backup")
    await traffic(h, 3)

    async def with_fields(route: Any) -> None:
        response = await route.fetch()
        doc = await response.json()
        for acc in doc["accounts"]:
            acc |= {
                "headroom": 0.42 if acc["name"] == "main" else 0.05,
                "spend_today_usd": 1.5,
                "spend_month_usd": 12.25,
                "budget_daily_usd": 20.0,
                "last_rule": "built-in: credit-balance",
            }
        await route.fulfill(response=response, json=doc)

    context = await browser.new_context(
        color_scheme="dark", viewport={"width": 1280, "height": 800}
    )
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.route("**/ui/state", with_fields)
    await page.goto(base(h) + "/ui/")
    main = page.locator("tr[data-account='main']")
    await expect(main.locator("td.headroom")).to_have_text("42%")
    await expect(page.locator("tr[data-account='backup'] td.headroom")).to_have_class(
        "headroom low"
    )
    await expect(main.locator("td.spend")).to_have_text("$1.50 / $20.00")
    assert await main.locator("td.spend").get_attribute("title") == (
        "today $1.50 / $20.00, this month $12.25"
    )
    await expect(main.locator(".rule")).to_have_text("rule: built-in: credit-balance")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)"  # the dark palette
    await page.screenshot(path=str(artifacts / "dashboard-dark-1280x800.png"))
    await page.unroute_all(behavior="wait")  # a poll's handler may be running: let it finish
    await context.close()

    # Without those fields (an account that announced no limits, a proxy with no prices or
    # budgets) the columns are not shown at all.
    async def without_fields(route: Any) -> None:
        response = await route.fetch()
        doc = await response.json()
        for acc in doc["accounts"]:
            for key in OPTIONAL_FIELDS:
                acc.pop(key, None)
        await route.fulfill(response=response, json=doc)

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.route("**/ui/state", without_fields)
    await page.goto(base(h) + "/ui/")
    await expect(page.locator("tr[data-account='main'] .badge")).to_have_text("healthy")
    assert not await page.locator("th.headroom").is_visible()
    assert not await page.locator("th.spend").is_visible()
    assert not await page.locator("tr[data-account='main'] .rule").is_visible()
    await page.unroute_all(behavior="wait")
    await context.close()
    assert problems == []


OPTIONAL_FIELDS = (
    "headroom",
    "limits",
    "spend_today_usd",
    "spend_month_usd",
    "budget_daily_usd",
    "budget_monthly_usd",
    "last_rule",
)


async def test_disable_from_the_page_writes_config_and_moves_traffic(
    make_harness: MakeHarness, browser: Browser, tmp_path: Path
) -> None:
    config_path = tmp_path / "config.toml"
    h = await make_harness("main", "backup", config_path=config_path)
    page, problems = await open_page(browser, h)
    main = page.locator("tr[data-account='main']")
    await expect(main.locator(".badge")).to_have_text("healthy")
    await main.get_by_role("button", name="Disable").click()
    await wait_for(lambda: "enabled = false" in config_path.read_text())
    await expect(main.locator(".badge")).to_have_text("disabled", timeout=3000)
    before = len(h.upstreams["main"].requests)
    await traffic(h, 3)
    assert len(h.upstreams["main"].requests) == before
    assert len(h.upstreams["backup"].requests) >= 3

    await main.get_by_role("button", name="Enable").click()
    await wait_for(lambda: "enabled = true" in config_path.read_text())
    await expect(main.locator(".badge")).to_have_text("healthy", timeout=3000)
    await traffic(h, 1)
    assert len(h.upstreams["main"].requests) == before + 1
    assert problems == []


async def test_access_key_is_asked_once_and_a_wrong_one_is_refused(
    make_harness: MakeHarness, browser: Browser
) -> None:
    key = "qcc-dashboard-test-key-0123456789"
    h = await make_harness("main", extra={"proxy": {"access_key": key}})
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(base(h) + "/ui/")
    await expect(page.locator("#key")).to_be_visible()
    await expect(page.locator("#main")).to_be_hidden()

    await page.fill("#key", "not-the-key")
    await page.click("#keyform button")
    await expect(page.locator("#keyerror")).to_contain_text("refused")
    await expect(page.locator("#main")).to_be_hidden()

    await page.fill("#key", key)
    await page.click("#keyform button")
    await expect(page.locator("tr[data-account='main'] .badge")).to_have_text("healthy")
    assert key not in page.url
    assert await page.context.cookies() == []
    assert await page.evaluate("sessionStorage.getItem('qcc.access_key')") == key

    await page.reload()  # asked once: the tab keeps it
    await expect(page.locator("tr[data-account='main'] .badge")).to_have_text("healthy")
    await expect(page.locator("#key")).to_be_hidden()
    assert errors == []


@pytest.mark.slow
async def test_real_proxy_process_and_qcc_dashboard(
    aiohttp_server: Any, browser: Browser, tmp_path: Path
) -> None:
    """The real ``qcc proxy start``: ``qcc dashboard`` gives the page's URL, the page shows the
    accounts, and Disable reaches the config file and the running process."""
    fake = FakeUpstream("main")
    upstream = str((await aiohttp_server(fake.app())).make_url("")).rstrip("/")
    port = free_port()
    env = env_for(tmp_path)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env["BROWSER"] = "false"  # no browser: the command prints the URL only
    env.pop("QCC_UI_TEST_UNSET_KEY", None)
    accounts = {
        "main": {"base_url": upstream, "api_key": SECRET},
        "gone": {"base_url": "http://127.0.0.1:9", "api_key_env": "QCC_UI_TEST_UNSET_KEY"},
    }
    config = write_config(
        tmp_path / "config",
        {
            "default_cluster": "prod",
            "proxy": {"port": port},
            "clusters": {"prod": {"strategy": "priority", "accounts": accounts}},
        },
    )
    with running_proxy(env) as (_process, url):
        printed = qcc("dashboard", env=env)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout == f"{url}/ui/\n"
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        await page.goto(printed.stdout.strip())
        await expect(page.locator("#cluster-name")).to_have_text("cluster prod")
        main = page.locator("tr[data-account='main']")
        await expect(main.locator(".badge")).to_have_text("healthy")
        gone = page.locator("tr[data-account='gone']")
        await expect(gone.locator(".badge")).to_have_text("auth_failed")
        await expect(gone.locator(".reason")).to_contain_text("QCC_UI_TEST_UNSET_KEY")
        await main.get_by_role("button", name="Disable").click()
        await expect(main.locator(".badge")).to_have_text("disabled", timeout=5000)
        assert "enabled = false" in config.read_text()
        assert SECRET in config.read_text()  # the rest of the file as it was
        assert problems == []
