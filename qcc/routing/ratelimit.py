"""What an account says about its own limits, read from the ``anthropic-ratelimit-*`` headers.

Pure: no I/O, no clock. ``wall_now`` (unix seconds) is passed in because resets are absolute.

Two families of headers, both on every response (success or not)::

    anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}
        API keys; reset is RFC 3339                                   -> Quota
    anthropic-ratelimit-unified[-<window>]-{status,utilization,reset}
        subscription windows (5h, 7d, ...); reset is epoch seconds     -> Window
    anthropic-ratelimit-unified-representative-claim                  -> Limits.representative_claim

Either reset format is accepted in either family. A missing or garbled value is skipped, never
raised. :func:`parse_limits` costs one ``str`` comparison per header when there is nothing to
read (the common case for relays), and returns ``None`` then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

PREFIX = "anthropic-ratelimit-"
_UNIFIED = "unified-"
QUOTA_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")
_QUOTA_FIELDS = ("limit", "remaining", "reset")
_WINDOW_FIELDS = ("status", "utilization", "reset")
# Extra usage beyond the plan: its "rejected" only means "no overage", not "blocked".
NOT_A_LIMIT = frozenset({"overage"})
UTILIZATION_MAX = 0.98  # a window this full is treated as closed
MIN_COOLDOWN = 1.0
MAX_COOLDOWN = 86400.0

# ---- value parsers (shared with qcc.routing.classify) ---------------------------------------


def finite(value: str) -> float | None:
    """A finite number, or None."""
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def retry_after(value: str, wall_now: float) -> float | None:
    """``Retry-After`` in seconds from ``wall_now``: delta seconds, or an HTTP-date."""
    seconds = finite(value)
    if seconds is not None:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - wall_now


def rfc3339(value: str) -> float | None:
    """An RFC 3339 timestamp as unix seconds (no offset means UTC), or None."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_reset(value: str) -> float | None:
    """A reset time as unix seconds: epoch seconds (or milliseconds), or RFC 3339."""
    number = finite(value)
    if number is not None:
        if number <= 0:
            return None
        return number / 1000.0 if number > 1e11 else number  # ms epochs are 13 digits
    return rfc3339(value)


def _int(value: str) -> int | None:
    number = finite(value)
    if number is None or number < 0 or number != int(number):
        return None
    return int(number)


def _fraction(value: str) -> float | None:
    number = finite(value)
    if number is None or number < 0:
        return None
    return number


# ---- the snapshot ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quota:
    """One API-key limit: ``requests``, ``tokens``, ``input-tokens`` or ``output-tokens``."""

    kind: str
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # unix seconds

    @property
    def fraction(self) -> float | None:
        """remaining / limit, when both are known."""
        if self.limit is None or self.remaining is None or self.limit <= 0:
            return None
        return min(1.0, self.remaining / self.limit)

    def as_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "remaining": self.remaining, "reset": self.reset}


@dataclass(frozen=True, slots=True)
class Window:
    """One subscription window: ``""`` (the overall status), ``5h``, ``7d``, ..."""

    name: str
    status: str | None = None
    utilization: float | None = None  # 0..1
    reset: float | None = None  # unix seconds

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "utilization": self.utilization, "reset": self.reset}


@dataclass(frozen=True, slots=True)
class Limits:
    """The latest limits an account announced."""

    quotas: tuple[Quota, ...] = ()
    windows: tuple[Window, ...] = ()
    representative_claim: str | None = None

    def window(self, name: str) -> Window | None:
        for window in self.windows:
            if window.name == name:
                return window
        return None

    def as_dict(self) -> dict[str, Any]:
        """For ``/accounts/stats``: ``{"headroom", "quotas": {kind: ...}, "unified": {...}}``."""
        return {
            "headroom": headroom(self),
            "quotas": {quota.kind: quota.as_dict() for quota in self.quotas},
            "unified": {(w.name or "overall"): w.as_dict() for w in self.windows},
            "representative_claim": self.representative_claim,
        }


def _items(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def parse_limits(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Limits | None:
    """The limits in a response's headers, or None when it carries no rate-limit header.

    ``headers`` is a mapping (lower-case keys, e.g. a ``CIMultiDict``) or ``(name, value)``
    pairs as received (any case). Never raises on bad values: they are skipped.
    """
    found: dict[str, str] | None = None
    for name, value in _items(headers):
        # The common case is one failed comparison per header: no allocation.
        if name.startswith(PREFIX) or (name[:1] in "aA" and name[:20].lower() == PREFIX):
            if found is None:
                found = {}
            found[name[20:].lower()] = value
    if found is None:
        return None
    return _build(found)


def _build(found: dict[str, str]) -> Limits:
    quotas: list[Quota] = []
    for kind in QUOTA_KINDS:
        limit = found.get(f"{kind}-limit")
        remaining = found.get(f"{kind}-remaining")
        reset = found.get(f"{kind}-reset")
        if limit is None and remaining is None and reset is None:
            continue
        quota = Quota(
            kind,
            limit=None if limit is None else _int(limit),
            remaining=None if remaining is None else _int(remaining),
            reset=None if reset is None else parse_reset(reset),
        )
        if quota.limit is not None or quota.remaining is not None or quota.reset is not None:
            quotas.append(quota)
    fields: dict[str, dict[str, str]] = {}
    claim: str | None = None
    for key, value in found.items():
        if not key.startswith(_UNIFIED):
            continue
        rest = key[len(_UNIFIED) :]
        if rest == "representative-claim":
            claim = value.strip() or None
            continue
        if rest in _WINDOW_FIELDS:
            name, field = "", rest
        else:
            name, _, field = rest.rpartition("-")
            if field not in _WINDOW_FIELDS or not name or "-" in name or name in NOT_A_LIMIT:
                continue  # e.g. fallback-percentage, 5h-surpassed-threshold, overage-status
        fields.setdefault(name, {})[field] = value
    windows: list[Window] = []
    for name in sorted(fields):
        raw = fields[name]
        status = raw.get("status")
        utilization = raw.get("utilization")
        reset = raw.get("reset")
        window = Window(
            name,
            status=status.strip().lower() or None if status is not None else None,
            utilization=None if utilization is None else _fraction(utilization),
            reset=None if reset is None else parse_reset(reset),
        )
        if window.status or window.utilization is not None or window.reset is not None:
            windows.append(window)
    return Limits(tuple(quotas), tuple(windows), claim)


# ---- decisions -------------------------------------------------------------------------------


def headroom(limits: Limits) -> float | None:
    """The least room left, 0..1: the smallest remaining/limit, or 1 - utilization of a window.

    None when the account announced nothing to compute it from.
    """
    least: float | None = None
    for quota in limits.quotas:
        fraction = quota.fraction
        if fraction is not None and (least is None or fraction < least):
            least = fraction
    for window in limits.windows:
        if window.utilization is not None:
            room = max(0.0, 1.0 - min(window.utilization, 1.0))
            if least is None or room < least:
                least = room
    return least


def _closed_windows(limits: Limits) -> list[Window]:
    """Windows (the overall status included) that are rejected or used up."""
    return [
        w
        for w in limits.windows
        if w.rejected or (w.utilization is not None and w.utilization >= UTILIZATION_MAX)
    ]


def _latest_future(resets: Iterable[float | None], wall_now: float) -> float | None:
    future = [at for at in resets if at is not None and at > wall_now]
    return max(future) if future else None


def blocked_until(limits: Limits, headroom_min: float, wall_now: float) -> float | None:
    """When an account that said it is (nearly) out of room has room again (unix seconds).

    Out of room: a quota with remaining <= 0 or below ``headroom_min`` x limit; a unified
    window (or the overall status) ``rejected``, or used to ``UTILIZATION_MAX`` or more.
    Every closed limit must have reset before a request can pass, hence the latest reset.
    None when the account has room, or when the resets it gave have passed (or are unknown).
    """
    resets: list[float | None] = [w.reset for w in _closed_windows(limits)]
    for quota in limits.quotas:
        if quota.remaining is None:
            continue
        if quota.remaining <= 0 or (
            quota.limit is not None and quota.remaining < headroom_min * quota.limit
        ):
            resets.append(quota.reset)
    return _latest_future(resets, wall_now)


def _clamp(seconds: float) -> float:
    return min(max(seconds, MIN_COOLDOWN), MAX_COOLDOWN)


def cooldown_for_429(
    limits: Limits | None, retry_after_seconds: float | None, wall_now: float, default: float
) -> float:
    """How long a 429 cools an account down, in seconds (clamped to [1 s, 1 day]).

    A 429 with a ``rejected`` (or used-up) unified window waits for that window's reset: hours,
    not the ``retry-after`` of a request-scoped limit. Otherwise ``retry-after`` when given;
    else the reset of an exhausted API quota (remaining 0); else ``default`` (a few seconds:
    a 429 that says nothing is request-scoped).
    """
    if limits is not None:
        until = _latest_future((w.reset for w in _closed_windows(limits)), wall_now)
        if until is not None:
            return _clamp(until - wall_now)
    if retry_after_seconds is not None:
        return _clamp(retry_after_seconds)
    if limits is not None:
        until = _latest_future(
            (q.reset for q in limits.quotas if q.remaining is not None and q.remaining <= 0),
            wall_now,
        )
        if until is not None:
            return _clamp(until - wall_now)
    return _clamp(default)
