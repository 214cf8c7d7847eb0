"""What the client is told when no account answered its request. Pure: builds a response.

The message is in qcc's words: each tried account with its HTTP status and error *type* (never the
account's own message, which may quote a key, and which Claude Code may misread: any error naming
``x-api-key`` becomes "Not logged in · Please run /login"), and each account that was not tried
with its state and why (``main: auth_failed (environment variable MAIN_KEY is not set; …)``).

``retry-after`` (whole seconds) says when the soonest account may serve again by itself.
``x-should-retry: false`` when none will soon: every account is auth_failed, disabled, or out of
credit (``exhausted``) with its next trial more than :data:`RETRY_SOON` seconds away. When
every account tried lacked what the request needs (rule action ``fail_over``), the answer is a
400 ``invalid_request_error`` that is not worth retrying either.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from aiohttp import web

from qcc.accounts.pool import AccountPool
from qcc.proxy.messages import error_body
from qcc.routing.classify import Outcome

_USER_MUST_ACT = frozenset({Outcome.AUTH_FAILED, Outcome.EXHAUSTED})
_KEY_WORD = re.compile(r"x-api-key", re.IGNORECASE)
RETRY_SOON = 60.0  # seconds: the longest retry-after the Anthropic SDKs wait for


@dataclass(slots=True)
class Failure:
    """One attempt that failed over; ``reason`` in qcc's words (``HTTP 529 overloaded_error``)."""

    account: str
    outcome: Outcome
    reason: str
    status: int | None = None


def all_failed(
    pool: AccountPool, failures: list[Failure], now: float, budget_exhausted: bool
) -> web.Response:
    """The error for a request no account answered: tried accounts with their status and
    error type, the others with their state and why."""
    total = len(pool.members)
    headers: dict[str, str] = {}
    recovery = pool.soonest_recovery(now)
    if recovery is not None and recovery > now:
        headers["retry-after"] = str(max(1, math.ceil(recovery - now)))
    soon = pool.soonest_recovery(now, exhausted_within=RETRY_SOON)
    outcomes = {f.outcome for f in failures}
    if failures and outcomes == {Outcome.CAPABILITY}:
        status, kind, soon = 400, "invalid_request_error", None
    elif failures and outcomes == {Outcome.RATE_LIMITED}:
        status, kind = 429, "rate_limit_error"
    elif Outcome.OVERLOADED in outcomes and not outcomes & _USER_MUST_ACT:
        status, kind = 529, "overloaded_error"
    else:
        status, kind = 503, "api_error"
    headers["x-should-retry"] = "false" if soon is None else "true"
    cluster = pool.cluster.name
    out = pool.unavailable_reasons(now)
    if not failures:
        why = "; ".join(f"{name}: {text}" for name, text in out.items())
        message = (
            f"qcc: no account of cluster '{cluster}' can serve right now "
            f"({total} configured, {pool.usable_count(now)} available: {why})"
        )
    else:
        tried = {f.account for f in failures}
        why = "; ".join(
            [f"{f.account}: {f.reason}" for f in failures]
            + [f"{name}: {text}, not tried" for name, text in out.items() if name not in tried]
        )
        message = f"qcc: all {len(failures)} accounts tried failed ({why})"
        if len(failures) < total:
            message = f"qcc: {len(failures)} of {total} accounts tried, all failed ({why})"
        if budget_exhausted:
            message += "; retry budget exhausted, so no further account was tried"
    # qcc's words only: Claude Code takes any error naming x-api-key for "Not logged in".
    message = _KEY_WORD.sub("API key", message)
    return web.Response(
        status=status,
        reason="Overloaded" if status == 529 else None,
        body=error_body(kind, message),
        content_type="application/json",
        headers=headers,
    )
