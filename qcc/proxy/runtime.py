"""The state one running proxy owns, in one place: config, account pool, retry budget, HTTP client.

Created and torn down by the app's cleanup context (:mod:`qcc.proxy.app`); handlers reach it
through ``request.app[RUNTIME_KEY]``. There is no module-level mutable state anywhere in qcc.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from qcc.accounts.pool import AccountPool
from qcc.config.model import Cluster, Config
from qcc.net.client import UpstreamClient
from qcc.proxy.guard import CALLER, EdgePolicy, is_loopback
from qcc.proxy.members import KeyGate
from qcc.proxy.usage import Ledger
from qcc.routing.budget import RetryBudget
from qcc.usage.pricing import price_table

if TYPE_CHECKING:
    from qcc.shared.sync import SharedSync


@dataclass(eq=False)
class Runtime:
    config: Config
    cluster_name: str
    pool: AccountPool
    budget: RetryBudget
    client: UpstreamClient  # every connection to the accounts: traffic and health probes
    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    requests: int = 0
    reloads: int = 0
    reload_error: str | None = None
    access: Callable[[str], None] = field(default=logging.getLogger("qcc.access").info)
    listen_host: str = "127.0.0.1"  # where the proxy listens (the bind rule is checked on reload)
    edge: EdgePolicy = field(init=False)  # Host/Origin rules, rebuilt with each config
    ledger: Ledger | None = None  # records usage and cost (None: not persisted, e.g. the demo)
    keys: KeyGate = field(init=False)  # the cluster's member keys, their rpm windows and spend
    shared: SharedSync | None = None  # [shared]: the pool shared through Redis (qcc.shared)

    def __post_init__(self) -> None:
        self.edge = EdgePolicy(self.config.proxy, self.listen_host)
        self.keys = KeyGate(self.pool.cluster.keys)

    @property
    def cluster(self) -> Cluster:
        return self.pool.cluster

    def apply(self, config: Config) -> None:
        """Adopt a reloaded config. The caller has validated it; this cannot fail."""
        cluster = config.cluster(self.cluster_name)
        if config.retry != self.config.retry:
            self.budget = RetryBudget(config.retry)
        if config.shared != self.config.shared:
            logging.getLogger("qcc.proxy").warning(
                "[shared] changed in config.toml; it takes effect when the proxy restarts"
            )
        if self.ledger is not None and config.pricing != self.config.pricing:
            self.ledger.recorder.set_prices(price_table(config.pricing))
        self.config = config  # timeouts are read from it by every attempt
        self.edge = EdgePolicy(config.proxy, self.listen_host)
        now = asyncio.get_running_loop().time()
        self.pool.apply(cluster, config.health, now=now)
        self.keys.apply(cluster.keys)
        self.pool.recheck(now, time.time())  # a lowered budget or a new headroom_min
        self.reloads += 1

    def authorized(self, request: web.Request) -> bool:
        """When ``proxy.access_key`` is set, the client must present it. Without it, a cluster
        with member keys wants one from clients beyond loopback (the admin routes). An API
        request the edge admitted (:data:`CALLER`, member key or access key) is authorized."""
        if CALLER in request:
            return True
        key = self.config.proxy.access_key
        if key is None:
            if not self.keys.active or is_loopback(request.remote or ""):
                return True
            return self.keys.identify(request.headers) is not None
        expected = key.encode()
        api_key = request.headers.get("x-api-key")
        if api_key is not None and hmac.compare_digest(api_key.encode(), expected):
            return True
        auth = request.headers.get("authorization", "")
        # Claude Code may send both headers (ANTHROPIC_API_KEY and ANTHROPIC_AUTH_TOKEN set):
        # either one matching is enough.
        return auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].encode(), expected)


RUNTIME_KEY = web.AppKey("qcc_runtime", Runtime)
