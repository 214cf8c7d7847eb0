"""One account of a running proxy: its config joined with its health, latency score and stats."""

from __future__ import annotations

from dataclasses import dataclass, field

from qcc.accounts.spend import Spend
from qcc.config.model import Account
from qcc.credentials.source import CredentialSource
from qcc.health.state import AccountHealth
from qcc.routing.latency import LatencyScore
from qcc.routing.ratelimit import Limits
from qcc.stats import AccountStats


@dataclass(eq=False)
class Member:
    account: Account
    health: AccountHealth
    latency: LatencyScore = field(default_factory=LatencyScore)
    stats: AccountStats = field(default_factory=AccountStats)
    last_used: float = 0.0  # monotonic time of the last attempt or probe
    header: tuple[str, str] | None = None  # resolved credential header; None if unresolvable
    limits: Limits | None = None  # the latest rate limits the account announced
    full_until: float | None = None  # monotonic: said it is (nearly) out of room until then
    spend: Spend = field(default_factory=Spend)  # USD today / this month, for budgets
    # A credential fetched while running (command, OAuth2); None for inline and env ones.
    source: CredentialSource | None = None

    @property
    def name(self) -> str:
        return self.account.name

    def secrets(self) -> tuple[str, ...]:
        """The account's credential as sent (and the bare token of a bearer header)."""
        if self.header is None:
            return ()
        value = self.header[1]
        return (value, value[7:]) if value[:7].lower() == "bearer " else (value,)
