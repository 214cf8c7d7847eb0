"""qcc's benchmark, in one command: ``python bench/run.py [--quick]``. See bench/README.md.

Starts the fast fake upstream (core 1), then per event loop (``--loop``: uvloop, asyncio, both)
the minimal pass-through and qcc on that loop (core 0), and loads one target at a time (direct =
straight at the upstream, measured once) with wrk or bench/client.py from core 1: warm-up,
repetitions, medians. S5 (failover) and S6 (100 accounts) start their own qcc processes
(bench/scenarios.py), and so does S7 (qcc with [shared] on a local redis-server, bench/shared.py).
Prints a Markdown table of ratios per loop and saves it (and, with
``--json``, the raw numbers) under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs
import report
import scenarios
import shared
from loadgen import client_command, run_client, wrk
from spy import profile
from upstream import raise_fd_limit

RESULTS = procs.BENCH / "results"
SCENARIOS = ("S1", "S2", "S3", "S4", "MEM", "S5", "S6", "S7")
LOOPS = ("uvloop", "asyncio")
WRK_SCENARIOS = {  # name: (scenario group, body, connections)
    "S1-1": ("S1", "small", 1),
    "S1-32": ("S1", "small", 32),
    "S2": ("S2", "stream", 32),
    "S3": ("S3", "big", 16),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 rep, 2 s runs, 100 streams of 1 s, 500 MEM requests, 60 per S5 case",
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="e.g. S1,S2")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--streams", type=int, default=1000, help="S4 concurrent streams")
    parser.add_argument("--stream-seconds", type=float, default=5.0, help="S4 stream length")
    parser.add_argument("--requests", type=int, default=10_000, help="MEM sequential requests")
    parser.add_argument("--failover-requests", type=int, default=300, help="S5 requests per case")
    parser.add_argument(
        "--loop",
        choices=(*LOOPS, "both"),
        default="both",
        help="event loop of qcc and the pass-through (QCC_LOOP); both: one table per loop",
    )
    parser.add_argument("--two-accounts", action="store_true", help="also run qcc, 2 accounts")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="S1-32",
        choices=[n for n in WRK_SCENARIOS if n != "S1-1"],
        help="py-spy the proxies under a wrk scenario (default S1-32)",
    )
    parser.add_argument("--json", action="store_true", help="save raw numbers to latest.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.duration = 1, 2.0
        args.streams, args.stream_seconds, args.requests = 100, 1.0, 500
        args.failover_requests = 60
    args.loops = list(LOOPS) if args.loop == "both" else [args.loop]
    args.scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {','.join(SCENARIOS)}")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_wrk_scenario(
    name: str, targets: dict[str, procs.Proc], args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    _, body, connections = WRK_SCENARIOS[name]
    for proc in targets.values():
        wrk(proc.url, body, connections, min(2.0, args.duration / 2))  # warm-up, discarded
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    order = list(targets)
    for rep in range(args.reps):
        # direct first; the proxies alternate so neither always follows the other
        ordered = order[:1] + (order[1:] if rep % 2 == 0 else order[:0:-1])
        for target in ordered:
            proc = targets[target]
            cpu_before = procs.cpu_seconds(proc.pid)
            result = wrk(proc.url, body, connections, args.duration)
            cpu = procs.cpu_seconds(proc.pid) - cpu_before
            if result.errors:
                log(f"  {name} {target}: {result.errors} errors (socket or non-2xx)")
            # CPU per request: what the process itself spent, whichever core was the bottleneck
            per_request = cpu / result.requests * 1e6 if result.requests else float("nan")
            out[target].append(result.as_dict() | {"cpu_us_per_req": per_request})
            numbers = f"{result.rps:,.0f} req/s, p50 {result.p50_ms:.3f} ms"
            log(f"  {name} rep {rep + 1} {target} ({args.current_loop}): {numbers}")
            time.sleep(0.3)
    return out


def stream_round(proc: procs.Proc, count: int, seconds: float, watch: bool) -> dict[str, Any]:
    """One S4 round of ``count`` concurrent slow streams; ``watch``: the proxy's CPU and RSS."""
    pid = proc.pid
    peak = 0.0
    if watch:
        procs.reset_peak(pid)
        cpu_before = procs.cpu_seconds(pid)
    with subprocess.Popen(
        client_command("streams", proc.url, count, seconds), stdout=subprocess.PIPE, text=True
    ) as client:
        deadline = time.monotonic() + seconds + 150
        while client.poll() is None and time.monotonic() < deadline:
            if watch:
                peak = max(peak, procs.memory_mb(pid)["rss"])
            time.sleep(0.1)
        if client.poll() is None:
            client.kill()
        output, _ = client.communicate(timeout=10)
    if client.returncode != 0:
        raise RuntimeError(f"S4 client failed against {proc.name}")
    result: dict[str, Any] = json.loads(output)
    if watch:
        result["cpu_s"] = procs.cpu_seconds(pid) - cpu_before
        result["peak_mb"] = max(peak, procs.memory_mb(pid)["peak"])
    return result


def run_streams(
    targets: dict[str, procs.Proc], args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    for proc in targets.values():
        stream_round(proc, min(100, args.streams), 1.0, watch=False)  # warm-up
    for rep in range(args.reps):
        for target, proc in targets.items():
            result = stream_round(proc, args.streams, args.stream_seconds, target != "direct")
            out[target].append(result)
            line = f"{result['completed']}/{result['count']} done"
            line += f", TTFB p99 {result['ttfb_p99_ms']:.1f} ms"
            if "cpu_s" in result:
                line += f", CPU {result['cpu_s']:.2f} s, peak {result['peak_mb']:.1f} MB"
            log(f"  S4 rep {rep + 1} {target}: {line}")
            time.sleep(1.0)
    return out


def run_memory(targets: dict[str, procs.Proc], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target, proc in targets.items():
        if target == "direct":
            continue
        run_client("seq", proc.url, 50)  # warm-up: connection pools, lazy imports
        time.sleep(0.5)
        before = procs.memory_mb(proc.pid)["rss"]
        procs.reset_peak(proc.pid)
        result = run_client("seq", proc.url, args.requests)
        time.sleep(2.0)
        memory = procs.memory_mb(proc.pid)
        out[target] = result | {
            "before_mb": before,
            "after_mb": memory["rss"],
            "peak_mb": memory["peak"],
        }
        log(f"  MEM {target}: {before:.1f} → {memory['rss']:.1f} MB, {result['failed']} failed")
    return out


def run_loop(
    workdir: Path,
    upstream: procs.Proc,
    loop: str,
    args: argparse.Namespace,
    first: dict[str, Any] | None,
    started: list[procs.Proc],
) -> tuple[dict[str, Any], list[str]]:
    """Every scenario with qcc and the pass-through on ``loop``. ``first``: the first loop's
    numbers, whose direct (loop-independent) results are reused instead of measured again."""
    args.current_loop = loop
    raw: dict[str, Any] = {}
    proxies = [procs.start_passthrough(workdir, upstream.url, loop)]
    started += proxies
    proxies.append(procs.start_qcc(workdir, upstream.url, loop=loop))
    started.append(proxies[-1])
    if args.two_accounts:
        proxies.append(procs.start_qcc(workdir, upstream.url, 2, "qcc-2acct", loop=loop))
        started.append(proxies[-1])
    targets = ({"direct": upstream} if first is None else {}) | {p.name: p for p in proxies}
    log(f"{loop}: {', '.join(f'{n} {p.url} (pid {p.pid})' for n, p in targets.items())}")

    def with_direct(name: str, measured: dict[str, Any]) -> dict[str, Any]:
        if first is None or name not in first or "direct" not in first[name]:
            return measured
        return {"direct": first[name]["direct"]} | measured

    profiles: list[str] = []
    if "MEM" in args.scenarios:  # first, on fresh processes
        log(f"MEM ({loop}): {args.requests} sequential requests, then 2 s idle")
        raw["MEM"] = run_memory(targets, args)
    for name, (group, _, _) in WRK_SCENARIOS.items():
        if group in args.scenarios:
            log(f"{name} ({loop}): warm-up, then {args.reps} × {args.duration:g} s per target")
            raw[name] = with_direct(name, run_wrk_scenario(name, targets, args))
    if "S4" in args.scenarios:
        log(f"S4 ({loop}): {args.streams} concurrent {args.stream_seconds:g} s streams")
        raw["S4"] = with_direct("S4", run_streams(targets, args))
    if args.profile:
        _, body, connections = WRK_SCENARIOS[args.profile]
        log(f"profiling the proxies ({loop}) under {args.profile} with py-spy")
        profiles = [profile(p, RESULTS, args.profile, body, connections, tag=loop) for p in proxies]
    if "S6" in args.scenarios:
        log(f"S6 ({loop}): {scenarios.BIG_CLUSTER} accounts, small JSON, 32 conns")
        qcc = next(p for p in proxies if p.name == "qcc")
        raw["S6"] = scenarios.run_big_cluster(
            workdir, upstream.url, loop, qcc, args.reps, args.duration, log
        )
    if "S7" in args.scenarios:
        log(f"S7 ({loop}): small JSON through qcc with [shared] on a local redis-server")
        qcc = next(p for p in proxies if p.name == "qcc")
        raw["S7"] = shared.run_shared(
            workdir, upstream.url, loop, qcc, args.reps, args.duration, log
        )
    for proc in proxies:
        procs.stop(proc)
    if "S5" in args.scenarios:
        log(f"S5 ({loop}): failover, {args.failover_requests} sequential requests per case")
        raw["S5"] = scenarios.run_failover(workdir, upstream.url, loop, args.failover_requests, log)
    return raw, profiles


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (apt-get install wrk util-linux)")
    raise_fd_limit()
    RESULTS.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="qcc-bench-"))
    started: list[procs.Proc] = []
    raw: dict[str, Any] = {}
    profiles: dict[str, list[str]] = {}
    busy_before, wall_before = procs.machine_busy_seconds(), time.monotonic()
    try:
        upstream = procs.start_upstream(workdir)
        started.append(upstream)
        for loop in args.loops:
            first = raw[args.loops[0]] if loop != args.loops[0] else None
            raw[loop], profiles[loop] = run_loop(workdir, upstream, loop, args, first, started)
        wall = time.monotonic() - wall_before
        foreign = procs.machine_busy_seconds() - busy_before - procs.own_seconds(started)
        raw["machine"] = {"wall_s": wall, "other_cpu_s": max(0.0, foreign)}
    finally:
        for proc in reversed(started):
            procs.stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    subjects = ["qcc", "qcc-2acct"] if args.two_accounts else ["qcc"]
    text = render(raw, subjects, args, profiles)
    print(text)
    (RESULTS / "latest.md").write_text(text + "\n")
    if args.json:
        meta = {"args": vars(args), "python": sys.version, "machine": platform.platform()}
        (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "raw": raw}, indent=1))
    log(f"saved {RESULTS / 'latest.md'}" + (" and latest.json" if args.json else ""))


def qcc_version() -> str:
    """The commit qcc ran from, and whether its working tree had changes (read-only git)."""
    repo = procs.BENCH.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "qcc"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (f" + uncommitted changes in {len(dirty)} qcc/ paths" if dirty else "")


def render(
    raw: dict[str, Any],
    subjects: list[str],
    args: argparse.Namespace,
    profiles: dict[str, list[str]],
) -> str:
    mode = "quick" if args.quick else "full"
    lines = [
        f"# qcc benchmark ({mode}: {args.reps} reps × {args.duration:g} s, medians)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · {platform.platform()} · Python "
        f"{platform.python_version()} · proxy on core {procs.PROXY_CORE}, "
        f"upstream + load on core {procs.LOAD_CORE} · qcc {qcc_version()}",
        "",
    ]
    machine = raw.get("machine")
    if machine:
        share = machine["other_cpu_s"] / machine["wall_s"] / 2
        lines += [
            f"Other processes used {machine['other_cpu_s']:.0f} CPU s over the run's "
            f"{machine['wall_s']:.0f} s ({share:.0%} of the 2 cores): "
            + ("numbers are noisy, run again on a quiet machine." if share > 0.05 else "quiet."),
            "",
        ]
    for loop in args.loops:
        numbers = raw.get(loop, {})
        lines += [f"## qcc and the pass-through on {loop}", ""]
        table = report.rows(numbers, subjects)
        if table:
            lines += [report.markdown(table, subjects), ""]
        if "S5" in numbers:
            lines += [scenarios.failover_table(numbers["S5"]), ""]
        if "S6" in numbers:
            lines += [scenarios.big_cluster_table(numbers["S6"]), ""]
        if "S7" in numbers:
            lines += [shared.shared_table(numbers["S7"]), ""]
    for loop in args.loops:
        lines += [f"## Every repetition ({loop})", "", report.spread(raw.get(loop, {})), ""]
    for loop in args.loops:
        if profiles.get(loop):
            lines += [f"## Profiles (py-spy, {args.profile}, {loop})", "", *profiles[loop], ""]
    return "\n".join(lines).rstrip()


if __name__ == "__main__":
    main()
