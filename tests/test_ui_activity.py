"""The dashboard's rings (qcc.proxy.activity): bounded, O(1) per request, exact per bucket."""

from __future__ import annotations

import time

from qcc.proxy.activity import BUCKET, BUCKETS, RECENT, Activity
from qcc.proxy.failed import Failure
from qcc.routing.classify import Outcome

T0 = 1_800_000_000.0  # a bucket boundary (divisible by BUCKET)
USAGE = {"input_tokens": 10, "output_tokens": 5}


def ok(activity: Activity, wall: float, account: str = "a", ttfb: float | None = 0.2) -> None:
    activity.add(wall, account, 200, "ok", [], ttfb, 1.0, USAGE)


def test_requests_per_second_and_p50_per_bucket_and_account() -> None:
    activity = Activity()
    for i in range(10):
        ok(activity, T0 + i * 0.1, "a", ttfb=0.2)
    ok(activity, T0 + 1, "b", ttfb=2.0)
    series = activity.series(["a", "b"], T0 + BUCKET + 1)
    assert len(series["requests"]["a"]) == BUCKETS
    assert series["requests"]["a"][-2] == 10
    assert series["requests"]["b"][-2] == 1
    assert series["requests"]["a"][-1] == 0
    p50 = series["ttfb_p50_ms"]["a"][-2]
    assert p50 is not None and 100 <= p50 <= 250  # inside the 0.1-0.25 s histogram bucket
    assert series["ttfb_p50_ms"]["a"][-1] is None
    assert series["end"] == T0 + 2 * BUCKET


def test_errors_by_outcome_and_failovers_in_the_last_minute() -> None:
    activity = Activity()
    failures = [
        Failure("a", Outcome.OVERLOADED, "HTTP 529 overloaded_error", 529),
        Failure("b", Outcome.TIMEOUT, "no content within 60s"),
    ]
    activity.add(T0, "c", 200, "ok", failures, 0.1, 0.5, USAGE)
    activity.add(T0 + 1, None, 503, "failed", failures[:1], None, 0.5, {})
    activity.add(T0 + 2, "c", 400, "ok", [], 0.1, 0.1, {})
    activity.add(T0 + 3, "c", 200, "broken", [], 0.1, 0.1, {})
    activity.add(T0 + 4, "c", 499, "client_closed", [], None, 0.1, {})
    series = activity.series(["c"], T0 + 4)
    last = {kind: values[-1] for kind, values in series["errors"].items()}
    assert last == {"overloaded": 2, "timeout": 1, "failed": 1, "client_error": 1, "broken": 1}
    assert activity.summary(T0 + 4)["failovers_last_minute"] == 3
    assert activity.summary(T0 + 4 + 70)["failovers_last_minute"] == 0


def test_closed_buckets_are_built_once_and_the_current_one_is_live() -> None:
    activity = Activity()
    ok(activity, T0 + 1, "a", ttfb=0.2)
    first = activity.series(["a"], T0 + 2)
    assert first["requests"]["a"][-1] == 1
    ok(activity, T0 + 3, "a", ttfb=0.2)
    activity.add(T0 + 3, "a", 200, "broken", [], 0.2, 1.0, {})  # a kind new in this bucket
    second = activity.series(["a"], T0 + 4)
    assert second["requests"]["a"][-1] == 3
    assert second["errors"] == {"broken": [0] * (BUCKETS - 1) + [1]}
    third = activity.series(["a"], T0 + BUCKET + 1)  # the bucket closed
    assert third["requests"]["a"][-2:] == [3, 0]
    assert third["errors"]["broken"][-2:] == [1, 0]
    assert third["ttfb_p50_ms"]["a"][-2] is not None
    assert len(third["requests"]["a"]) == len(third["errors"]["broken"]) == BUCKETS
    fourth = activity.series(["a", "b"], T0 + BUCKET + 1)  # an account added by a reload
    assert fourth["requests"]["b"] == [0] * BUCKETS


def test_the_ring_forgets_what_is_older_than_15_minutes() -> None:
    activity = Activity()
    ok(activity, T0)
    later = T0 + BUCKETS * BUCKET  # the same slot, one lap later
    ok(activity, later, "b")
    series = activity.series(["a", "b"], later)
    assert sum(series["requests"]["a"]) == 0
    assert series["requests"]["b"][-1] == 1
    assert len(activity.slots) == BUCKETS


def test_recent_requests_keep_the_last_50_newest_first_without_bodies() -> None:
    activity = Activity()
    for i in range(RECENT + 20):
        activity.add(T0 + i, "a", 200, "ok", [], 0.25, 1.5, {"input_tokens": i})
    rows = activity.recent_requests()
    assert len(rows) == RECENT
    assert rows[0]["input_tokens"] == RECENT + 19 and rows[-1]["input_tokens"] == 20
    assert rows[0]["ttfb_ms"] == 250.0 and rows[0]["duration_ms"] == 1500.0
    assert set(rows[0]) == {
        "at", "account", "status", "outcome", "failovers", "ttfb_ms", "duration_ms",
        "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
    }  # fmt: skip


def test_cluster_rate_counts_the_current_and_the_previous_bucket() -> None:
    activity = Activity()
    for i in range(10):
        ok(activity, T0 - BUCKET + i * 0.4)  # previous bucket
    for i in range(5):
        ok(activity, T0 + i * 0.4)  # current bucket, 2.5 s into it
    assert activity.summary(T0 + 2.5)["requests_per_s"] == round(15 / 7.5, 2)


def test_recording_costs_about_a_microsecond() -> None:
    activity = Activity()
    n = 20_000
    start = time.perf_counter()
    wall = T0
    for _ in range(n):
        activity.add(wall, "a", 200, "ok", [], 0.2, 1.0, USAGE)
        wall += 0.001
    per_call = (time.perf_counter() - start) / n
    assert per_call < 20e-6, per_call  # generous bound for a loaded CI machine
    series = activity.series(["a"], wall)
    assert sum(series["requests"]["a"]) == n
