"""Local calendar days and months, and when a spending budget closes an account.

Pure: wall-clock seconds in, local dates out (``time.localtime`` follows ``TZ``). Usage is
recorded per *local* day, and budgets reset at local midnight and on the 1st of the month.
"""

from __future__ import annotations

import time
from datetime import date, timedelta


def local_day(wall: float) -> str:
    """The local date of ``wall`` as ``YYYY-MM-DD``."""
    t = time.localtime(wall)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"


def _midnight(year: int, month: int, day: int) -> float:
    # mktime normalises day 32 or month 13; isdst=-1 lets it pick DST for that date
    return time.mktime((year, month, day, 0, 0, 0, 0, 0, -1))


def day_start(wall: float) -> float:
    """Local midnight at the start of ``wall``'s day."""
    t = time.localtime(wall)
    return _midnight(t.tm_year, t.tm_mon, t.tm_mday)


def next_day_start(wall: float) -> float:
    """Local midnight at the end of ``wall``'s day."""
    t = time.localtime(wall)
    return _midnight(t.tm_year, t.tm_mon, t.tm_mday + 1)


def month_start(wall: float) -> float:
    """Local midnight on the 1st of ``wall``'s month."""
    t = time.localtime(wall)
    return _midnight(t.tm_year, t.tm_mon, 1)


def next_month_start(wall: float) -> float:
    """Local midnight on the 1st of the month after ``wall``'s."""
    t = time.localtime(wall)
    return _midnight(t.tm_year, t.tm_mon + 1, 1)


def days_back(wall: float, days: int) -> str:
    """The local date ``days - 1`` days before ``wall``'s: ``7`` gives a 7-day span with today."""
    today = date.fromisoformat(local_day(wall))
    return (today - timedelta(days=max(days, 1) - 1)).isoformat()


def over_budget_until(
    spent_today: float,
    spent_month: float,
    daily: float | None,
    monthly: float | None,
    wall_now: float,
) -> float | None:
    """When an account that reached its budget may spend again (wall clock), else None.

    The daily budget reopens at the next local midnight, the monthly one on the 1st of next
    month; when both are reached, the later wins.
    """
    until: float | None = None
    if monthly is not None and spent_month >= monthly:
        until = next_month_start(wall_now)
    if daily is not None and spent_today >= daily:
        tomorrow = next_day_start(wall_now)
        until = tomorrow if until is None else max(until, tomorrow)
    return until
