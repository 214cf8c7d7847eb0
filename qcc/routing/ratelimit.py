"""What an account says about its own limits, read from the ``anthropic-ratelimit-*`` headers.

Pure: no I/O, no clock. ``wall_now`` (unix seconds) is passed in because resets are absolute.

Two families of headers, both on every response (success or not)::

    anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}
        API keys; reset is RFC 3339                                   -> Quota
    anthropic-ratelimit-unified[-<window>]-{status,utilization,reset}
        subscription windows (5h, 7d, ...); reset is epoch seconds     -> Window
    anthropic-ratelimit-unified-representative-claim                  -> Limits.representative_claim

Either reset format is accepted in either family. A missing or garbled value is skipped, never
raised. When there is nothing to read (the common case for relays) :func:`parse_limits` costs a
length test and one character comparison per header, allocates nothing and returns ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

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
MAX_WINDOW_COOLDOWN = 8 * 86400.0  # a rejected weekly window may keep an account out for days

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
    if "-" in value or ":" in value:  # a date (or a negative number, which is no reset either)
        return rfc3339(value)
    number = finite(value)
    if number is None or number <= 0:
        return None
    return number / 1000.0 if number > 1e11 else number  # ms epochs are 13 digits


def _int(value: str) -> int | None:
    value = value.strip()
    if value.isdigit():  # the common case, without raising
        return int(value)
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


class Quota(NamedTuple):
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


class Window(NamedTuple):
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


Headers = Mapping[str, str] | Iterable[tuple[str, str]]  # a mapping, or pairs as received


def _items(headers: Headers) -> Iterable[tuple[str, str]]:
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def parse_limits(headers: Headers) -> Limits | None:
    """The limits in a response's headers, or None when it carries no rate-limit header.

    ``headers`` is a mapping (lower-case keys, e.g. a ``CIMultiDict``) or ``(name, value)``
    pairs as received (any case). Never raises on bad values: they are skipped.
    """
    found: dict[str, str] | None = None
    for name, value in headers if isinstance(headers, list) else _items(headers):
        # The common case costs a length test and one character comparison: no allocation.
        if len(name) > 20 and name[19] == "-" and name[:20].lower() == PREFIX:
            if found is None:
                found = {}
            found[name[20:].lower()] = value
    if found is None:
        return None
    return _build(found)


_QUOTA_KEYS = {f"{kind}-{field}": (kind, field) for kind in QUOTA_KINDS for field in _QUOTA_FIELDS}


def _build(found: dict[str, str]) -> Limits:
    quotas: dict[str, dict[str, Any]] = {}
    windows: dict[str, dict[str, Any]] = {}
    claim: str | None = None
    for key, value in found.items():
        hit = _QUOTA_KEYS.get(key)
        if hit is not None:
            kind, field = hit
            number = parse_reset(value) if field == "reset" else _int(value)
            if number is not None:
                quotas.setdefault(kind, {})[field] = number
            continue
        if not key.startswith(_UNIFIED):
            continue
        rest = key[8:]  # len(_UNIFIED)
        if rest in _WINDOW_FIELDS:
            name, field = "", rest
        elif rest == "representative-claim":
            claim = value.strip() or None
            continue
        else:
            name, _, field = rest.rpartition("-")
            if field not in _WINDOW_FIELDS or not name or "-" in name or name in NOT_A_LIMIT:
                continue  # e.g. fallback-percentage, 5h-surpassed-threshold, overage-status
        parsed: str | float | None
        if field == "status":
            parsed = value.strip().lower() or None
        elif field == "reset":
            parsed = parse_reset(value)
        else:
            parsed = _fraction(value)
        if parsed is not None:
            windows.setdefault(name, {})[field] = parsed
    return Limits(
        tuple(Quota(kind, **quotas[kind]) for kind in QUOTA_KINDS if kind in quotas),
        tuple(Window(name, **windows[name]) for name in sorted(windows)),
        claim,
    )


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


def _clamp(seconds: float, most: float = MAX_COOLDOWN) -> float:
    return min(max(seconds, MIN_COOLDOWN), most)


def _announced_429(
    limits: Limits | None, retry_after_seconds: float | None, wall_now: float
) -> float | None:
    if limits is not None:
        until = _latest_future((w.reset for w in _closed_windows(limits)), wall_now)
        if until is not None:
            return _clamp(until - wall_now, MAX_WINDOW_COOLDOWN)
    if retry_after_seconds is not None:
        return _clamp(retry_after_seconds)
    if limits is not None:
        until = _latest_future(
            (q.reset for q in limits.quotas if q.remaining is not None and q.remaining <= 0),
            wall_now,
        )
        if until is not None:
            return _clamp(until - wall_now)
    return None


def cooldown_for_429(
    limits: Limits | None, retry_after_seconds: float | None, wall_now: float, default: float
) -> float:
    """How long a 429 cools an account down, in seconds (at least 1 s; at most 1 day, or 8 days
    for a unified window).

    A 429 with a ``rejected`` (or used-up) unified window waits for that window's reset: hours,
    not the ``retry-after`` of a request-scoped limit. Otherwise ``retry-after`` when given;
    else the reset of an exhausted API quota (remaining 0); else ``default`` (a few seconds:
    a 429 that says nothing is request-scoped).
    """
    seconds = _announced_429(limits, retry_after_seconds, wall_now)
    return _clamp(default) if seconds is None else seconds


# ---- the same decisions, from a response's headers -------------------------------------------


def _retry_after_header(headers: Headers, wall_now: float) -> float | None:
    if isinstance(headers, Mapping):
        value = headers.get("retry-after")
    else:
        value = next((v for k, v in headers if k.lower() == "retry-after"), None)
    return None if value is None else retry_after(value, wall_now)


def rest_after_429(headers: Headers, wall_now: float) -> float | None:
    """:func:`cooldown_for_429` of a rate-limited response's headers; None when they say
    nothing usable (the caller's default, ``health.rate_limit_default``, applies)."""
    return _announced_429(parse_limits(headers), _retry_after_header(headers, wall_now), wall_now)


def rest_when_exhausted(headers: Headers, wall_now: float) -> float | None:
    """How long an account out of credit or quota says it stays out; None if it does not say
    (the matched rule's ``cooldown``, else ``health.exhausted_recheck``, applies).

    Only a limit the account reports as used up counts: ``retry-after``, a closed unified window
    (:func:`blocked_until`'s meaning), an API quota with ``remaining: 0``. The reset of a limit
    that still has room (every API response carries them) says nothing about credit. Clamped to
    [1 s, 1 day]: a monthly quota is retried after a day, by one trial request.
    """
    seconds = _retry_after_header(headers, wall_now)
    if seconds is not None:
        return _clamp(seconds)
    limits = parse_limits(headers)
    if limits is None:
        return None
    until = blocked_until(limits, 0.0, wall_now)
    return None if until is None else _clamp(until - wall_now)
