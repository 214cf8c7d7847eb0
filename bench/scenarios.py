"""The scenarios that need their own qcc processes: failover (S5) and a big cluster (S6).

S5: a two-account cluster (strategy ``priority``) whose first account misbehaves, the second
answers. Cases: (a) refuses connections (a closed port), (b) answers 529, (c) begins its stream
with ``event: error``. ``bench/client.py latency`` sends requests one after another to a fresh qcc:
the first request (the first failover, the account's state not known yet) is reported alone,
then p50/p99 of the rest, against the same client on a one-account qcc (the S1 1-conn shape; for
(c) with streaming requests). "failed over" counts the requests (from qcc's access lines) that
tried the bad account before qcc stopped choosing it.

S6: qcc with 100 accounts, all on the fake upstream, under ``wrk -c32`` small JSON (S1-32),
for round-robin and least-latency, against the one-account qcc in the same minutes.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import procs
from loadgen import run_client, wrk

FAILOVER_CASES = {  # name: (label, path prefix of the first account or None = closed port, stream)
    "refused": ("(a) first account refuses connections", None, False),
    "529": ("(b) first account answers 529", "/529", False),
    "sse-error": ("(c) first account's stream starts with event: error", "/sse-error", True),
}
BIG_CLUSTER = 100
S6_STRATEGIES = ("round-robin", "least-latency")


def _measure(proc: procs.Proc, count: int, stream: bool = False) -> dict[str, Any]:
    cpu_before = procs.cpu_seconds(proc.pid)
    result = run_client("latency", proc.url, count, stream=stream)
    cpu = procs.cpu_seconds(proc.pid) - cpu_before
    return result | {"cpu_us_per_req": cpu / count * 1e6 if count else math.nan}


def run_failover(
    workdir: Path, upstream: str, loop: str, count: int, log: Any
) -> dict[str, dict[str, Any]]:
    """S5 on ``loop``: every case and the two baselines, each on a fresh qcc."""
    out: dict[str, dict[str, Any]] = {}
    base = procs.start_qcc(workdir, upstream, name="s5-base", loop=loop, strategy="priority")
    try:
        out["base"] = _measure(base, count)
        out["base-stream"] = _measure(base, count, stream=True)
    finally:
        procs.stop(base)
    for case, (_, prefix, stream) in FAILOVER_CASES.items():
        bad = f"http://127.0.0.1:{procs.free_port()}" if prefix is None else upstream + prefix
        proc = procs.start_qcc(
            workdir, [bad, upstream], name=f"s5-{case}", loop=loop, strategy="priority"
        )
        try:
            out[case] = _measure(proc, count, stream=stream)
        finally:
            procs.stop(proc)
        # qcc's access lines (its stderr): how many requests paid a failover before it knew
        access = [line for line in proc.log.read_text().splitlines() if " rid=" in line]
        out[case]["failed_over"] = sum("failed_over=acct1:" in line for line in access)
    for case, result in out.items():
        log(
            f"  S5 {loop} {case}: first {result['first_ms']:.2f} ms, p50 {result['p50_ms']:.2f} "
            f"ms, p99 {result['p99_ms']:.2f} ms, {result['failed']} failed, "
            f"{result.get('failed_over', 0)} failed over"
        )
    return out


def run_big_cluster(
    workdir: Path,
    upstream: str,
    loop: str,
    one: procs.Proc,
    reps: int,
    duration: float,
    log: Any,
) -> dict[str, dict[str, Any]]:
    """S6 on ``loop``: ``one`` (the one-account qcc) and a 100-account qcc per strategy, all
    running at once and loaded in turn, ``reps`` rounds: a drift of the machine's speed hits
    every target of a round alike, and each ratio is taken within its round (then the median)."""
    targets = {"1 account": one}
    for strategy in S6_STRATEGIES:
        targets[strategy] = procs.start_qcc(
            workdir, upstream, BIG_CLUSTER, name=f"s6-{strategy}", loop=loop, strategy=strategy
        )
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    try:
        for proc in targets.values():
            wrk(proc.url, "small", 32, min(1.0, duration))  # warm-up
        for rep in range(1, reps + 1):
            for name, proc in targets.items():
                cpu_before = procs.cpu_seconds(proc.pid)
                result = wrk(proc.url, "small", 32, duration)
                cpu = procs.cpu_seconds(proc.pid) - cpu_before
                per_request = cpu / result.requests * 1e6 if result.requests else math.nan
                runs[name].append(result.as_dict() | {"cpu_us_per_req": per_request})
                log(f"  S6 rep {rep} {loop} {name}: {result.rps:,.0f} req/s, {per_request:.0f} µs")
                time.sleep(0.3)
    finally:
        for proc in targets.values():
            if proc is not one:
                procs.stop(proc)
    out: dict[str, dict[str, Any]] = {}
    for name, results in runs.items():
        base = runs["1 account"]
        pairs = zip(results, base, strict=True)
        ratios = [r["rps"] / b["rps"] if b["rps"] else math.nan for r, b in pairs]
        out[name] = {
            "rps": statistics.median(r["rps"] for r in results),
            "cpu_us_per_req": statistics.median(r["cpu_us_per_req"] for r in results),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
        }
    return out


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def failover_table(raw: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| S5 case | first request (ms) | its added (ms) | p50 (ms) | added p50 | p99 (ms) "
        "| added p99 | CPU/req (µs) | failed over | failed | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("base", "baseline: 1 account, JSON"), ("base-stream", "baseline: stream")):
        r = raw[key]
        lines.append(
            f"| {label} | {_ms(r['first_ms'])} | — | {_ms(r['p50_ms'])} | — | {_ms(r['p99_ms'])} "
            f"| — | {r['cpu_us_per_req']:.0f} | — | {r['failed']} | — |"
        )
    for case, (label, _, stream) in FAILOVER_CASES.items():
        r, b = raw[case], raw["base-stream" if stream else "base"]
        first = r["first_ms"] - b["first_ms"]
        p50 = r["p50_ms"] - b["p50_ms"]
        p99 = r["p99_ms"] - b["p99_ms"]
        verdict = "PASS" if first < 20 and p50 < 5 and not r["failed"] else "FAIL"
        lines.append(
            f"| {label} | {_ms(r['first_ms'])} | {_ms(first)} | {_ms(r['p50_ms'])} | {_ms(p50)} "
            f"| {_ms(r['p99_ms'])} | {_ms(p99)} | {r['cpu_us_per_req']:.0f} "
            f"| {r.get('failed_over', 'n/a')} | {r['failed']} "
            f"| first < 20, p50 < 5: {verdict} |"
        )
    return "\n".join(lines)


def big_cluster_table(raw: dict[str, dict[str, Any]]) -> str:
    one = raw["1 account"]
    lines = [
        "| S6 (small JSON, 32 conns) | req/s | vs 1 account (each round) | CPU/req (µs) | target |",
        "|---|---|---|---|---|",
        f"| qcc, 1 account | {one['rps']:,.0f} | — | {one['cpu_us_per_req']:.0f} | — |",
    ]
    for strategy in S6_STRATEGIES:
        r = raw[strategy]
        ratio = r["ratio"]
        verdict = "PASS" if ratio >= 0.95 else "FAIL"
        each = ", ".join(f"{x:.2f}" for x in r["ratios"])
        lines.append(
            f"| qcc, {BIG_CLUSTER} accounts, {strategy} | {r['rps']:,.0f} | {ratio:.2f}× "
            f"({each}) | {r['cpu_us_per_req']:.0f} | ≥ 0.95×: {verdict} |"
        )
    return "\n".join(lines)
