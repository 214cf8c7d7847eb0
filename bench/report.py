"""Turning raw benchmark numbers into the Markdown report: medians, ratios, targets, pass/fail."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DIRECT, PASS = "direct", "pass-through"
Raw = dict[str, Any]  # scenario -> target -> list of per-repetition dicts


@dataclass
class Row:
    label: str
    values: dict[str, float | str]  # target -> shown value
    ratio_of: dict[str, float]  # subject -> subject / pass-through
    target: str
    verdict: dict[str, bool | None]  # subject -> met? (None: no target)


def median(values: list[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else float("nan")


def _fmt(value: float | str, digits: int = 0) -> str:
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def _metric(runs: dict[str, list[Raw]], key: str) -> dict[str, float]:
    return {target: median([float(r[key]) for r in reps]) for target, reps in runs.items()}


def _throughput(label: str, runs: dict[str, list[Raw]], subjects: list[str]) -> Row:
    rps = _metric(runs, "rps")
    ratios = {s: _ratio(rps.get(s, math.nan), rps.get(PASS, math.nan)) for s in subjects}
    verdict: dict[str, bool | None] = {s: ratios[s] >= 1.0 for s in subjects}
    return Row(label, dict(rps), ratios, "≥ 1.0×", verdict)


def _added_latency(runs: dict[str, list[Raw]], subjects: list[str]) -> Row:
    direct = [r["p50_ms"] for r in runs[DIRECT]]
    added: dict[str, float | str] = {DIRECT: f"(p50 {median(direct) * 1000:,.0f} µs)"}
    numbers: dict[str, float] = {}
    for target, reps in runs.items():
        if target != DIRECT:
            diffs = [(r["p50_ms"] - d) * 1000 for r, d in zip(reps, direct, strict=False)]
            numbers[target] = median(diffs)
            added[target] = numbers[target]
    ratios = {s: _ratio(numbers.get(s, math.nan), numbers.get(PASS, math.nan)) for s in subjects}
    verdict: dict[str, bool | None] = {s: ratios[s] <= 1.5 for s in subjects}
    return Row("S1 small JSON, 1 conn: added p50 latency (µs)", added, ratios, "≤ 1.5×", verdict)


def _s4_rows(runs: dict[str, list[Raw]], subjects: list[str]) -> list[Row]:
    rows: list[Row] = []
    done = {
        t: f"{min(r['completed'] for r in reps)}/{reps[0]['count']}" for t, reps in runs.items()
    }
    all_done: dict[str, bool | None] = {
        s: all(r["completed"] == r["count"] for r in runs.get(s, [])) for s in subjects
    }
    rows.append(Row("S4 streams completed (worst rep)", dict(done), {}, "all", all_done))
    ttfb = _metric(runs, "ttfb_p99_ms")
    ratios = {s: _ratio(ttfb.get(s, math.nan), ttfb.get(PASS, math.nan)) for s in subjects}
    none: dict[str, bool | None] = dict.fromkeys(subjects)
    rows.append(Row("S4 TTFB p99 (ms)", dict(ttfb), ratios, "—", none))
    proxies = {t: reps for t, reps in runs.items() if t != DIRECT}
    peak = {t: max(r["peak_mb"] for r in reps) for t, reps in proxies.items()}
    ratios = {s: _ratio(peak.get(s, math.nan), peak.get(PASS, math.nan)) for s in subjects}
    verdict: dict[str, bool | None] = {s: peak.get(s, math.inf) <= 100 for s in subjects}
    values: dict[str, float | str] = {DIRECT: "—", **peak}
    rows.append(Row("S4 proxy peak RSS (MB, max of reps)", values, ratios, "≤ 100 MB", verdict))
    cpu = _metric(proxies, "cpu_s")
    ratios = {s: _ratio(cpu.get(s, math.nan), cpu.get(PASS, math.nan)) for s in subjects}
    verdict = {s: ratios[s] <= 1.2 for s in subjects}
    rows.append(Row("S4 proxy CPU seconds", {DIRECT: "—", **cpu}, ratios, "≤ 1.2×", verdict))
    return rows


def _memory_row(runs: dict[str, Raw], subjects: list[str]) -> Row:
    growth = {t: r["after_mb"] - r["before_mb"] for t, r in runs.items()}
    verdict: dict[str, bool | None] = {s: growth.get(s, math.inf) <= 10 for s in subjects}
    values: dict[str, float | str] = {DIRECT: "—"}
    for target, r in runs.items():
        values[target] = f"{growth[target]:+.1f} ({r['before_mb']:.0f}→{r['after_mb']:.0f})"
    count = next(iter(runs.values()))["count"] if runs else 0
    label = f"MEM RSS change after {count:,} sequential requests + 2 s idle (MB)"
    return Row(label, values, {}, "≤ 10 MB", verdict)


def _cpu_row(label: str, runs: dict[str, list[Raw]], subjects: list[str]) -> Row:
    """The proxy's own CPU per request: robust when the load core, not the proxy, is the limit."""
    proxies = {t: reps for t, reps in runs.items() if t != DIRECT}
    cpu = {
        t: median([float(r.get("cpu_us_per_req", math.nan)) for r in reps])
        for t, reps in proxies.items()
    }
    ratios = {s: _ratio(cpu.get(s, math.nan), cpu.get(PASS, math.nan)) for s in subjects}
    values: dict[str, float | str] = {DIRECT: "—", **cpu}
    return Row(label, values, ratios, "(lower is better)", dict.fromkeys(subjects))


ROW_MAKERS: dict[str, Callable[[dict[str, Any], list[str]], list[Row]]] = {
    "S1-1": lambda r, s: [_added_latency(r, s)],
    "S1-32": lambda r, s: [
        _throughput("S1 small JSON, 32 conns (req/s)", r, s),
        _cpu_row("S1 32 conns: proxy CPU per request (µs)", r, s),
    ],
    "S2": lambda r, s: [
        _throughput("S2 SSE 100 events, 32 conns (req/s)", r, s),
        _cpu_row("S2: proxy CPU per request (µs)", r, s),
    ],
    "S3": lambda r, s: [
        _throughput("S3 200 KB body, 16 conns (req/s)", r, s),
        _cpu_row("S3: proxy CPU per request (µs)", r, s),
    ],
    "S4": _s4_rows,
    "MEM": lambda r, s: [_memory_row(r, s)],
}


def rows(raw: Raw, subjects: list[str]) -> list[Row]:
    out: list[Row] = []
    for scenario, make in ROW_MAKERS.items():
        if scenario in raw:
            out.extend(make(raw[scenario], subjects))
    return out


def markdown(table: list[Row], subjects: list[str]) -> str:
    head = ["scenario", DIRECT, PASS]
    for s in subjects:
        head += [s, f"{s}/pass-through"]
    head += ["target", "pass/fail"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table:
        digits = (
            2 if "CPU seconds" in row.label else 1 if "MB" in row.label or "ms" in row.label else 0
        )
        cells = [row.label, _fmt(row.values.get(DIRECT, "—"), digits)]
        cells.append(_fmt(row.values.get(PASS, "n/a"), digits))
        for s in subjects:
            ratio = row.ratio_of.get(s, math.nan)
            cells += [_fmt(row.values.get(s, "n/a"), digits), f"{_fmt(ratio, 2)}×"]
        cells.append(row.target)
        verdicts = [row.verdict.get(s) for s in subjects]
        shown = ["—" if v is None else ("PASS" if v else "FAIL") for v in verdicts]
        cells.append(" / ".join(shown))
        lines.append("| " + " | ".join(cells).replace("n/a×", "—") + " |")
    return "\n".join(lines)


def spread(raw: Raw) -> str:
    """Every repetition's number, so the reader can see how noisy the medians are."""
    keys = {"S1-1": "p50_ms", "S1-32": "rps", "S2": "rps", "S3": "rps", "S4": "ttfb_p99_ms"}
    lines = ["| scenario | metric | target | repetitions |", "|---|---|---|---|"]
    for scenario, key in keys.items():
        for target, reps in raw.get(scenario, {}).items():
            values = ", ".join(_fmt(float(r[key]), 3 if key.endswith("ms") else 0) for r in reps)
            lines.append(f"| {scenario} | {key} | {target} | {values} |")
    for target, reps in raw.get("S4", {}).items():
        if target != DIRECT:
            cpu = ", ".join(f"{r['cpu_s']:.2f}" for r in reps)
            peak = ", ".join(f"{r['peak_mb']:.1f}" for r in reps)
            lines.append(f"| S4 | cpu_s / peak_mb | {target} | {cpu} / {peak} |")
    return "\n".join(lines)
