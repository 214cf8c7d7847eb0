"""Where a proxy's time goes under a wrk scenario: py-spy samples it while wrk loads it.

Writes the collapsed stacks to ``bench/results/profile-<name>.txt`` and returns a Markdown
summary: self time by module and by function, and inclusive time by function.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from loadgen import wrk
from procs import BENCH, LOAD_CORE, Proc, pinned

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")
_PREFIXES = ("site-packages/", f"{BENCH.parent}/", "lib/python3.11/", "lib/python3.12/")


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _short(path: str) -> str:
    for prefix in _PREFIXES:
        if prefix in path:
            return path.split(prefix, 1)[1]
    return path


def _frame(raw: str) -> tuple[str, str]:
    """(module file, function) of one py-spy frame."""
    match = _FRAME.match(raw.strip())
    if match is None:
        return raw.strip(), raw.strip()
    return _short(match["file"]), match["func"]


def summarize(collapsed: str, top: int = 20) -> str:
    self_fn: Counter[str] = Counter()
    self_mod: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        module, func = frames[-1]
        if module == "threading.py" and func.endswith("wait"):
            idle += count  # a helper thread (e.g. a log flusher) waiting: not CPU
            continue
        total += count
        self_fn[f"{func} ({module})"] += count
        self_mod[module] += count
        for name in {f"{fn} ({mod})" for mod, fn in frames}:
            inclusive[name] += count
    if not total:
        return "(no samples)"

    def table(title: str, counter: Counter[str]) -> list[str]:
        out = [f"| {title} | % of samples |", "|---|---|"]
        out += [f"| `{name}` | {n / total:.1%} |" for name, n in counter.most_common(top)]
        return [*out, ""]

    lines = [f"{total} samples ({idle} of waiting helper threads left out)", ""]
    lines += table("self time by module", self_mod)
    lines += table("self time by function", self_fn)
    # frames on (nearly) every stack are the entry chain (main, Runner.run): not informative
    inside = Counter({k: n for k, n in inclusive.items() if n < 0.9 * total})
    lines += table("inclusive time by function (entry chain left out)", inside)
    return "\n".join(lines)


def profile(
    proc: Proc,
    out_dir: Path,
    scenario: str,
    body: str,
    connections: int,
    seconds: float = 6.0,
    tag: str = "",
) -> str:
    """Sample ``proc`` with py-spy during a wrk run of ``scenario``; a Markdown summary.

    Saved as ``profile-<name>[-<tag>].txt`` (the tag: the event loop).
    """
    spy = py_spy()
    if spy is None:
        return f"({proc.name}: py-spy not found; `pip install py-spy` to profile)"
    out = out_dir / f"profile-{proc.name}{'-' + tag if tag else ''}.txt"
    argv = [spy, "record", "-p", str(proc.pid), "-d", f"{seconds:g}", "-r", "250"]
    argv += ["-f", "raw", "-o", str(out)]
    with subprocess.Popen(
        pinned(LOAD_CORE, argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as spying:
        result = wrk(proc.url, body, connections, seconds + 1)
        _, err = spying.communicate(timeout=seconds + 30)
    if spying.returncode != 0 or not out.exists():
        return f"({proc.name}: py-spy failed: {err.decode(errors='replace')[-500:]})"
    shown = f"{proc.name}, {tag}" if tag else proc.name
    head = f"### {shown} ({scenario}, {result.rps:,.0f} req/s while sampled)\n\n"
    return head + summarize(out.read_text())
