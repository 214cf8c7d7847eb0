"""One account of a running proxy: its config joined with its health, latency score and stats."""

from __future__ import annotations

from dataclasses import dataclass, field

from qcc.config.model import Account
from qcc.health.state import AccountHealth
from qcc.routing.latency import LatencyScore
from qcc.stats import AccountStats


@dataclass(eq=False)
class Member:
    account: Account
    health: AccountHealth
    latency: LatencyScore = field(default_factory=LatencyScore)
    stats: AccountStats = field(default_factory=AccountStats)
    last_used: float = 0.0  # monotonic time of the last attempt or probe
    header: tuple[str, str] | None = None  # resolved credential header; None if unresolvable

    @property
    def name(self) -> str:
        return self.account.name

    def secrets(self) -> tuple[str, ...]:
        """The account's credential as sent (and the bare token of a bearer header)."""
        if self.header is None:
            return ()
        value = self.header[1]
        return (value, value[7:]) if value[:7].lower() == "bearer " else (value,)
