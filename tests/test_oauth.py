"""OAuth2 credentials (issue 15): the refresh grant with rotation persisted in the state dir,
the client-credentials grant, refused grants, an endpoint that is down, and one refresh for
any number of requests."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from credfakes import KeyedUpstream, TokenEndpoint
from proxyharness import wait_for

from qcc.config.model import Account, Credential, OAuthSettings
from qcc.config.validate import config_from
from qcc.credentials.keeper import source_for
from qcc.credentials.oauth import OAuthFetcher, lifetime
from qcc.credentials.source import FetchError
from qcc.credentials.tokens import TokenStore, tokens_dir
from qcc.health.probe import check_member
from qcc.health.state import State
from qcc.net.client import UpstreamClient
from qcc.proxy.app import create_app
from qcc.proxy.runtime import RUNTIME_KEY
from qcc.routing.classify import Outcome

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}


async def endpoint_url(aiohttp_server: Any, endpoint: TokenEndpoint) -> str:
    server = await aiohttp_server(endpoint.app())
    return str(server.make_url("/token"))


def settings(url: str, **overrides: Any) -> OAuthSettings:
    base: dict[str, Any] = {
        "token_url": url,
        "client_id": "qcc-client",
        "client_secret": "client-secret-000000",
        "refresh_token": "rt-0",
    }
    return OAuthSettings(**(base | overrides))


def fetcher(url: str, path: Path, **overrides: Any) -> OAuthFetcher:
    s = settings(url, **overrides)
    return OAuthFetcher(s, TokenStore(path, None), attempt_timeout=0.3, backoff=0.01)


async def test_rotated_refresh_token_is_persisted_and_used_after_a_restart(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    endpoint = TokenEndpoint(expires_in=600)
    url = await endpoint_url(aiohttp_server, endpoint)
    path = tmp_path / "oauth" / "c.a.json"
    got = await fetcher(url, path)()
    assert got.secret == "access-token-0001-xxxxxxxxxxxx"
    assert got.lifetime == lifetime(600) == 540
    assert endpoint.forms[0]["grant_type"] == "refresh_token"
    assert endpoint.forms[0]["refresh_token"] == "rt-0"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert "rt-1" in path.read_text()
    # A new process (same config, initial token rt-0, now spent) uses the rotated one.
    again = await fetcher(url, path)()
    assert again.secret == "access-token-0002-xxxxxxxxxxxx"
    assert endpoint.forms[1]["refresh_token"] == "rt-1"
    assert "rt-2" in path.read_text()


async def test_a_new_initial_token_in_the_config_wins_over_the_saved_one(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    endpoint = TokenEndpoint()
    url = await endpoint_url(aiohttp_server, endpoint)
    path = tmp_path / "t.json"
    await fetcher(url, path)()  # saves rt-1, descended from rt-0
    endpoint.refresh_token = "rt-fresh"  # the user got a new one and put it in the config
    await fetcher(url, path, refresh_token="rt-fresh")()
    assert endpoint.forms[-1]["refresh_token"] == "rt-fresh"


async def test_client_credentials_grant_without_a_refresh_token(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    endpoint = TokenEndpoint()
    url = await endpoint_url(aiohttp_server, endpoint)
    s = settings(url, refresh_token=None, scope="llm", header="x-api-key")
    source = source_for(Credential("oauth", url, oauth=s), "c", "a", token_dir=tmp_path)
    assert source is not None
    header = await source.fresh(0, 5)
    assert header == ("x-api-key", "access-token-0001-xxxxxxxxxxxx")
    form = endpoint.forms[0]
    assert form["grant_type"] == "client_credentials" and form["scope"] == "llm"
    assert "refresh_token" not in form


async def test_bearer_header_and_secrets_from_the_environment(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    endpoint = TokenEndpoint()
    url = await endpoint_url(aiohttp_server, endpoint)
    s = OAuthSettings(
        url, "qcc-client", client_secret_env="GW_SECRET", refresh_token_env="GW_REFRESH"
    )
    environ = {"GW_SECRET": "client-secret-000000", "GW_REFRESH": "rt-0"}
    credential = Credential("oauth", url, oauth=s)
    source = source_for(credential, "c", "a", environ=environ, token_dir=tmp_path)
    assert source is not None
    assert await source.fresh(0, 5) == ("authorization", "Bearer access-token-0001-xxxxxxxxxxxx")


async def test_invalid_grant_is_an_auth_failure_that_quotes_nothing(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    endpoint = TokenEndpoint(mode="invalid_grant")
    url = await endpoint_url(aiohttp_server, endpoint)
    with pytest.raises(FetchError) as caught:
        await fetcher(url, tmp_path / "t.json")()
    error = caught.value
    assert error.outcome is Outcome.AUTH_FAILED
    assert "invalid_grant" in str(error) and "HTTP 400" in str(error)
    # The endpoint's description echoes the form: none of it reaches the message.
    assert "rt-0" not in str(error) and "client-secret" not in str(error)
    assert endpoint.calls == 1  # a refused grant is not retried


async def test_endpoint_down_is_retried_then_counted_then_back(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    endpoint = TokenEndpoint(mode="down")
    url = await endpoint_url(aiohttp_server, endpoint)
    clock = [100.0]
    source = source_for(
        Credential("oauth", url, oauth=settings(url)),
        "c",
        "a",
        token_dir=tmp_path,
        clock=lambda: clock[0],
    )
    assert source is not None
    source._fetch = fetcher(url, tmp_path / "c.a.json")  # short timeouts and backoff
    with pytest.raises(FetchError) as caught:
        await source.fresh(clock[0], 5)
    assert caught.value.outcome is Outcome.SERVER_ERROR
    assert "HTTP 503" in str(caught.value)
    assert endpoint.calls == 3  # retried with backoff within one refresh
    with pytest.raises(FetchError):  # before the retry time: not called again
        await source.fresh(clock[0], 5)
    assert endpoint.calls == 3
    endpoint.mode = "ok"
    clock[0] = source.retry_at
    assert (await source.fresh(clock[0], 5))[1].startswith("Bearer access-token-0001")
    assert source.last_result() == "ok"


async def test_endpoint_that_hangs_is_a_timeout(aiohttp_server: Any, tmp_path: Path) -> None:
    endpoint = TokenEndpoint(mode="hang")
    url = await endpoint_url(aiohttp_server, endpoint)
    started = time.monotonic()
    hasty = OAuthFetcher(settings(url), None, attempt_timeout=0.1, backoff=0.01)
    with pytest.raises(FetchError) as caught:
        await hasty()
    assert caught.value.outcome is Outcome.TIMEOUT
    assert endpoint.calls == 3
    assert time.monotonic() - started < 2  # three bounded attempts


def test_kill_9_during_writes_leaves_a_whole_token(tmp_path: Path) -> None:
    path = tmp_path / "oauth" / "c.a.json"
    writer = textwrap.dedent(
        f"""
        import itertools, sys
        from pathlib import Path
        from qcc.credentials.tokens import TokenStore
        store = TokenStore(Path({str(path)!r}), None)
        for i in itertools.count():
            store.save(f"rt-{{i}}-" + "x" * 4000)
            if i == 5:
                print("writing", flush=True)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "writing\n"
    time.sleep(0.05)
    process.kill()  # SIGKILL, mid-write or between writes
    process.communicate(timeout=5)
    token = TokenStore(path, None).load()
    assert token is not None and re.fullmatch(r"rt-\d+-x{4000}", token)
    assert os.stat(path).st_mode & 0o777 == 0o600
    # A kill in the instant a temp file has a name may leave it: the next write removes it.
    TokenStore(path, None).save("rt-next")
    assert [p.name for p in path.parent.iterdir()] == ["c.a.json"]


# ---- through the proxy --------------------------------------------------------------------


async def oauth_proxy(
    aiohttp_server: Any,
    aiohttp_client: Any,
    endpoint: TokenEndpoint,
    upstream: KeyedUpstream,
) -> TestClient[Any, Any]:
    url = await endpoint_url(aiohttp_server, endpoint)
    account_server = await aiohttp_server(upstream.app())
    oauth = {
        "token_url": url,
        "client_id": "qcc-client",
        "client_secret": "client-secret-000000",
        "refresh_token": "rt-0",
    }
    account = {"base_url": str(account_server.make_url("")).rstrip("/"), "oauth": oauth}
    config = config_from(
        {"timeouts": {"connect": 3}, "clusters": {"test": {"accounts": {"main": account}}}}
    )
    return await aiohttp_client(create_app(config, "test", monitor=False, persist_usage=False))


async def test_two_hundred_requests_across_an_expiry_make_one_refresh(
    aiohttp_server: Any, aiohttp_client: Any
) -> None:
    endpoint = TokenEndpoint(delay=0.1)
    upstream = KeyedUpstream("main", endpoint.issued)
    client = await oauth_proxy(aiohttp_server, aiohttp_client, endpoint, upstream)
    assert endpoint.calls == 1  # fetched at start-up
    source = client.app[RUNTIME_KEY].pool.members["main"].source
    before = [asyncio.ensure_future(client.post("/v1/messages", json=BODY)) for _ in range(100)]
    await asyncio.sleep(0)
    source.stale_at = asyncio.get_running_loop().time()  # the token expires now
    after = [asyncio.ensure_future(client.post("/v1/messages", json=BODY)) for _ in range(100)]
    answers = await asyncio.gather(*before, *after)
    assert [a.status for a in answers] == [200] * 200
    assert endpoint.calls == 2  # one refresh for every request that found it stale
    assert upstream.refused == 0
    sent = {
        v for r in upstream.requests for k, v in r.headers.items() if k.lower() == "authorization"
    }
    assert f"Bearer {endpoint.issued[1]}" in sent  # the new token, from the one refresh


async def test_401_refreshes_the_token_once_and_retries(
    aiohttp_server: Any, aiohttp_client: Any
) -> None:
    endpoint = TokenEndpoint()
    newest: list[str] = []
    upstream = KeyedUpstream("main", newest)
    client = await oauth_proxy(aiohttp_server, aiohttp_client, endpoint, upstream)
    # The gateway revoked the token it issued: only a new one is accepted.
    newest.append("access-token-0002-xxxxxxxxxxxx")
    answers = await asyncio.gather(*(client.post("/v1/messages", json=BODY) for _ in range(20)))
    assert [a.status for a in answers] == [200] * 20
    assert endpoint.calls == 2
    member = client.app[RUNTIME_KEY].pool.members["main"]
    assert member.health.state is State.HEALTHY
    assert "rt-2" in (tokens_dir() / "test.main.json").read_text()  # the state dir


async def test_invalid_grant_through_the_proxy(aiohttp_server: Any, aiohttp_client: Any) -> None:
    endpoint = TokenEndpoint(mode="invalid_grant")
    client = await oauth_proxy(
        aiohttp_server, aiohttp_client, endpoint, KeyedUpstream("main", endpoint.issued)
    )
    member = client.app[RUNTIME_KEY].pool.members["main"]
    assert member.health.state is State.AUTH_FAILED
    assert "invalid_grant" in member.health.reason
    answer = await client.post("/v1/messages", json=BODY)
    assert answer.status == 503 and answer.headers["x-should-retry"] == "false"
    assert "invalid_grant" in await answer.text()
    stats = await (await client.get("/accounts/stats")).json()
    credential = stats["accounts"][0]["credential"]
    assert credential["source"] == "oauth" and credential["expires"] is None
    assert credential["last_result"].startswith("failed: token endpoint refused the grant")
    assert "client-secret-000000" not in str(stats) and "rt-0" not in str(stats)


async def test_probe_refused_fetches_a_new_token_once_and_probes_again(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    endpoint = TokenEndpoint()
    url = await endpoint_url(aiohttp_server, endpoint)
    newest: list[str] = []
    upstream = KeyedUpstream("main", newest)
    account_url = str((await aiohttp_server(upstream.app())).make_url("")).rstrip("/")
    credential = Credential("oauth", url, oauth=settings(url))
    source = source_for(credential, "c", "a", token_dir=tmp_path)
    assert source is not None
    await source.fresh(asyncio.get_running_loop().time(), 5)
    newest.append("access-token-0002-xxxxxxxxxxxx")  # the first one was revoked
    account = Account("a", account_url, credential)
    client = UpstreamClient()
    try:
        result = await check_member(client, account, source, None, 5)
    finally:
        client.close()
    assert result.ok and result.status == 200
    assert endpoint.calls == 2 and upstream.refused == 1


async def test_stale_token_and_endpoint_down_takes_the_account_out_until_it_is_back(
    aiohttp_server: Any, aiohttp_client: Any
) -> None:
    endpoint = TokenEndpoint()
    url = await endpoint_url(aiohttp_server, endpoint)
    gw, spare = KeyedUpstream("gw", endpoint.issued), KeyedUpstream("spare", {"spare-key-0000000"})
    urls = [str((await aiohttp_server(u.app())).make_url("")).rstrip("/") for u in (gw, spare)]
    oauth = {
        "token_url": url,
        "client_id": "qcc-client",
        "client_secret": "client-secret-000000",
        "refresh_token": "rt-0",
    }
    accounts = {
        "gw": {"base_url": urls[0], "oauth": oauth, "priority": 0},
        "spare": {"base_url": urls[1], "api_key": "spare-key-0000000", "priority": 1},
    }
    config = config_from({"clusters": {"test": {"strategy": "priority", "accounts": accounts}}})
    client = await aiohttp_client(create_app(config, "test", monitor=False, persist_usage=False))
    member = client.app[RUNTIME_KEY].pool.members["gw"]
    member.source._fetch.backoff = 0.01  # the endpoint's retries, quicker
    endpoint.mode = "down"
    member.source.stale_at = asyncio.get_running_loop().time()  # the token expires now
    assert (await client.post("/v1/messages", json=BODY)).status == 200  # failed over
    assert member.header is None and endpoint.calls == 1 + 3
    assert "HTTP 503" in (member.stats.last_error or "")
    for _ in range(5):  # not picked while it has no usable token: no failover, no new call
        assert (await client.post("/v1/messages", json=BODY)).status == 200
    assert len(gw.requests) == 0 and endpoint.calls == 4 and len(spare.requests) == 6
    endpoint.mode = "ok"  # back: the keeper's retry (after its backoff) brings a new token
    await wait_for(lambda: member.header is not None, limit=3)
    assert (await client.post("/v1/messages", json=BODY)).status == 200
    assert len(gw.requests) == 1
