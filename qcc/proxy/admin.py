"""Routes the proxy answers itself: ``/health``, ``/accounts/stats``, ``/metrics``,
``POST /accounts/{name}/reset``, and the non-API paths Claude Code probes (``HEAD /``,
``/api/...``), which never touch an account."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from aiohttp import web

from qcc.accounts.member import Member
from qcc.proxy.messages import error_body
from qcc.proxy.metrics import REGISTRY_KEY, render
from qcc.proxy.runtime import RUNTIME_KEY, Runtime
from qcc.redact import scrub
from qcc.routing.ratelimit import headroom

JSON = "application/json"


def unauthorized() -> web.Response:
    """401 for a client without the proxy's access key (``proxy.access_key``)."""
    return web.Response(
        status=401,
        body=error_body(
            "authentication_error",
            "qcc: this proxy requires its access key as x-api-key or Authorization: Bearer",
        ),
        content_type=JSON,
    )


def health_document(rt: Runtime, now: float) -> tuple[int, dict[str, Any]]:
    total = len(rt.pool.members)
    available = rt.pool.usable_count(now)
    if total and available == total:
        status = "healthy"
    elif available:
        status = "degraded"
    else:
        status = "unhealthy"
    doc = {
        "status": status,
        "cluster": rt.pool.cluster.name,
        "accounts": {"total": total, "available": available, "unavailable": total - available},
    }
    if rt.shared is not None:
        doc["shared"] = "ok" if rt.shared.client.up else "down"
    return (200 if available else 503), doc


def member_document(member: Member, now: float, wall_now: float) -> dict[str, Any]:
    account, health, stats = member.account, member.health, member.stats
    usable = member.header is not None and health.usable(now)
    p50 = stats.ttfb.quantile(0.5)
    until = health.until
    return {
        "name": account.name,
        "base_url": account.base_url,
        "state": health.state.value,
        "available": usable,
        "reason": health.reason,
        "since": wall_now - (now - health.since),
        "until": None if until is None else wall_now + (until - now),
        "weight": account.weight,
        "priority": account.priority,
        "enabled": account.enabled,
        "requests": stats.requests,
        "failures": stats.failures,
        "local_errors": stats.local_errors,  # failed on qcc's side; not held against the account
        "consecutive_failures": health.consecutive_failures,
        "ejections": health.ejections,
        "in_flight": stats.in_flight,
        "latency_ms": None if member.latency.ewma is None else round(member.latency.ewma * 1000, 1),
        "p50_ms": None if p50 is None else round(p50 * 1000, 1),
        "last_error": stats.last_error,
        "last_error_at": stats.last_error_at,
        "last_rule": stats.last_rule,
        "outcomes": dict(stats.outcomes),
        "usage": stats.usage.as_dict(),
        "cache_read_share": stats.usage.cache_read_share,
        **limits_and_spend(member, wall_now),
        "credential": credential_document(member),
        "transitions": [
            {
                "at": wall_now - (now - t.at),
                "from": t.from_state.value,
                "to": t.to_state.value,
                "reason": t.reason,
            }
            for t in list(health.transitions)[-5:]
        ],
    }


def credential_document(member: Member) -> dict[str, Any]:
    """Where the account's credential comes from; for fetched ones, when the current value
    expires (unix time) and how the last refresh went. Never the secret."""
    doc: dict[str, Any] = {"source": member.account.credential.source}
    source = member.source
    if source is not None:
        doc |= {
            "expires": source.expires,
            "last_refresh": source.last_refresh,
            "last_refresh_ms": None if source.last_ms is None else round(source.last_ms, 1),
            "last_result": scrub(source.last_result(), member.secrets()),
            "refreshes": source.fetches,
        }
    return doc


def limits_and_spend(member: Member, wall_now: float) -> dict[str, Any]:
    """The latest rate limits the account announced (None: never), and its spend vs budget."""
    limits, account, spend = member.limits, member.account, member.spend
    spend.roll(wall_now)
    return {
        "limits": None if limits is None else limits.as_dict(),
        "headroom": None if limits is None else headroom(limits),
        "spend_today_usd": spend.today,
        "spend_month_usd": spend.month,
        "budget_daily_usd": account.budget_daily_usd,
        "budget_monthly_usd": account.budget_monthly_usd,
    }


def stats_document(rt: Runtime, now: float, wall_now: float) -> dict[str, Any]:
    pool = rt.pool
    return {
        "cluster": pool.cluster.name,
        "strategy": pool.cluster.strategy,
        "sticky": pool.cluster.sticky,
        "total_accounts": len(pool.members),
        "available_accounts": pool.usable_count(now),
        "uptime_s": round(now - rt.started, 1),
        "requests": rt.requests,
        "panics": pool.panics,
        "reloads": rt.reloads,
        "reload_error": rt.reload_error,
        "sticky_sessions": len(pool.sticky),
        "pid": os.getpid(),
        "loop": type(asyncio.get_running_loop()).__module__.partition(".")[0],  # uvloop|asyncio
        "accounts": [member_document(m, now, wall_now) for m in pool.members.values()],
        **shared_document(rt, wall_now),
    }


def shared_document(rt: Runtime, wall_now: float) -> dict[str, Any]:
    """With ``[shared]``: Redis ok/down, this instance's id and the live instances."""
    shared = rt.shared
    if shared is None:
        return {}
    return {
        "shared": {
            "state": "ok" if shared.client.up else "down",
            "redis": shared.client.target.shown,
            "instance": shared.id,
            "instances": [
                {"id": ident, "seen_s_ago": round(max(wall_now - seen, 0.0), 1)}
                for ident, seen in shared.instances
            ],
        }
    }


async def health(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME_KEY]
    status, doc = health_document(rt, asyncio.get_running_loop().time())
    return web.json_response(doc, status=status)


async def accounts_stats(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME_KEY]
    if not rt.authorized(request):
        return unauthorized()
    doc = stats_document(rt, asyncio.get_running_loop().time(), time.time())
    return web.json_response(doc, dumps=lambda o: json.dumps(o, indent=2))


async def reset_account(request: web.Request) -> web.Response:
    """``POST /accounts/{name}/reset``: the user vouches for an account (``qcc account enable``):
    out of credit, auth failed, ejected or cooling, it is healthy at once. A disabled account
    stays disabled (its config says so). Same access rule as ``/accounts/stats``."""
    rt = request.app[RUNTIME_KEY]
    if not rt.authorized(request):
        return unauthorized()
    name = request.match_info["name"]
    pool = rt.pool
    member = pool.members.get(name)
    if member is None:
        return web.Response(
            status=404,
            body=error_body(
                "not_found_error", f"qcc: cluster '{pool.cluster.name}' has no account '{name}'"
            ),
            content_type=JSON,
        )
    before = member.health.state
    pool.reset(member, asyncio.get_running_loop().time())
    return web.json_response(
        {
            "cluster": pool.cluster.name,
            "account": name,
            "before": before.value,
            "state": member.health.state.value,
        }
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus scrape: rendered here from the pool's counters, O(accounts) (see metrics.py)."""
    rt = request.app[RUNTIME_KEY]
    if not rt.authorized(request):
        return unauthorized()
    body, content_type = render(request.app[REGISTRY_KEY], request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def root(request: web.Request) -> web.Response:
    """``HEAD /`` and ``GET /``: Claude Code checks that the base URL answers. A browser
    (``GET`` accepting ``text/html``) is sent to the dashboard instead."""
    if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
        raise web.HTTPFound("/ui/")
    return web.Response(text="qcc proxy: point ANTHROPIC_BASE_URL here\n")


async def not_forwarded(request: web.Request) -> web.Response:
    """Paths outside ``/v1/`` are never sent to an account."""
    return web.Response(
        status=404,
        body=error_body("not_found_error", f"qcc: {request.path} is not forwarded (only /v1/...)"),
        content_type=JSON,
    )
