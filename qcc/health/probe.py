"""One cheap health check of one account (``check_once``), for the monitor and ``qcc health check``.

Probes cost no tokens by default: ``POST /v1/messages/count_tokens``, falling back to
``GET /v1/models`` when a relay lacks it. ``probe = "message"`` sends a real one-token message for
relays that have neither. A 400 proves the account is up and accepted the credential.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from qcc.config.model import Account
from qcc.net.client import UpstreamClient, render_head
from qcc.net.errors import ConnectTimeout, UpstreamError
from qcc.routing.classify import Outcome, classify_status
from qcc.routing.ratelimit import rest_after_429

PROBE_MODEL = "claude-haiku-4-5"
_PING = [{"role": "user", "content": "ping"}]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    outcome: Outcome
    detail: str
    status: int | None = None
    latency: float | None = None
    cooldown: float | None = None
    method: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.SUCCESS, Outcome.CLIENT_ERROR)


def _model(account: Account) -> str:
    return account.models.get(PROBE_MODEL, PROBE_MODEL)


ProbeRequest = tuple[str, str, bytes | None]


def _requests(account: Account) -> list[ProbeRequest]:
    count: ProbeRequest = (
        "POST",
        "/v1/messages/count_tokens",
        json.dumps({"model": _model(account), "messages": _PING}).encode(),
    )
    models: ProbeRequest = ("GET", "/v1/models", None)
    message: ProbeRequest = (
        "POST",
        "/v1/messages",
        json.dumps({"model": _model(account), "max_tokens": 1, "messages": _PING}).encode(),
    )
    plans: dict[str, list[ProbeRequest]] = {
        "auto": [count, models],
        "count_tokens": [count],
        "models": [models],
        "message": [message],
    }
    return plans[account.probe]


async def check_once(
    client: UpstreamClient,
    account: Account,
    credential: tuple[str, str],
    timeout: float,  # noqa: ASYNC109 - one deadline for the whole probe, by design
) -> ProbeResult:
    """Probe ``account`` once through ``client`` (the traffic's own route: proxy, TLS, slots).

    Never raises for network trouble; everything happens within ``timeout``.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    route = client.route(account)
    lines = [
        "anthropic-version: 2023-06-01",
        "content-type: application/json",
        "user-agent: qcc-health-probe",
        f"{credential[0]}: {credential[1]}",
    ]
    missing: list[str] = []
    try:
        async with asyncio.timeout_at(deadline):
            for method, path, body in _requests(account):
                label = f"{method} {path}"
                data = body or b""
                try:
                    head = render_head(
                        method, route.prefix + path, route.host_header, lines, len(data)
                    )
                except ValueError:  # a line break inside the credential
                    return ProbeResult(
                        Outcome.AUTH_FAILED, "credential is not a valid header value"
                    )
                response = await client.request(
                    route, method, head, data, connect_timeout=timeout, deadline=deadline
                )
                try:
                    while await response.read(deadline):
                        pass  # drain, so the connection can be reused
                finally:
                    response.release() if response.at_eof() else response.close()
                if response.status in (404, 405):
                    missing.append(f"{label}: HTTP {response.status}")
                    continue  # this relay lacks the endpoint; try the next kind of probe
                outcome = classify_status(response.status)
                cooldown = None
                if outcome is Outcome.RATE_LIMITED:
                    cooldown = rest_after_429(response.headers, time.time())
                return ProbeResult(
                    outcome,
                    f"{label}: HTTP {response.status}",
                    response.status,
                    loop.time() - started,
                    cooldown,
                    label,
                )
    except TimeoutError as exc:
        if isinstance(exc, ConnectTimeout):
            return ProbeResult(Outcome.TIMEOUT, str(exc))
        return ProbeResult(Outcome.TIMEOUT, f"no answer within {timeout:g}s")
    except (UpstreamError, OSError) as exc:
        return ProbeResult(
            Outcome.NETWORK, str(exc) if isinstance(exc, UpstreamError) else type(exc).__name__
        )
    return ProbeResult(
        Outcome.SERVER_ERROR,
        "no probe endpoint found (" + "; ".join(missing) + "); is base_url right?",
        404,
        loop.time() - started,
    )
