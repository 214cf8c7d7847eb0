"""Token usage kept across restarts: ``usage-<cluster>.json`` in the state dir.

Loaded into the pool when the proxy starts, saved every ``interval`` seconds while it changes and
once more at shutdown, by a task the app's cleanup context owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from qcc.accounts.pool import AccountPool
from qcc.config.store import atomic_write
from qcc.paths import state_dir
from qcc.stats import USAGE_FIELDS

log = logging.getLogger("qcc.proxy")


def usage_path(cluster: str) -> Path:
    return state_dir() / f"usage-{cluster}.json"


def snapshot(pool: AccountPool) -> dict[str, dict[str, int]]:
    return {name: m.stats.usage.as_dict() for name, m in pool.members.items()}


def load_into(pool: AccountPool, path: Path) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable usage record %s: %s", path, exc)
        return
    accounts = data.get("accounts", {}) if isinstance(data, dict) else {}
    for name, member in pool.members.items():
        saved = accounts.get(name)
        if isinstance(saved, dict):
            member.stats.usage.add(
                {k: v for k in USAGE_FIELDS if isinstance(v := saved.get(k), int)}
            )


def save(pool: AccountPool, path: Path) -> None:
    try:
        atomic_write(path, json.dumps({"accounts": snapshot(pool)}, indent=2) + "\n")
    except OSError as exc:
        log.warning("cannot save usage record %s: %s", path, exc)


async def keep_saved(pool: AccountPool, path: Path, interval: float = 10.0) -> None:
    """Save whenever usage changed, until cancelled; then save once more."""
    last = snapshot(pool)
    try:
        while True:
            await asyncio.sleep(interval)
            current = snapshot(pool)
            if current != last:
                save(pool, path)
                last = current
    finally:
        with contextlib.suppress(Exception):
            if snapshot(pool) != last:
                save(pool, path)
