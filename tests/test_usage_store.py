from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qcc.usage.budget import (
    day_start,
    days_back,
    local_day,
    month_start,
    next_day_start,
    next_month_start,
    over_budget_until,
)
from qcc.usage.pricing import Price, PriceTable, Tokens
from qcc.usage.store import UsageRecorder, UsageStore, usage_db_path

SONNET = Price(3.0, 15.0, 3.75, 6.0, 0.3)
PRICES = PriceTable({"claude-sonnet-4": SONNET})
# 2026-11-30 12:00 local time, whatever the machine's zone
NOON = time.mktime((2026, 11, 30, 12, 0, 0, 0, 0, -1))
DAY = 86400.0
USAGE = {
    "input_tokens": 1000,
    "output_tokens": 100,
    "cache_read_input_tokens": 10_000,
    "cache_creation_input_tokens": 2000,
    "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1500},
}
ONE_COST = (1000 * 3 + 100 * 15 + 10_000 * 0.3 + 500 * 3.75 + 1500 * 6) / 1e6


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "usage.sqlite3"


def test_batch_is_aggregated_and_upserted(db: Path) -> None:
    recorder = UsageRecorder(db, PRICES)
    for _ in range(3):
        recorder.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE)
    recorder.add(NOON, "prod", "backup", "claude-sonnet-4-5", {"output_tokens": 7})
    recorder.flush()
    assert recorder.written == 2  # three adds, one row
    for _ in range(2):
        recorder.add(NOON + 60, "prod", "main", "claude-sonnet-4-5", USAGE)
    recorder.flush()

    rows = {r.key: r for r in UsageStore(db).totals(by="account")}
    main = rows[("main",)]
    assert main.requests == 5
    assert main.tokens == Tokens(5000, 500, 50_000, 2500, 7500)
    assert main.cost_usd == pytest.approx(5 * ONE_COST)
    assert rows[("backup",)].tokens == Tokens(output=7)


def test_file_is_private_and_wal(db: Path) -> None:
    recorder = UsageRecorder(db, PRICES)
    recorder.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE)
    recorder.flush()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unknown_price_stays_unknown_not_zero(db: Path) -> None:
    recorder = UsageRecorder(db, PRICES)
    recorder.add(NOON, "prod", "main", "relay-model-x", USAGE)
    recorder.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE)
    recorder.flush()
    store = UsageStore(db)
    by_model = {r.key[0]: r for r in store.totals(by="model")}
    assert by_model["relay-model-x"].cost_usd is None
    assert by_model["relay-model-x"].unpriced == 1
    assert by_model["relay-model-x"].tokens.input == 1000
    assert by_model["claude-sonnet-4-5"].cost_usd == pytest.approx(ONE_COST)
    (total,) = store.totals(by=())
    assert total.cost_usd == pytest.approx(ONE_COST)  # the known part
    assert total.unpriced == 1  # ... and the caller can say some is unknown


def test_price_known_later_adds_to_unknown_row(db: Path) -> None:
    recorder = UsageRecorder(db, PriceTable({}))
    recorder.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE)
    recorder.flush()
    recorder.set_prices(PRICES)
    recorder.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE)
    recorder.flush()
    (row,) = UsageStore(db).totals(by="model")
    assert (row.requests, row.unpriced) == (2, 1)
    assert row.cost_usd == pytest.approx(ONE_COST)


def test_days_filters_clusters_keys_and_spend(db: Path) -> None:
    recorder = UsageRecorder(db, PRICES)
    recorder.add(NOON - 40 * DAY, "prod", "main", "claude-sonnet-4-5", USAGE)  # October
    recorder.add(NOON - DAY, "prod", "main", "claude-sonnet-4-5", USAGE, member_key="alice")
    recorder.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE, member_key="bob")
    recorder.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE, member_key="bob")
    recorder.add(NOON, "team", "main", "claude-sonnet-4-5", USAGE)
    recorder.flush()
    store = UsageStore(db)
    days = store.totals(cluster="prod", by="day")
    assert [(r.key[0], r.requests) for r in days] == [
        (local_day(NOON - 40 * DAY), 1),
        (local_day(NOON - DAY), 1),
        ("2026-11-30", 2),
    ]
    recent = store.totals(since_day="2026-11-29", until_day="2026-11-29", by="key")
    assert [(r.key, r.requests) for r in recent] == [(("alice",), 1)]
    assert [r.key for r in store.totals(by=("cluster", "key"))] == [
        ("prod", ""),
        ("prod", "alice"),
        ("prod", "bob"),
        ("team", ""),
    ]
    assert store.spend("main", "prod", day_start(NOON)) == pytest.approx(2 * ONE_COST)
    assert store.spend("main", "prod", month_start(NOON)) == pytest.approx(3 * ONE_COST)
    assert store.spend("main", "team", month_start(NOON)) == pytest.approx(ONE_COST)
    assert store.spend("nobody", "prod", 0) == 0.0
    totals = store.account_totals("prod")
    assert totals["main"]["requests"] == 4
    assert totals["main"]["cache_creation_input_tokens"] == 4 * 2000
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        store.totals(by="colour")


def test_missing_database_reads_as_empty_and_is_not_created(db: Path) -> None:
    store = UsageStore(db)
    assert store.totals() == []
    assert store.spend("main", "prod", 0) == 0.0
    assert store.account_totals("prod") == {}
    assert not db.exists()


def test_default_path_is_in_state_dir() -> None:
    assert usage_db_path() == Path(os.environ["QCC_STATE_DIR"]) / "usage.sqlite3"


def test_writer_thread_flushes_on_its_own_and_on_close(db: Path) -> None:
    recorder = UsageRecorder(db, PRICES, interval=0.05)
    recorder.start()
    try:
        recorder.add(time.time(), "prod", "main", "claude-sonnet-4-5", USAGE)
        deadline = time.monotonic() + 5
        while recorder.written == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert recorder.written == 1  # without close(): the thread committed it
        recorder.add(time.time(), "prod", "main", "claude-sonnet-4-5", USAGE)
    finally:
        recorder.close()
    assert UsageStore(db).totals()[0].requests == 2


def test_restart_keeps_totals(db: Path) -> None:
    first = UsageRecorder(db, PRICES, interval=10)
    first.start()
    first.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE)
    first.close()  # commits although the interval has not passed
    second = UsageRecorder(db, PRICES, interval=10)
    second.start()
    second.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE)
    second.close()
    assert UsageStore(db).account_totals("prod")["main"]["requests"] == 2


def test_write_failure_is_retried_not_lost(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    recorder = UsageRecorder(blocker / "usage.sqlite3", PRICES)  # parent is a file
    recorder.add(NOON, "prod", "main", "claude-sonnet-4-5", USAGE)
    recorder.flush()
    assert recorder.failures == 1 and recorder.written == 0
    blocker.unlink()
    recorder.flush()
    assert recorder.written == 1
    assert UsageStore(blocker / "usage.sqlite3").totals()[0].requests == 1


def test_add_is_cheap() -> None:
    recorder = UsageRecorder(Path("/nonexistent/never-written"), PRICES)
    started = time.perf_counter()
    for i in range(10_000):
        recorder.add(NOON + i, "prod", "main", "claude-sonnet-4-5", USAGE)
    per_add = (time.perf_counter() - started) / 10_000
    assert per_add < 100e-6, per_add  # ~5 µs unloaded; generous for a shared machine


KILLED = """
import sys, time
from pathlib import Path
from qcc.usage.pricing import Price, PriceTable
from qcc.usage.store import UsageRecorder

recorder = UsageRecorder(Path(sys.argv[1]), PriceTable({"claude": Price(3, 15, 3.75, 6, 0.3)}),
                         interval=0.1)
recorder.start()
for i in range(50):
    recorder.add(time.time(), "prod", "main", "claude-sonnet-4-5", {"input_tokens": 10})
deadline = time.monotonic() + 5
while recorder.written == 0 and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.3)  # several more intervals: everything added is committed
print("ready", flush=True)
for i in range(1000):  # added but never given an interval to commit in
    recorder.add(time.time(), "prod", "main", "claude-sonnet-4-5", {"input_tokens": 10})
print("more", flush=True)
time.sleep(60)
"""


def test_kill_9_loses_at_most_the_last_interval(db: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED), str(db)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            assert proc.stdout.readline().strip() == "more"
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
    (row,) = UsageStore(db).totals()
    assert 50 <= row.requests <= 1050  # the first 50 were committed before the kill
    assert row.tokens.input == 10 * row.requests
    assert row.cost_usd == pytest.approx(row.requests * 10 * 3 / 1e6)


# ---- calendar and budgets ----------------------------------------------------------------------


def test_local_calendar() -> None:
    assert local_day(NOON) == "2026-11-30"
    assert local_day(day_start(NOON)) == "2026-11-30"
    assert local_day(next_day_start(NOON)) == "2026-12-01"
    assert local_day(next_day_start(NOON) - 1) == "2026-11-30"
    assert local_day(month_start(NOON)) == "2026-11-01"
    assert local_day(next_month_start(NOON)) == "2026-12-01"
    assert local_day(next_month_start(next_month_start(NOON) + DAY)) == "2027-01-01"
    assert days_back(NOON, 7) == "2026-11-24"
    assert days_back(NOON, 1) == "2026-11-30"


@pytest.mark.parametrize(
    ("today", "month", "daily", "monthly", "expected"),
    [
        (5.0, 50.0, None, None, None),
        (5.0, 50.0, 10.0, 100.0, None),
        (10.0, 50.0, 10.0, 100.0, "day"),
        (5.0, 100.0, 10.0, 100.0, "month"),
        (10.0, 100.0, 10.0, 100.0, "month"),  # both: the later
        (0.0, 0.0, 0.0, None, "day"),  # a zero budget is always reached
    ],
)
def test_over_budget_until(
    today: float, month: float, daily: float | None, monthly: float | None, expected: str | None
) -> None:
    until = over_budget_until(today, month, daily, monthly, NOON)
    want = {None: None, "day": next_day_start(NOON), "month": next_month_start(NOON)}[expected]
    assert until == want
