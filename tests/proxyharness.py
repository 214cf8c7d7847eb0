"""Shared helpers for proxy tests: fake upstream accounts on localhost and a proxy in front."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import tomlkit
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from qcc.config.model import CREDENTIAL_KINDS, Config
from qcc.config.store import ConfigStore, atomic_write
from qcc.config.validate import config_from
from qcc.fake_upstream import Behavior, FakeUpstream
from qcc.proxy.app import create_app
from qcc.proxy.runtime import RUNTIME_KEY, Runtime

SECRET = "sk-ant-api03-TESTSECRETTESTSECRET-a1b2"


def cluster_config(upstreams: dict[str, str], **kwargs: Any) -> Config:
    """A config with one cluster ``test`` whose accounts point at the given base URLs."""
    return config_from(config_data(upstreams, **kwargs))


def config_data(
    upstreams: dict[str, str],
    *,
    strategy: str = "priority",
    sticky: bool = False,
    extra: dict[str, Any] | None = None,
    accounts: dict[str, dict[str, Any]] | None = None,
    rules: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    accs: dict[str, Any] = {}
    for name, url in upstreams.items():
        override = (accounts or {}).get(name, {})
        credential = (
            {} if set(override) & set(CREDENTIAL_KINDS) else {"api_key": f"{SECRET}-{name}"}
        )
        accs[name] = {"base_url": url} | credential | override
    data: dict[str, Any] = {
        "default_cluster": "test",
        "clusters": {"test": {"strategy": strategy, "sticky": sticky, "accounts": accs}},
    }
    if rules is not None:
        data["clusters"]["test"]["rules"] = rules
    for key, value in (extra or {}).items():
        data[key] = value
    return data


@dataclass
class Harness:
    upstreams: dict[str, FakeUpstream]
    servers: dict[str, TestServer]
    client: TestClient[web.Request, web.Application]
    app: web.Application = field(init=False)

    def __post_init__(self) -> None:
        self.app = self.client.app  # type: ignore[assignment]

    @property
    def runtime(self) -> Runtime:
        return self.app[RUNTIME_KEY]

    def member(self, name: str) -> Any:
        return self.runtime.pool.members[name]


MakeHarness = Callable[..., Awaitable[Harness]]


def harness_factory(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    async def make(
        *names: str,
        behaviors: dict[str, Behavior] | None = None,
        dead: tuple[str, ...] = (),
        monitor: bool = False,
        config_path: Any = None,
        **config_kwargs: Any,
    ) -> Harness:
        upstreams: dict[str, FakeUpstream] = {}
        servers: dict[str, TestServer] = {}
        urls: dict[str, str] = {}
        for name in names:
            if name in dead:
                urls[name] = "http://127.0.0.1:9"  # discard port: connection refused
                continue
            fake = FakeUpstream(name, (behaviors or {}).get(name))
            server = await aiohttp_server(fake.app())
            upstreams[name], servers[name] = fake, server
            urls[name] = str(server.make_url("")).rstrip("/")
        config = cluster_config(urls, **config_kwargs)
        store = None
        if config_path is not None:  # serve from a real file, with hot reload
            store = ConfigStore(config_path)
            atomic_write(config_path, tomlkit.dumps(config_data(urls, **config_kwargs)))
            config = store.load()
        app = create_app(config, "test", monitor=monitor, store=store, reload_interval=0.05)
        client = await aiohttp_client(app)
        return Harness(upstreams, servers, client)

    return make


async def wait_for(predicate: Callable[[], object], limit: float = 3.0) -> float:
    """Poll ``predicate`` every few ms until it is true; return how long that took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not predicate():
        if loop.time() - started > limit:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)
    return loop.time() - started
