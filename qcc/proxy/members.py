"""Member keys at the proxy's edge: who is calling, and may they call now. Pure, takes ``now``.

When the served cluster has member keys (``[clusters.C.keys.NAME]``, made by ``qcc key add``),
every API request must present one, as ``x-api-key`` or ``Authorization: Bearer`` (where Claude
Code puts ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_AUTH_TOKEN``), or present ``proxy.access_key``,
which stays the single shared key (the admin's: its usage is attributed to no member and no
member limit applies to it). Without member keys, ``proxy.access_key`` alone decides, as before.

:class:`KeyGate` answers each request with the member's name (``""`` for the access key) or a
:class:`Denied`: 401 for a missing, unknown or disabled key; 429 ``rate_limit_error`` with
``retry-after`` for a member over its ``rpm`` or its ``budget_daily_usd``. Such a 429 is the
member's own limit: no account is tried, none is penalised.

Cost per request: one keyed BLAKE2b of the presented key and a dict lookup. The first time a key
is seen it is checked against each member's salted hash (one SHA-256 per member, constant-time
compares); the verified key is then cached under its BLAKE2b tag (keyed with a random secret of
this process), so neither the raw key nor an unsalted hash of it is kept in memory. Valid keys
are cached (at most one entry per member), and so are up to ``UNKNOWN_MAX`` unknown ones (a
client still retrying with a removed key costs one hash per request, not one per member); both
caches are emptied when the keys change.

Spend per member is what the usage ledger attributes to it today (local day), added as responses
complete; a budget can therefore be overshot by the requests in flight when it is reached.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from qcc.config.keys import matches
from qcc.config.model import MemberKey
from qcc.usage.budget import day_start, next_day_start

WINDOW = 60.0  # seconds: rpm is counted over any sliding minute
ACCESS = ""  # the caller presented proxy.access_key: no member
UNKNOWN_MAX = 4096  # unknown keys remembered (then forgotten all at once): bounded memory


@dataclass(frozen=True, slots=True)
class Denied:
    """A request the edge answers itself, in Anthropic error format."""

    status: int
    kind: str
    message: str
    retry_after: int | None = None  # whole seconds, for 429


MISSING = Denied(
    401,
    "authentication_error",
    "qcc: this proxy requires a member key (or its access key) as x-api-key or "
    "Authorization: Bearer; ask the proxy's admin for one ('qcc key add NAME')",
)
DISABLED = Denied(
    401,
    "authentication_error",
    "qcc: this member key is disabled; ask the proxy's admin to enable it ('qcc key enable')",
)


def presented(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The keys a request presents: ``x-api-key``, then a Bearer token (Claude Code may send
    both when ANTHROPIC_API_KEY and ANTHROPIC_AUTH_TOKEN are set; either may be the key)."""
    key = headers.get("x-api-key")
    auth = headers.get("authorization")
    bearer = auth[7:].strip() if auth is not None and auth[:7].lower() == "bearer " else None
    if key and bearer:
        return (key, bearer)
    if key:
        return (key,)
    return (bearer,) if bearer else ()


class RpmWindow:
    """At most ``limit`` admissions in any sliding ``WINDOW`` seconds (a log of their times)."""

    __slots__ = ("limit", "times")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.times: deque[float] = deque()

    def admit(self, now: float) -> float | None:
        """None: admitted (and counted); else the seconds until a slot frees."""
        times = self.times
        cutoff = now - WINDOW
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) >= self.limit:
            return times[-self.limit] + WINDOW - now
        times.append(now)
        return None


class DaySpend:
    """USD spent on one local day; rolls over (to 0) at local midnight."""

    __slots__ = ("amount", "end", "start")

    def __init__(self) -> None:
        self.start = self.end = 0.0
        self.amount = 0.0

    def today(self, wall_now: float) -> float:
        return self.amount if self.start <= wall_now < self.end else 0.0

    def add(self, usd: float, wall_now: float) -> None:
        if not self.start <= wall_now < self.end:
            self.start, self.end, self.amount = day_start(wall_now), next_day_start(wall_now), 0.0
        self.amount += usd


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


class KeyGate:
    """The member keys of the served cluster, with each member's rpm window and spend today.

    One per running proxy; :meth:`apply` adopts a reloaded key table and keeps the windows and
    spend of the members that remain.
    """

    def __init__(self, keys: tuple[MemberKey, ...] = ()) -> None:
        self._tag_key = secrets.token_bytes(16)
        self._cache: dict[bytes, MemberKey] = {}
        self._unknown: set[bytes] = set()
        self._keys: tuple[MemberKey, ...] = ()
        self.windows: dict[str, RpmWindow] = {}
        self.spend: dict[str, DaySpend] = {}
        self.apply(keys)

    @property
    def active(self) -> bool:
        """Whether requests must present a member key (or the access key)."""
        return bool(self._keys)

    @property
    def keys(self) -> tuple[MemberKey, ...]:
        return self._keys

    def apply(self, keys: tuple[MemberKey, ...]) -> None:
        self._keys = keys
        self._cache = {}  # a removed key or a new hash takes effect at once
        self._unknown = set()
        windows: dict[str, RpmWindow] = {}
        for key in keys:
            if key.rpm is not None:
                window = self.windows.get(key.name) or RpmWindow(key.rpm)
                window.limit = key.rpm
                windows[key.name] = window
        self.windows = windows
        self.spend = {k.name: self.spend.get(k.name) or DaySpend() for k in keys}

    def lookup(self, key: str) -> MemberKey | None:
        """The member whose key this is (enabled or not), or None."""
        tag = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), key=self._tag_key).digest()
        found = self._cache.get(tag)
        if found is not None:
            return found
        if tag in self._unknown:
            return None
        for member in self._keys:
            if matches(key, member.salt, member.digest):
                self._cache[tag] = member
                return member
        if len(self._unknown) >= UNKNOWN_MAX:
            self._unknown.clear()
        self._unknown.add(tag)
        return None

    def identify(self, headers: Mapping[str, str]) -> MemberKey | None:
        """The enabled member a request's key belongs to, or None."""
        for key in presented(headers):
            member = self.lookup(key)
            if member is not None and member.enabled:
                return member
        return None

    def check(
        self, headers: Mapping[str, str], access_key: str | None, now: float, wall_now: float
    ) -> str | Denied:
        """Admit a request (its member's name, or :data:`ACCESS`) or say why not.

        ``now``: monotonic seconds (the rpm window); ``wall_now``: epoch seconds (the budget's
        day). An admitted request is counted in its member's rpm window.
        """
        keys = presented(headers)
        if access_key is not None:
            expected = access_key.encode()
            for key in keys:
                if hmac.compare_digest(key.encode("utf-8", "surrogateescape"), expected):
                    return ACCESS
        member = None
        for key in keys:
            member = self.lookup(key)
            if member is not None:
                break
        if member is None:
            return MISSING
        if not member.enabled:
            return DISABLED
        name = member.name
        budget = member.budget_daily_usd
        if budget is not None and self.spent_today(name, wall_now) >= budget:
            return Denied(
                429,
                "rate_limit_error",
                f"qcc: member key '{name}' has spent its daily budget of ${budget:g}; "
                "it reopens at local midnight",
                _seconds(next_day_start(wall_now) - wall_now),
            )
        window = self.windows.get(name)
        if window is not None and (wait := window.admit(now)) is not None:
            return Denied(
                429,
                "rate_limit_error",
                f"qcc: member key '{name}' is over its limit of {window.limit} requests per "
                f"minute; retry in {_seconds(wait)} s",
                _seconds(wait),
            )
        return name

    # ---- spend (fed by the usage ledger) ----------------------------------------------------

    def spent_today(self, name: str, wall_now: float) -> float:
        spend = self.spend.get(name)
        return 0.0 if spend is None else spend.today(wall_now)

    def add_spend(self, name: str, usd: float, wall_now: float) -> None:
        """A response's cost attributed to member ``name`` (unknown names are ignored)."""
        spend = self.spend.get(name)
        if spend is not None:
            spend.add(usd, wall_now)

    def seed_spend(self, spent: Mapping[str, float], wall_now: float) -> None:
        """Today's spend per member as recorded before this process started."""
        for name, usd in spent.items():
            if usd:
                self.add_spend(name, usd, wall_now)
