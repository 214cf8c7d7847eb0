"""Fakes for credential tests: an account that accepts only the keys it is told to, and an
OAuth2 token endpoint that issues short-lived tokens and rotates refresh tokens."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from qcc import wire
from qcc.fake_upstream import FakeUpstream


class KeyedUpstream(FakeUpstream):
    """A fake account answering 401 to any credential not in ``accepted`` (x-api-key, or the
    token of ``Authorization: Bearer``)."""

    def __init__(self, name: str, accepted: Collection[str]) -> None:
        super().__init__(name)
        self.accepted = accepted
        self.refused = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "")[7:]
        if key not in self.accepted:
            self.refused += 1
            await request.read()
            error = wire.error("authentication_error", "invalid x-api-key")
            return web.json_response(error, status=401)
        return await super().handle(request)


@dataclass
class TokenEndpoint:
    """``POST /token``: the refresh grant (one valid refresh token at a time, rotated by each
    use) and the client-credentials grant. ``mode``: ok | down (503) | hang | invalid_grant."""

    refresh_token: str = "rt-0"
    client_id: str = "qcc-client"
    client_secret: str = "client-secret-000000"
    expires_in: float = 3600
    rotate: bool = True
    mode: str = "ok"
    delay: float = 0.0
    calls: int = 0
    forms: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        form = dict(await request.post())
        self.forms.append({k: str(v) for k, v in form.items()})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "down":
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        doc: dict[str, Any] = {"token_type": "Bearer", "expires_in": self.expires_in}
        if form.get("grant_type") == "refresh_token":
            if self.mode == "invalid_grant" or form.get("refresh_token") != self.refresh_token:
                body = {"error": "invalid_grant", "error_description": f"bad {form}"}
                return web.json_response(body, status=400)
            if self.rotate:
                self.refresh_token = f"rt-{next(self._serial)}"
                doc["refresh_token"] = self.refresh_token
        elif form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = f"access-token-{len(self.issued) + 1:04d}-xxxxxxxxxxxx"
        self.issued.append(token)
        doc["access_token"] = token
        return web.json_response(doc)
