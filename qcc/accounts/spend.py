"""What an account spent today and this month, kept in memory for its budgets, and whether it
reached one.

Pure: wall-clock seconds in. Seeded from the usage store when the proxy starts, added to by every
recorded cost, and rolled over at local midnight and on the 1st of the month
(:mod:`qcc.usage.budget`), so a new day starts at zero without a query. The pool turns a reached
budget into the account's ``exhausted`` state (:meth:`~qcc.accounts.pool.AccountPool.check_budget`).
"""

from __future__ import annotations

from dataclasses import dataclass

from qcc.usage.budget import next_day_start, next_month_start, over_budget_until


@dataclass(slots=True)
class Spend:
    today: float = 0.0  # USD since local midnight
    month: float = 0.0  # USD since the 1st of the month
    day_ends: float = 0.0  # wall clock at which ``today`` starts again from zero
    month_ends: float = 0.0

    def seed(self, today: float, month: float, wall_now: float) -> None:
        """Start from what the store recorded for ``wall_now``'s day and month."""
        self.today, self.month = today, month
        self.day_ends, self.month_ends = next_day_start(wall_now), next_month_start(wall_now)

    def roll(self, wall_now: float) -> None:
        """Start a new day (and month) at zero once its predecessor has ended."""
        if wall_now >= self.day_ends:
            self.today = 0.0
            self.day_ends = next_day_start(wall_now)
            if wall_now >= self.month_ends:
                self.month = 0.0
                self.month_ends = next_month_start(wall_now)

    def add(self, usd: float, wall_now: float) -> None:
        self.roll(wall_now)
        self.today += usd
        self.month += usd

    def over_budget(
        self, daily: float | None, monthly: float | None, wall_now: float
    ) -> float | None:
        """When a reached daily or monthly budget lets the account spend again (wall clock), else
        None; the day (and month) rolled over first."""
        self.roll(wall_now)
        return over_budget_until(self.today, self.month, daily, monthly, wall_now)

    def budget_reason(self, daily: float | None, monthly: float | None, until: float) -> str:
        """Which budget :meth:`over_budget` found reached (the one that holds until ``until``)."""
        if (
            daily is not None
            and self.today >= daily
            and (monthly is None or self.month < monthly or until <= self.day_ends)
        ):
            return f"daily budget ${daily:.2f} reached (${self.today:.2f} spent)"
        return f"monthly budget ${monthly or 0.0:.2f} reached (${self.month:.2f} spent)"
