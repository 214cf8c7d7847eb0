"""qcc.shared with an in-process Redis (fakeredis): two pools sharing verdicts, limits, sessions
and counters through it, ticked by hand. The real engine and real processes: test_shared_e2e."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest

from qcc.accounts.observe import Observation, Source
from qcc.accounts.pool import AccountPool
from qcc.config.validate import config_from
from qcc.health.state import State
from qcc.routing.classify import Outcome
from qcc.routing.ratelimit import Limits, Quota
from qcc.shared import keys as K
from qcc.shared.client import SharedClient
from qcc.shared.counters import APPLY, Counters
from qcc.shared.settings import Target
from qcc.shared.sync import SharedSync

USAGE = {"input_tokens": 10, "output_tokens": 5}


def pool(budget: float | None = None) -> AccountPool:
    main: dict[str, Any] = {"base_url": "http://127.0.0.1:9", "api_key": "sk-ant-x-main-0001"}
    if budget is not None:
        main["budget_daily_usd"] = budget
    config = config_from(
        {
            "health": {"failure_threshold": 1},
            "clusters": {
                "team": {
                    "strategy": "priority",
                    "accounts": {
                        "main": main,
                        "spare": {"base_url": "http://127.0.0.1:9", "api_key": "sk-ant-x-spare-01"},
                    },
                }
            },
        }
    )
    return AccountPool(config.cluster("team"), config.health, now=time.monotonic())


def sync_of(server: fakeredis.FakeServer, p: AccountPool, ident: str) -> SharedSync:
    client = SharedClient(Target("redis://127.0.0.1:1/0"))
    client.redis = fakeredis.FakeAsyncRedis(server=server)
    sync = SharedSync(p, client, ident)
    p.listener = sync
    return sync


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def fail(p: AccountPool, name: str) -> None:
    seen = Observation(Source.TRAFFIC, Outcome.SERVER_ERROR, "HTTP 500", status=500)
    p.report(p.members[name], seen, time.monotonic(), time.time())


async def test_a_verdict_is_adopted_once_by_the_others_never_by_its_author(
    server: fakeredis.FakeServer,
) -> None:
    pa, pb = pool(), pool()
    a, b = sync_of(server, pa, "A"), sync_of(server, pb, "B")
    fail(pa, "main")
    assert pa.members["main"].health.state is State.EJECTED
    assert await a.tick() and await b.tick()
    main = pb.members["main"].health
    assert main.state is State.EJECTED
    assert "from instance A" in main.reason and main.until is not None
    assert abs(main.until - (pa.members["main"].health.until or 0.0)) < 0.05  # the same end
    assert pb.select(set(), time.monotonic()) is pb.members["spare"]
    # B's adoption is not published back; A keeps its own verdict
    assert await b.tick() and await a.tick()
    assert "from instance" not in pa.members["main"].health.reason
    # adopted once: the user resets it on B, the same verdict does not take it out again
    pb.reset(pb.members["main"], time.monotonic())
    assert await b.tick()
    assert pb.members["main"].health.state is State.HEALTHY


async def test_a_verdict_expires_with_its_end(server: fakeredis.FakeServer) -> None:
    pa = pool()
    a = sync_of(server, pa, "A")
    fail(pa, "main")
    await a.tick()
    ttl = await a.client.redis.pttl(a.keys.verdict("main"))
    until = pa.members["main"].health.until
    assert until is not None and 0 < ttl <= (until - time.monotonic()) * 1000 + 50


async def test_announced_limits_reach_the_other_instance(server: fakeredis.FakeServer) -> None:
    pa, pb = pool(), pool()
    a, b = sync_of(server, pa, "A"), sync_of(server, pb, "B")
    reset = time.time() + 60
    limits = Limits(quotas=(Quota("tokens", 1000, 1, reset),))
    pa.note_limits(pa.members["main"], limits, time.monotonic(), time.time())
    await a.tick()
    await b.tick()
    assert pb.members["main"].limits == limits
    assert pb.members["main"].full_until is not None  # out of room: skipped on B too
    await b.tick()
    assert await a.client.redis.get(a.keys.limits("main")) is not None


async def test_a_session_bound_on_one_instance_is_recalled_on_the_other(
    server: fakeredis.FakeServer,
) -> None:
    pa, pb = pool(), pool()
    a, b = sync_of(server, pa, "A"), sync_of(server, pb, "B")
    await b.tick()  # B knows Redis is up
    pa.remember_session("sess-1", pa.members["spare"], time.monotonic())
    await a.tick()
    await b.recall("sess-1")
    assert pb.sticky.get("sess-1", time.monotonic()) == "spare"
    await b.recall("sess-unknown")
    assert pb.sticky.get("sess-unknown", time.monotonic()) is None


async def test_spend_is_judged_on_the_team_total(server: fakeredis.FakeServer) -> None:
    pa, pb = pool(budget=1.0), pool(budget=1.0)
    a, b = sync_of(server, pa, "A"), sync_of(server, pb, "B")
    for p, s in ((pa, a), (pb, b)):
        s.add("main", USAGE, 0.3, "ann")
        p.add_spend(p.members["main"], 0.3, time.monotonic(), time.time())
    await a.tick()
    await b.tick()
    assert pb.members["main"].spend.today == pytest.approx(0.6)
    assert pb.members["main"].health.state is State.HEALTHY
    a.add("main", USAGE, 0.5)
    pa.add_spend(pa.members["main"], 0.5, time.monotonic(), time.time())
    await a.tick()
    await b.tick()
    assert pb.members["main"].health.state is State.EXHAUSTED  # 1.1 of 1.0, 0.3 of it on B
    assert "daily budget" in pb.members["main"].health.reason
    assert b.member_spend_today("ann") == pytest.approx(0.6)
    usage = await a.client.redis.hgetall(a.keys.day("usage", time.time()))
    assert usage[b"a:main:requests"] == b"3" and usage[b"a:main:input_tokens"] == b"30"
    assert usage[b"k:ann:requests"] == b"2"


async def test_a_batch_sent_again_after_a_lost_reply_counts_once(
    server: fakeredis.FakeServer,
) -> None:
    p = pool()
    s = sync_of(server, p, "A")
    s.add("main", USAGE, 0.25)
    batch = s.counters.freeze(time.time())
    assert batch is not None
    keys = s.keys
    names = [keys.batch(s.id), keys.day("usage", batch.wall)]
    names += [keys.day("spend", batch.wall), keys.month(batch.wall), keys.gens[2]]
    # Redis applied it, but the reply never came back: the batch stays pending...
    assert await s.client.redis.eval(APPLY, 5, *names, *batch.args(60, 60, 60)) == 1
    s.add("main", USAGE, 0.25)  # ...and a new request waits for the next batch
    assert await s.tick()  # the same batch again: a no-op; the counters are not doubled
    assert await s.tick()  # then the next one
    spend = await s.client.redis.hget(keys.day("spend", time.time()), "a:main")
    assert float(spend) == pytest.approx(0.5)
    assert s.counters.batch is None


async def test_redis_down_serves_locally_and_adds_what_waited_once_back(
    server: fakeredis.FakeServer,
) -> None:
    pa = pool()
    a = sync_of(server, pa, "A")
    assert await a.tick() and a.client.up
    server.connected = False
    a.add("main", USAGE, 0.1)
    fail(pa, "main")
    pa.remember_session("sess-2", pa.members["spare"], time.monotonic())
    assert not await a.tick()
    assert not a.client.up and a.client.backoff.current == 0.25
    assert not await a.tick()
    assert a.client.backoff.current == 0.5
    await a.recall("sess-3")  # skipped at once while down
    a.add("main", USAGE, 0.1)
    server.connected = True
    assert await a.tick() and a.client.up
    assert await a.tick()
    redis = a.client.redis
    spend = await redis.hget(a.keys.day("spend", time.time()), "a:main")
    assert float(spend) == pytest.approx(0.2)
    assert await redis.get(a.keys.verdict("main")) is not None
    assert await redis.get(a.keys.sticky("sess-2")) == b"spare"


async def test_instances_are_listed_while_they_beat(server: fakeredis.FakeServer) -> None:
    a, b = sync_of(server, pool(), "A"), sync_of(server, pool(), "B")
    await a.tick()
    await b.tick()
    assert sorted(i for i, _ in b.instances) == ["A", "B"]
    ttl = await b.client.redis.ttl(b.keys.instances)
    assert 0 < ttl <= K.INSTANCE_TTL


def test_counters_keep_unsent_spend_until_applied() -> None:
    counters = Counters()
    counters.add("main", USAGE, 0.5, "ann")
    batch = counters.freeze(0.0)
    assert batch is not None and counters.freeze(1.0) is batch  # resent until confirmed
    counters.add("main", USAGE, 0.25)
    assert counters.unsent_usd("a:main") == pytest.approx(0.75)
    counters.applied(batch)
    assert counters.unsent_usd("a:main") == pytest.approx(0.25)
    assert counters.unsent_usd("k:ann") == 0.0


async def test_a_member_keys_budget_is_judged_on_the_teams_spend(
    server: fakeredis.FakeServer,
) -> None:
    from qcc.config.model import MemberKey
    from qcc.proxy.members import KeyGate

    pa, pb = pool(), pool()
    a, b = sync_of(server, pa, "A"), sync_of(server, pb, "B")
    ann = MemberKey("ann", b"salt", b"digest", budget_daily_usd=0.45)
    gates = [KeyGate((ann,)), KeyGate((ann,))]
    a.members, b.members = gates
    wall = time.time()
    a.add("main", USAGE, 0.4, "ann")
    gates[0].add_spend("ann", 0.4, wall)  # what the ledger does for the member's own request
    b.add("main", USAGE, 0.1, "ann")
    gates[1].add_spend("ann", 0.1, wall)
    await a.tick()
    await b.tick()
    await a.tick()
    for gate in gates:  # each instance alone is under the member's 0.45; the team is over
        assert gate.spent_today("ann", time.time()) == pytest.approx(0.5)
        assert gate.spent_today("ann", time.time()) >= (ann.budget_daily_usd or 0.0)
