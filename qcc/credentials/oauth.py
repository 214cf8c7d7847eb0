"""An account's OAuth2 access token: the refresh grant (RFC 6749 §6), or the client-credentials
grant (§4.4) when no refresh token is configured.

Each refresh posts one form to ``token_url`` (client id and secret in the body, as
``client_secret_post``), retried with backoff on a timeout, a network error, a 429 or a 5xx;
every attempt is bounded. A refused grant (``invalid_grant``, ``invalid_client`` …) is not
retried: it makes the account ``auth_failed`` with the error code as the reason. A rotated
refresh token is persisted at once (:mod:`qcc.credentials.tokens`) and used from then on. The
token is used for ``expires_in`` less a margin. Nothing secret ever reaches an error message:
only status codes and the grant's error code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

from qcc.config.model import OAuthSettings, check_header_value
from qcc.credentials.source import Fetched, FetchError
from qcc.credentials.tokens import TokenStore
from qcc.routing.classify import Outcome

log = logging.getLogger("qcc.credentials")

ATTEMPT_TIMEOUT = 10.0  # seconds for one request to the token endpoint
ATTEMPTS = 3
BACKOFF = 0.5  # seconds before the second attempt, doubled for the next
DEFAULT_EXPIRES_IN = 3600.0  # when the endpoint does not say
MARGIN = 60.0  # seconds before ``expires_in`` ends that the token counts as stale (at most)
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def lifetime(expires_in: float) -> float:
    """How long a token announced for ``expires_in`` seconds is used: less a margin of a minute,
    or of a tenth of its life for short-lived tokens."""
    return max(expires_in - min(MARGIN, expires_in * 0.1), 0.0)


class OAuthFetcher:
    """Fetches access tokens for one account; remembers the newest refresh token."""

    def __init__(
        self,
        settings: OAuthSettings,
        store: TokenStore | None,
        environ: Mapping[str, str] | None = None,
        *,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
        backoff: float = BACKOFF,
    ) -> None:
        self.settings = settings
        self.store = store
        self.environ = environ
        self.attempt_timeout = attempt_timeout
        self.backoff = backoff
        self.refresh_token: str | None = None
        self._unsaved = False  # the newest token is in memory only (the file write failed)

    def _env(self, name: str | None) -> str | None:
        if name is None:
            return None
        value = (os.environ if self.environ is None else self.environ).get(name)
        if not value:
            raise FetchError(f"environment variable {name} is not set; export it before starting")
        return value

    async def _current(self) -> str | None:
        """The newest refresh token: read from the store at every refresh, since another qcc
        (``qcc account test``, ``qcc health check``) may have rotated it meanwhile."""
        if self.refresh_token is not None and self._unsaved:
            return self.refresh_token  # rotated, but the file could not be written
        initial = self.settings.refresh_token
        if initial is None and self.settings.refresh_token_env is not None:
            initial = self._env(self.settings.refresh_token_env)
        if self.store is None:
            return self.refresh_token or initial
        self.store.initial = initial
        self.refresh_token = await asyncio.to_thread(self.store.load)
        return self.refresh_token

    def _form(self, refresh_token: str | None) -> dict[str, str]:
        s = self.settings
        form = {"client_id": s.client_id}
        if refresh_token is not None:
            form |= {"grant_type": "refresh_token", "refresh_token": refresh_token}
        else:
            form["grant_type"] = "client_credentials"
        secret = s.client_secret or self._env(s.client_secret_env)
        if secret is not None:
            form["client_secret"] = secret
        if s.scope is not None:
            form["scope"] = s.scope
        return form

    async def __call__(self) -> Fetched:
        refresh_token = await self._current()
        form = self._form(refresh_token)
        problem = FetchError("token endpoint not reached", Outcome.NETWORK)
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                status, doc = await self._post(form)
            except TimeoutError:
                problem = FetchError(
                    f"token endpoint did not answer within {self.attempt_timeout:g}s",
                    Outcome.TIMEOUT,
                )
                continue
            except (aiohttp.ClientError, OSError) as exc:
                problem = FetchError(
                    f"token endpoint unreachable ({type(exc).__name__})", Outcome.NETWORK
                )
                continue
            if status == 429 or status >= 500:
                problem = FetchError(f"token endpoint answered HTTP {status}", Outcome.SERVER_ERROR)
                continue
            if status != 200:
                raise FetchError(_refused(status, doc))
            return await self._accept(doc)
        raise problem

    async def _post(self, form: dict[str, str]) -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=self.attempt_timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=True) as session,
            session.post(
                self.settings.token_url, data=form, headers={"accept": "application/json"}
            ) as response,
        ):
            body = await response.content.read(1 << 16)
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            return response.status, doc

    async def _accept(self, doc: Any) -> Fetched:
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise FetchError("token endpoint answered without an access_token")
        check_header_value(token, "access token from the token endpoint")
        expires_in = doc.get("expires_in", DEFAULT_EXPIRES_IN)
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            expires_in = DEFAULT_EXPIRES_IN
        rotated = doc.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self.refresh_token:
            self.refresh_token = rotated
            if self.store is not None:
                try:
                    await asyncio.to_thread(self.store.save, rotated)
                    self._unsaved = False
                except OSError as exc:
                    self._unsaved = True
                    log.error(
                        "could not save the rotated refresh token to %s (%s); it is kept in "
                        "memory only and lost when qcc stops",
                        self.store.path,
                        type(exc).__name__,
                    )
        return Fetched(token, lifetime(float(expires_in)))


def _refused(status: int, doc: Any) -> str:
    """Why the endpoint refused, by its error code only (its description may quote anything)."""
    code = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(code, str) and _ERROR_CODE.match(code):
        fix = (
            "; the refresh token is expired or revoked: put a new one in the config"
            if code == "invalid_grant"
            else ""
        )
        return f"token endpoint refused the grant ({code}, HTTP {status}){fix}"
    return f"token endpoint refused the grant (HTTP {status})"
