"""Usage and cost of a running proxy: recorded in the usage store, and added to each account.

The app's cleanup context owns one :class:`Ledger` (:func:`open_ledger` before ``yield``,
:func:`close_ledger` after). Every request whose usage is known is recorded once, from
``Exchange.settle``: a row of the SQLite store (:class:`~qcc.usage.store.UsageRecorder`, written
off the event loop in batches) and the account's spend today / this month (its budgets). When the
proxy starts, the store's all-time totals and this day's and month's spend seed each account,
so ``/accounts/stats`` and budgets survive restarts.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from qcc.accounts.member import Member
from qcc.accounts.pool import AccountPool
from qcc.proxy.members import KeyGate
from qcc.usage.budget import day_start, month_start
from qcc.usage.pricing import PriceTable
from qcc.usage.store import UsageRecorder, UsageStore

if TYPE_CHECKING:
    from qcc.shared.sync import SharedSync

log = logging.getLogger("qcc.usage")

MODEL_NEAR = 4096  # bytes of the request body searched first for its "model" (it usually leads)
UNKNOWN_MODEL = "unknown"
_MODEL_VALUE = re.compile(rb'\s*:\s*"([^"\\]{1,200})"')


def requested_model(body: bytes) -> str:
    """The ``model`` of a Messages request body, without parsing it (bodies reach 200 KB).

    Only a key can match ``"model"``: a quote inside a JSON string is escaped. Clients that send
    the model before any nested object (Claude Code) cost a search of the first few KB;
    otherwise (the Python SDK sends it after ``messages``, before ``system`` and ``tools``) the
    last ``"model"`` key with a string value wins, found searching backwards, so a ``model``
    inside a message's tool input does not.
    """
    at = body.find(b'"model"', 0, MODEL_NEAR)
    # before any nested object opens, a key is the top level's
    top = at != -1 and body.count(b"{", 0, at) == 1
    if top and (found := _MODEL_VALUE.match(body, at + 7)) is not None:
        return found.group(1).decode("utf-8", "replace")
    end = len(body)
    while (at := body.rfind(b'"model"', 0, end)) != -1:
        if (found := _MODEL_VALUE.match(body, at + 7)) is not None:
            return found.group(1).decode("utf-8", "replace")
        end = at  # e.g. a tool schema's "model": {...}
    return UNKNOWN_MODEL


class Ledger:
    """Records each request's usage in the store and in its account's spend."""

    def __init__(self, recorder: UsageRecorder, pool: AccountPool) -> None:
        self.recorder = recorder
        self.pool = pool
        self.keys: KeyGate | None = None  # member keys: their spend today, for their budgets
        self.shared: SharedSync | None = None  # [shared]: usage and spend counted team-wide

    def record(
        self,
        member: Member,
        body: bytes,
        usage: Mapping[str, int],
        now: float,
        wall_now: float,
        key: str = "",
    ) -> None:
        """One request's final usage (skipped when there is none): the model is the one the
        account was asked for (after its ``models`` rename). ``key``: the member key's name
        (``""``: none, or the access key)."""
        if not usage:
            return
        model = requested_model(body)
        renames = member.account.models
        if renames:
            model = renames.get(model, model)
        cost = self.recorder.add(wall_now, self.pool.cluster.name, member.name, model, usage, key)
        if self.shared is not None:
            self.shared.add(member.name, usage, cost or 0.0, key or None)
        if cost:
            self.pool.add_spend(member, cost, now, wall_now)
            if key and self.keys is not None:
                self.keys.add_spend(key, cost, wall_now)


def _seeds(
    store: UsageStore, cluster: str, accounts: list[str], wall_now: float
) -> tuple[dict[str, dict[str, object]], dict[str, tuple[float, float]]]:
    """All-time totals and today's / this month's spend per account (in a worker thread)."""
    totals: dict[str, dict[str, object]] = dict(store.account_totals(cluster))
    today, month = day_start(wall_now), month_start(wall_now)
    spent = {
        name: (store.spend(name, cluster, today), store.spend(name, cluster, month))
        for name in accounts
    }
    return totals, spent


async def open_ledger(path: Path, prices: PriceTable, pool: AccountPool, wall_now: float) -> Ledger:
    """Seed the pool from the store at ``path`` (off the loop) and start its recorder."""
    names = list(pool.members)
    try:
        totals, spent = await asyncio.to_thread(
            _seeds, UsageStore(path), pool.cluster.name, names, wall_now
        )
    except (OSError, sqlite3.Error) as exc:  # serve anyway: usage is history, not routing
        log.warning("cannot read past usage from %s (totals and budgets start at 0): %s", path, exc)
        totals, spent = {}, {}
    pool.seed_usage(totals, spent, asyncio.get_running_loop().time(), wall_now)
    recorder = UsageRecorder(path, prices)
    recorder.start()
    return Ledger(recorder, pool)


async def close_ledger(ledger: Ledger) -> None:
    """Commit what is pending and stop the writer thread (joined off the loop)."""
    await asyncio.to_thread(ledger.recorder.close)


async def seed_member_spend(ledger: Ledger, keys: KeyGate, path: Path, wall_now: float) -> None:
    """Attach the member keys to the ledger, with their spend so far today (read off the loop)."""
    ledger.keys = keys
    if not keys.active:
        return
    cluster = ledger.pool.cluster.name
    try:
        spent = await asyncio.to_thread(UsageStore(path).member_spend, cluster, day_start(wall_now))
    except (OSError, sqlite3.Error) as exc:
        log.warning("cannot read member keys' spend from %s (budgets start at 0): %s", path, exc)
        return
    keys.seed_spend(spent, wall_now)
