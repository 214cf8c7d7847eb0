"""Usage and cost per local day x cluster x account x model x client key, kept in SQLite.

One file in the state dir (``usage.sqlite3``, mode 0600, WAL). The proxy owns a
:class:`UsageRecorder`: :meth:`~UsageRecorder.add` is O(1) and never blocks on I/O (it adds to
an in-memory batch); a writer thread commits the batch about once a second as one transaction
of UPSERTs. A crash or ``kill -9`` loses at most the last interval. :class:`UsageStore` answers
the queries (``qcc usage``, budgets, totals after a restart) from any process.

``cost_usd`` is NULL when no request of the row had a known price: "unknown" is not 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qcc.paths import private_dir, state_dir
from qcc.usage.budget import day_start, local_day, next_day_start
from qcc.usage.pricing import Price, PriceTable, Tokens, tokens, tokens_cost

log = logging.getLogger("qcc.usage")

DB_NAME = "usage.sqlite3"
COUNTS = ("requests", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
DIMENSIONS = {
    "account": "account",
    "model": "model",
    "day": "day",
    "key": "member_key",
    "cluster": "cluster",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,                    -- local date, YYYY-MM-DD
    cluster TEXT NOT NULL,
    account TEXT NOT NULL,
    model TEXT NOT NULL,
    member_key TEXT NOT NULL DEFAULT '',  -- the client key's name, '' without one
    requests INTEGER NOT NULL DEFAULT 0,
    input INTEGER NOT NULL DEFAULT 0,
    output INTEGER NOT NULL DEFAULT 0,
    cache_read INTEGER NOT NULL DEFAULT 0,
    cache_write_5m INTEGER NOT NULL DEFAULT 0,
    cache_write_1h INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,                        -- NULL: no request here had a known price
    unpriced INTEGER NOT NULL DEFAULT 0,  -- requests counted without a price
    PRIMARY KEY (day, cluster, account, model, member_key)
) WITHOUT ROWID
"""

_UPSERT = """
INSERT INTO usage (day, cluster, account, model, member_key, requests, input, output,
                   cache_read, cache_write_5m, cache_write_1h, cost_usd, unpriced)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, cluster, account, model, member_key) DO UPDATE SET
    requests = requests + excluded.requests,
    input = input + excluded.input,
    output = output + excluded.output,
    cache_read = cache_read + excluded.cache_read,
    cache_write_5m = cache_write_5m + excluded.cache_write_5m,
    cache_write_1h = cache_write_1h + excluded.cache_write_1h,
    cost_usd = CASE WHEN excluded.cost_usd IS NULL THEN cost_usd
                    ELSE coalesce(cost_usd, 0) + excluded.cost_usd END,
    unpriced = unpriced + excluded.unpriced
"""


def usage_db_path() -> Path:
    return state_dir() / DB_NAME


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600 if needed) the usage database, in WAL mode."""
    private_dir(path.parent, tighten=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # exact mode before SQLite sees it
    os.close(fd)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: safe against process crashes
        conn.execute(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


Key = tuple[str, str, str, str, str]  # day, cluster, account, model, member_key


def _write(conn: sqlite3.Connection, batch: Mapping[Key, list[Any]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(_UPSERT, [(*key, *row) for key, row in batch.items()])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _merge(into: dict[Key, list[Any]], key: Key, row: Sequence[Any]) -> None:
    """Add ``row`` (the six counts, cost or None, unpriced) to ``into[key]``."""
    have = into.get(key)
    if have is None:
        into[key] = list(row)
        return
    for i in range(6):
        have[i] += row[i]
    if row[6] is not None:
        have[6] = row[6] if have[6] is None else have[6] + row[6]
    have[7] += row[7]


class UsageRecorder:
    """Collects usage on the event loop; a writer thread commits it to SQLite every ``interval``.

    Call :meth:`start` once, :meth:`add` per response, :meth:`close` at shutdown (it commits what
    is left and stops the thread, waiting at most ``timeout`` seconds).
    """

    def __init__(
        self,
        path: Path,
        prices: PriceTable | Callable[[str], Price | None],
        interval: float = 1.0,
    ) -> None:
        self.path = path
        self.interval = interval
        self._lookup = prices.lookup if isinstance(prices, PriceTable) else prices
        self._price_cache: dict[str, Price | None] = {}
        self._pending: dict[Key, list[Any]] = {}  # merged rows; only under the lock
        # What the event loop adds: appended without a lock (deque.append is atomic), merged
        # into ``_pending`` by whoever takes a batch. Keeps add() to a few attribute reads.
        self._added: deque[tuple[Key, tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._day: tuple[float, float, str] = (0.0, -1.0, "")
        self.written = 0  # rows committed, for tests and /metrics
        self.failures = 0

    def set_prices(self, prices: PriceTable | Callable[[str], Price | None]) -> None:
        """New prices (a config reload) for what is added from now on."""
        self._lookup = prices.lookup if isinstance(prices, PriceTable) else prices
        self._price_cache = {}

    def _price(self, model: str) -> Price | None:
        try:
            return self._price_cache[model]
        except KeyError:
            price = self._price_cache[model] = self._lookup(model)
            return price

    def _local_day(self, wall: float) -> str:
        start, end, iso = self._day
        if start <= wall < end:
            return iso
        iso = local_day(wall)
        self._day = (day_start(wall), next_day_start(wall), iso)
        return iso

    def add(
        self,
        now_wall: float,
        cluster: str,
        account: str,
        model: str,
        usage: Mapping[str, Any],
        member_key: str = "",
    ) -> float | None:
        """Count one response's ``usage`` (an Anthropic usage object); its cost in USD, None
        when the model has no price. O(1), no I/O, no lock: it runs once per request on the
        event loop, so the merging into per-key totals is left to the writer."""
        counted: Tokens = tokens(usage)
        price = self._price(model)
        cost = tokens_cost(price, counted) if price is not None else None
        key = (self._local_day(now_wall), cluster, account, model, member_key)
        self._added.append((key, (1, *counted, cost, 0 if price is not None else 1)))
        return cost

    # ---- the writer --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (it opens the database itself)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="qcc-usage-writer", daemon=True)
        self._thread.start()

    def _take(self) -> dict[Key, list[Any]]:
        with self._lock:
            added, pending = self._added, self._pending
            for _ in range(len(added)):
                key, row = added.popleft()
                _merge(pending, key, row)
            self._pending = {}
        return pending

    def _put_back(self, batch: dict[Key, list[Any]]) -> None:
        with self._lock:
            for key, row in batch.items():
                _merge(self._pending, key, row)

    def _flush(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        batch = self._take()
        if not batch:
            return conn
        try:
            if conn is None:
                conn = connect(self.path)
            _write(conn, batch)
        except (OSError, sqlite3.Error) as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 60 == 0:
                log.warning("cannot record usage in %s (will retry): %s", self.path, exc)
            self._put_back(batch)  # aggregated per key: bounded by the number of keys
            return conn
        self.written += len(batch)
        return conn

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval):
                conn = self._flush(conn)
            conn = self._flush(conn)
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def flush(self) -> None:
        """Commit the pending batch now, from the calling thread (tests; no thread running)."""
        conn = self._flush(None)
        if conn is not None:
            conn.close()

    def close(self, timeout: float = 5.0) -> None:
        """Commit what is pending and stop the writer (waits at most ``timeout`` seconds)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is None:
            self.flush()
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warning("usage writer still busy after %.0f s; the last batch may be lost", timeout)


# ---- queries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    """Totals of one group (``key`` holds the values of the grouping dimensions)."""

    key: tuple[str, ...]
    requests: int
    tokens: Tokens
    cost_usd: float | None  # None: no request of the group had a known price
    unpriced: int  # requests counted without a price

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            **self.tokens._asdict(),
            "cost_usd": self.cost_usd,
            "unpriced_requests": self.unpriced,
        }


class UsageStore:
    """Read side of the usage database. A missing file reads as no usage (nothing is created)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = usage_db_path() if path is None else path

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def totals(
        self,
        since_day: str | None = None,
        until_day: str | None = None,
        cluster: str | None = None,
        by: str | Sequence[str] = "account",
    ) -> list[UsageRow]:
        """Totals between two local dates (inclusive; None: open), grouped ``by`` one or more of
        ``account``, ``model``, ``day``, ``key``, ``cluster``; ordered by the group."""
        names = (by,) if isinstance(by, str) else tuple(by)
        try:
            columns = [DIMENSIONS[name] for name in names]
        except KeyError as exc:
            raise ValueError(f"cannot group by {exc.args[0]!r}") from None
        where, params = ["1"], []
        if since_day is not None:
            where.append("day >= ?")
            params.append(since_day)
        if until_day is not None:
            where.append("day <= ?")
            params.append(until_day)
        if cluster is not None:
            where.append("cluster = ?")
            params.append(cluster)
        sums = ", ".join(f"sum({c})" for c in COUNTS)
        select = ", ".join([*columns, sums, "sum(cost_usd)", "sum(unpriced)"])
        sql = f"SELECT {select} FROM usage WHERE {' AND '.join(where)}"
        if columns:
            sql += f" GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}"
        n = len(columns)
        return [
            UsageRow(
                key=tuple(str(v) for v in row[:n]),
                requests=int(row[n]),
                tokens=Tokens(*(int(v) for v in row[n + 1 : n + 6])),
                cost_usd=row[n + 6],
                unpriced=int(row[n + 7]),
            )
            for row in self._query(sql, params)
            if row[n] is not None  # an empty table still gives one row of NULL sums
        ]

    def spend(self, account: str, cluster: str, since_wall: float) -> float:
        """USD recorded for an account from the local day of ``since_wall`` on (budgets: pass
        :func:`~qcc.usage.budget.day_start` or :func:`~qcc.usage.budget.month_start`)."""
        rows = self._query(
            "SELECT coalesce(sum(cost_usd), 0) FROM usage "
            "WHERE account = ? AND cluster = ? AND day >= ?",
            (account, cluster, local_day(since_wall)),
        )
        return float(rows[0][0]) if rows else 0.0

    def member_spend(self, cluster: str, since_wall: float) -> dict[str, float]:
        """USD recorded per member key of ``cluster`` from the local day of ``since_wall`` on."""
        rows = self._query(
            "SELECT member_key, coalesce(sum(cost_usd), 0) FROM usage "
            "WHERE cluster = ? AND day >= ? AND member_key != '' GROUP BY member_key",
            (cluster, local_day(since_wall)),
        )
        return {str(name): float(usd) for name, usd in rows}

    def account_totals(self, cluster: str) -> dict[str, dict[str, Any]]:
        """All-time totals per account of ``cluster``, in ``/accounts/stats`` usage terms."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.totals(cluster=cluster, by="account"):
            t = row.tokens
            out[row.key[0]] = {
                "input_tokens": t.input,
                "output_tokens": t.output,
                "cache_read_input_tokens": t.cache_read,
                "cache_creation_input_tokens": t.cache_write,
                "requests": row.requests,
                "cost_usd": row.cost_usd,
            }
        return out
