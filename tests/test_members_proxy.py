"""Member keys through the running app, with fake accounts: who may call, their limits (429, no
failover, no account penalised), usage attributed per member, and the keys kept secret."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import tomlkit
from aiohttp.test_utils import make_mocked_request
from conftest import RunCli
from proxyharness import Harness, config_data, wait_for

from qcc.config.keys import new_key, stored_form
from qcc.config.store import ConfigStore, atomic_write
from qcc.config.validate import config_from
from qcc.errors import ProxyError
from qcc.fake_upstream import FakeUpstream
from qcc.proxy.app import create_app
from qcc.proxy.guard import check_bind
from qcc.proxy.runtime import RUNTIME_KEY
from qcc.usage.store import UsageStore

MODEL = "claude-sonnet-4-5"
BODY = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
STREAM = BODY | {"stream": True}
COST = (12 * 3 + 7 * 15 + 5 * 3.75 + 30 * 0.3) / 1e6  # the fake account's usage, Sonnet prices
ALICE, BOB, CAROL = new_key(), new_key(), new_key()
ADMIN = "the-shared-access-key-0123456789"


def keys_table(**limits: dict[str, Any]) -> dict[str, Any]:
    table = {
        "alice": {"hash": stored_form(ALICE)},
        "bob": {"hash": stored_form(BOB)},
        "carol": {"hash": stored_form(CAROL), "enabled": False},
    }
    for name, extra in limits.items():
        table[name] |= extra
    return table


def gateway_data(urls: dict[str, str], keys: dict[str, Any], **proxy: Any) -> dict[str, Any]:
    data = config_data(urls, extra={"proxy": proxy} if proxy else None)
    data["clusters"]["test"]["keys"] = keys
    return data


@pytest.fixture
def gateway(aiohttp_server: Any, aiohttp_client: Any) -> Any:
    async def make(
        keys: dict[str, Any] | None = None, path: Path | None = None, **proxy: Any
    ) -> Harness:
        fake = FakeUpstream("a")
        server = await aiohttp_server(fake.app())
        urls = {"a": str(server.make_url("")).rstrip("/")}
        data = gateway_data(urls, keys_table() if keys is None else keys, **proxy)
        store = None
        if path is not None:
            atomic_write(path, tomlkit.dumps(data))
            store = ConfigStore(path)
        app = create_app(
            config_from(data), "test", monitor=False, store=store, reload_interval=0.05
        )
        return Harness({"a": fake}, {"a": server}, await aiohttp_client(app))

    return make


async def post(h: Harness, key: str | None = None, bearer: bool = False, body: Any = BODY) -> Any:
    headers = {}
    if key is not None:
        headers = {"authorization": f"Bearer {key}"} if bearer else {"x-api-key": key}
    return await h.client.post("/v1/messages", json=body, headers=headers)


async def test_no_key_or_wrong_key_is_401_and_reaches_no_account(gateway: Any) -> None:
    h = await gateway()
    for key in (None, "qcc", new_key(), ALICE[:-1]):
        resp = await post(h, key)
        assert resp.status == 401
        doc = await resp.json()
        assert doc["type"] == "error" and doc["error"]["type"] == "authentication_error"
        assert "member key" in doc["error"]["message"]
    assert h.upstreams["a"].requests == []


async def test_member_keys_as_x_api_key_or_bearer(gateway: Any) -> None:
    h = await gateway()
    assert (await post(h, ALICE)).status == 200
    assert (await post(h, BOB, bearer=True)).status == 200
    assert (await post(h, ALICE, body=STREAM)).status == 200
    assert len(h.upstreams["a"].requests) == 3


async def test_disabled_key_is_401(gateway: Any) -> None:
    h = await gateway()
    resp = await post(h, CAROL)
    assert resp.status == 401
    assert "disabled" in (await resp.json())["error"]["message"]
    assert h.upstreams["a"].requests == []


async def test_access_key_still_works_beside_member_keys(gateway: Any) -> None:
    h = await gateway(access_key=ADMIN)
    assert (await post(h, ADMIN)).status == 200
    assert (await post(h, ALICE, bearer=True)).status == 200
    assert (await post(h, "wrong-wrong-wrong")).status == 401
    # the admin routes want the access key when one is set; a member key is not enough
    assert (await h.client.get("/accounts/stats", headers={"x-api-key": ALICE})).status == 401
    assert (await h.client.get("/accounts/stats", headers={"x-api-key": ADMIN})).status == 200


async def test_rpm_over_limit_is_429_with_retry_after_and_no_failover(gateway: Any) -> None:
    h = await gateway(keys_table(alice={"rpm": 2}))
    assert (await post(h, ALICE)).status == 200
    assert (await post(h, ALICE)).status == 200
    resp = await post(h, ALICE)
    assert resp.status == 429
    assert 1 <= int(resp.headers["retry-after"]) <= 60
    doc = await resp.json()
    assert doc["error"]["type"] == "rate_limit_error"
    assert "2 requests per minute" in doc["error"]["message"]
    assert (await post(h, BOB)).status == 200  # the limit is alice's, not the account's
    assert len(h.upstreams["a"].requests) == 3
    stats = await (await h.client.get("/accounts/stats")).json()
    (account,) = stats["accounts"]
    assert account["state"] == "healthy" and account["failures"] == 0
    assert account["requests"] == 3


async def test_budget_stops_a_member_until_midnight_and_survives_a_restart(
    gateway: Any,
) -> None:
    keys = keys_table(alice={"budget_daily_usd": COST / 2})
    h = await gateway(keys)
    assert (await post(h, ALICE)).status == 200  # nothing spent yet: admitted
    resp = await post(h, ALICE)
    assert resp.status == 429
    assert int(resp.headers["retry-after"]) >= 1
    assert "daily budget" in (await resp.json())["error"]["message"]
    assert (await post(h, BOB)).status == 200
    assert len(h.upstreams["a"].requests) == 2
    await h.client.close()  # commits the usage
    again = await gateway(keys)  # a new process: today's spend is read back
    assert (await post(again, ALICE)).status == 429
    assert (await post(again, BOB)).status == 200


async def test_usage_is_attributed_per_member(gateway: Any, run_cli: RunCli) -> None:
    h = await gateway(access_key=ADMIN)
    for key in (ALICE, ALICE, BOB, ADMIN):
        assert (await post(h, key, body=STREAM)).status == 200
    await h.client.close()
    rows = {row.key: row for row in UsageStore().totals(by="key")}
    assert rows[("alice",)].requests == 2 and rows[("bob",)].requests == 1
    assert rows[("",)].requests == 1  # the shared access key: no member
    assert rows[("alice",)].cost_usd == pytest.approx(2 * COST)
    result = run_cli("usage", "--by", "key", "--cluster", "test", "--json")
    assert result.exit_code == 0, result.stderr
    named = {row["name"]: row["requests"] for row in result.json()["rows"]}
    assert named == {"": 1, "alice": 2, "bob": 1}
    listed = run_cli("key", "list", "--json")  # no config file here: an empty list
    assert listed.exit_code == 0


async def test_client_keys_never_reach_the_account_nor_the_logs(
    gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await gateway(keys_table(alice={"rpm": 1}), access_key=ADMIN)
    await post(h, ALICE)
    await post(h, ALICE)  # 429
    await post(h, BOB, bearer=True, body=STREAM)
    await post(h, CAROL)  # 401 disabled
    await post(h, ALICE + "x")  # 401 unknown
    await post(h, ADMIN)
    sent = json.dumps([[s.headers, s.body.decode()] for s in h.upstreams["a"].requests])
    assert len(h.upstreams["a"].requests) == 3
    for secret in (ALICE, BOB, CAROL, ADMIN):
        assert secret not in sent
        assert secret not in caplog.text
    assert "refused a request" in caplog.text  # the refusals are logged, without the key


async def test_disabling_a_key_takes_effect_on_reload(gateway: Any, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    h = await gateway(path=path)
    assert (await post(h, ALICE)).status == 200
    with ConfigStore(path).edit() as doc:
        doc["clusters"]["test"]["keys"]["alice"]["enabled"] = False  # type: ignore[index]
    runtime = h.app[RUNTIME_KEY]
    await wait_for(lambda: runtime.reloads == 1)
    assert (await post(h, ALICE)).status == 401  # the cached verification went with the reload
    assert (await post(h, BOB)).status == 200


@pytest.mark.parametrize(
    ("peer", "key", "allowed"),
    [
        ("127.0.0.1", None, True),  # qcc health / qcc top on the gateway's own machine
        ("192.0.2.7", None, False),
        ("192.0.2.7", "qcc-wrong", False),
        ("192.0.2.7", CAROL, False),  # disabled
        ("192.0.2.7", ALICE, True),
    ],
    ids=["loopback", "afar-no-key", "afar-wrong-key", "afar-disabled", "afar-member"],
)
async def test_admin_routes_without_access_key_want_a_member_key_from_afar(
    gateway: Any, peer: str, key: str | None, allowed: bool
) -> None:
    h = await gateway()
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default
    )
    headers = {} if key is None else {"x-api-key": key}
    request = make_mocked_request(
        "GET", "/accounts/stats", headers=headers, app=h.app, transport=transport
    )
    assert request.remote == peer
    assert h.runtime.authorized(request) is allowed


def test_member_keys_allow_listening_beyond_loopback() -> None:
    urls = {"a": "http://127.0.0.1:9"}
    with_keys = config_from(gateway_data(urls, keys_table()))
    check_bind(with_keys, "0.0.0.0", cluster="test")
    open_config = replace(
        with_keys, clusters={"test": replace(with_keys.clusters["test"], keys=())}
    )
    with pytest.raises(ProxyError, match="add member keys with 'qcc key add NAME'"):
        check_bind(open_config, "0.0.0.0", cluster="test")
    with pytest.raises(ProxyError, match="cannot be removed while"):
        check_bind(open_config, "0.0.0.0", cluster="test", running=True)
    check_bind(open_config, "127.0.0.1", cluster="test")
