"""The web dashboard: ``/ui/`` (static page), ``/ui/state`` (its data), and account actions.

**Live data by polling, not SSE.** The page fetches ``GET /ui/state`` every second while it is
visible. ``EventSource`` cannot send a header, and the access key must travel as one (never in a
URL or a cookie); a polled ``fetch`` carries it, heals by itself after a proxy restart, holds no
connection open that a graceful shutdown would wait for, and costs nothing while the tab is
hidden. The document is built at most once per :data:`REFRESH` seconds and the same bytes are
served to every open page: O(accounts) per interval, never O(requests) or O(tabs x accounts).

**Access.** The static files hold no data and are served to loopback clients, or to anyone when
``proxy.access_key`` is set (a browser cannot add a header to a navigation; the page then asks
for the key). ``/ui/state`` and the actions need the key as ``x-api-key`` when one is set, else
a loopback client. Actions are POSTs that also need ``x-qcc-action: 1``: a cross-site form post
cannot add a header, and a cross-site ``fetch`` that adds one is refused at its preflight (and by
the edge's ``Origin`` rule). Every ``/ui`` answer carries a strict Content-Security-Policy (no
inline script or style), ``nosniff``, ``no-referrer`` and ``frame-ancestors 'none'``.

**Actions.** Disable/enable write ``config.toml`` as ``qcc account disable|enable`` does
(:meth:`ConfigStore.edit`, in a worker thread) and hot reload applies it. "Probe now" asks the
health monitor for an immediate probe.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from qcc.accounts.monitor import HealthMonitor
from qcc.config import ops
from qcc.config.store import ConfigStore
from qcc.errors import QccError
from qcc.proxy.activity import ACTIVITY_KEY, Activity
from qcc.proxy.admin import stats_document
from qcc.proxy.guard import is_loopback
from qcc.proxy.runtime import RUNTIME_KEY

REFRESH = 1.0  # seconds a built state document is shared by every page
ACTION_HEADER = "x-qcc-action"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

STATIC = {  # the only files served: name -> content type
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@dataclass(eq=False)
class Dashboard:
    """The dashboard's state in one app: config store (for actions), the monitor, the cache."""

    store: ConfigStore | None
    files: dict[str, bytes]
    monitor: HealthMonitor | None = None
    built_at: float = -1e9
    body: bytes = b""


DASHBOARD_KEY = web.AppKey("qcc_dashboard", Dashboard)


def load_files() -> dict[str, bytes]:
    root = resources.files("qcc.ui") / "static"
    return {name: (root / name).read_bytes() for name in STATIC}


def install(app: web.Application, store: ConfigStore | None) -> None:
    """Register the dashboard's routes and state on ``app`` (before its catch-all route)."""
    app[DASHBOARD_KEY] = Dashboard(store=store, files=load_files())
    app[ACTIVITY_KEY] = Activity()
    app.router.add_get("/ui", redirect_to_ui)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/state", state)
    app.router.add_get("/ui/{name}", static_file)
    app.router.add_post("/ui/accounts/{name}/{action}", action)


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    return response


def _json(status: int, doc: dict[str, Any]) -> web.StreamResponse:
    return _secured(web.json_response(doc, status=status))


def _page_allowed(request: web.Request) -> bool:
    """The static page: anyone when an access key protects the data, else loopback only."""
    rt = request.app[RUNTIME_KEY]
    return rt.config.proxy.access_key is not None or is_loopback(request.remote or "")


def _data_allowed(request: web.Request) -> bool:
    """Data and actions: the access key when one is set, else a loopback client."""
    rt = request.app[RUNTIME_KEY]
    if rt.config.proxy.access_key is not None:
        return rt.authorized(request)
    return is_loopback(request.remote or "")


def _refused(request: web.Request) -> web.StreamResponse:
    if request.app[RUNTIME_KEY].config.proxy.access_key is not None:
        return _json(401, {"error": "this proxy requires its access key"})
    return _json(403, {"error": "the dashboard is served to this machine only"})


async def redirect_to_ui(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/", headers=SECURITY_HEADERS)


async def page(request: web.Request) -> web.StreamResponse:
    return _serve(request, "index.html")


async def static_file(request: web.Request) -> web.StreamResponse:
    return _serve(request, request.match_info["name"])


def _serve(request: web.Request, name: str) -> web.StreamResponse:
    content_type = STATIC.get(name)
    if content_type is None:
        return _json(404, {"error": f"no such dashboard file: {name[:60]}"})
    if not _page_allowed(request):
        return _refused(request)
    body = request.app[DASHBOARD_KEY].files[name]
    return _secured(web.Response(body=body, headers={"Content-Type": content_type}))


def state_document(app: web.Application, now: float, wall_now: float) -> dict[str, Any]:
    """What the page shows: ``/accounts/stats`` plus p95 TTFB, the charts and recent requests."""
    rt = app[RUNTIME_KEY]
    activity = app[ACTIVITY_KEY]
    doc = stats_document(rt, now, wall_now)
    members = rt.pool.members
    for acc in doc["accounts"]:
        member = members.get(acc["name"])
        p95 = None if member is None else member.stats.ttfb.quantile(0.95)
        acc["p95_ms"] = None if p95 is None else round(p95 * 1000, 1)
    doc["now"] = round(wall_now, 3)
    doc["panic"] = bool(doc["total_accounts"]) and doc["available_accounts"] == 0
    doc["actions"] = {
        "enable_disable": app[DASHBOARD_KEY].store is not None,
        "probe": _monitor(app) is not None,
    }
    doc |= activity.summary(wall_now)
    doc["series"] = activity.series([a["name"] for a in doc["accounts"]], wall_now)
    doc["recent"] = activity.recent_requests()
    return doc


def _monitor(app: web.Application) -> HealthMonitor | None:
    monitor = app[DASHBOARD_KEY].monitor
    return monitor if monitor is not None and monitor.running else None


async def state(request: web.Request) -> web.StreamResponse:
    if not _data_allowed(request):
        return _refused(request)
    dash = request.app[DASHBOARD_KEY]
    now = asyncio.get_running_loop().time()
    if now - dash.built_at >= REFRESH:
        doc = state_document(request.app, now, time.time())
        dash.body = json.dumps(doc, separators=(",", ":")).encode()
        dash.built_at = now
    return _secured(web.Response(body=dash.body, content_type="application/json"))


async def action(request: web.Request) -> web.StreamResponse:
    if request.headers.get(ACTION_HEADER) != "1":
        return _json(403, {"error": f"actions need the header {ACTION_HEADER}: 1"})
    if not _data_allowed(request):
        return _refused(request)
    app = request.app
    rt = app[RUNTIME_KEY]
    name, what = request.match_info["name"], request.match_info["action"]
    if name not in rt.pool.members:
        return _json(404, {"error": f"no account {name[:60]!r} in cluster {rt.cluster_name}"})
    if what == "probe":
        monitor = _monitor(app)
        if monitor is None:
            return _json(409, {"error": "this proxy runs without its health monitor"})
        if not monitor.probe_now(name):
            return _json(409, {"error": f"account {name} cannot be probed (disabled or no key)"})
        return _json(202, {"account": name, "probing": True})
    if what not in ("enable", "disable"):
        return _json(404, {"error": f"unknown action {what[:30]!r}"})
    store = app[DASHBOARD_KEY].store
    if store is None:
        return _json(409, {"error": "this proxy was not started from a config file"})
    enabled = what == "enable"

    def write() -> None:
        with store.edit() as doc:
            ops.set_account_enabled(doc, rt.cluster_name, name, enabled)

    try:
        await asyncio.to_thread(write)
    except QccError as exc:
        return _json(409, {"error": str(exc)})
    app[DASHBOARD_KEY].built_at = -1e9  # the next poll shows the change once reloaded
    return _json(200, {"account": name, "enabled": enabled})
