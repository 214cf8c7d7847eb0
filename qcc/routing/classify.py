"""What an upstream answer means for failover and health, and how long a 429 cools an account down.

Pure functions: no I/O, no clock. ``wall_now`` (unix seconds) is passed in by the caller because
rate-limit headers carry absolute times.

    status        outcome        fails over   counts against health
    2xx, 3xx      SUCCESS        no           no
    401, 403      AUTH_FAILED    yes          no (the account is marked auth_failed instead)
    429           RATE_LIMITED   yes          no (the account cools down instead)
    other 4xx     CLIENT_ERROR   no           no (the request is at fault: passed through)
    529           OVERLOADED     yes          yes
    other 5xx     SERVER_ERROR   yes          yes
    (no status)   NETWORK, TIMEOUT, STREAM_ERROR: set by the caller; fail over, count

The error body of a 4xx/5xx can overrule the status (:func:`classify_answer`, with the action of
the rule it matched in :mod:`qcc.routing.rules`)::

    action        outcome        fails over   counts against health
    exhausted     EXHAUSTED      yes          no (the account is marked exhausted instead)
    auth_failed   AUTH_FAILED    yes          no (auth_failed)
    rate_limited  RATE_LIMITED   yes          no (cools down)
    fail_over     CAPABILITY     yes          no (no penalty at all: another account may have it)
    pass_through  CLIENT_ERROR   no           no (whatever the status: the client gets it as is)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum

from qcc.routing.ratelimit import MAX_COOLDOWN as MAX_COOLDOWN
from qcc.routing.ratelimit import MIN_COOLDOWN as MIN_COOLDOWN
from qcc.routing.ratelimit import finite, retry_after, rfc3339


class Outcome(StrEnum):
    SUCCESS = "success"
    CLIENT_ERROR = "client_error"
    AUTH_FAILED = "auth_failed"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    NETWORK = "network"
    TIMEOUT = "timeout"
    STREAM_ERROR = "stream_error"
    EXHAUSTED = "exhausted"  # out of credit, quota or budget (a rule matched the error body)
    CAPABILITY = "capability"  # this account lacks what the request needs; another may not


_NO_FAILOVER = frozenset({Outcome.SUCCESS, Outcome.CLIENT_ERROR})
_HEALTH = frozenset(
    {
        Outcome.OVERLOADED,
        Outcome.SERVER_ERROR,
        Outcome.NETWORK,
        Outcome.TIMEOUT,
        Outcome.STREAM_ERROR,
    }
)


def classify_status(status: int) -> Outcome:
    """The outcome of an upstream response by its HTTP status."""
    if status < 400:
        return Outcome.SUCCESS
    if status in (401, 403):
        return Outcome.AUTH_FAILED
    if status == 429:
        return Outcome.RATE_LIMITED
    if status < 500:
        return Outcome.CLIENT_ERROR
    if status == 529:
        return Outcome.OVERLOADED
    return Outcome.SERVER_ERROR


_ACTIONS = {
    "exhausted": Outcome.EXHAUSTED,
    "auth_failed": Outcome.AUTH_FAILED,
    "rate_limited": Outcome.RATE_LIMITED,
    "fail_over": Outcome.CAPABILITY,
    "pass_through": Outcome.CLIENT_ERROR,
}


def classify_answer(status: int, action: str | None) -> Outcome:
    """The outcome of an error answer whose body matched a rule with ``action``; with None (no
    rule matched), the status decides as :func:`classify_status`."""
    if action is None:
        return classify_status(status)
    return _ACTIONS[action]


def fails_over(outcome: Outcome) -> bool:
    """Whether the request should be sent to another account."""
    return outcome not in _NO_FAILOVER


def counts_against_health(outcome: Outcome) -> bool:
    """Whether the outcome counts toward ejecting the account (outlier detection)."""
    return outcome in _HEALTH


# ---- cooldown ----------------------------------------------------------------------------
# Superseded for the proxy by qcc.routing.ratelimit.cooldown_for_429; kept for its callers.

_UNIFIED_RESET = re.compile(r"^anthropic-ratelimit-unified(-[a-z0-9_]+)?-reset$")
_STANDARD_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")


def _clamp(seconds: float) -> float:
    return min(max(seconds, MIN_COOLDOWN), MAX_COOLDOWN)


def _pick(resets: list[tuple[float, bool]], blocked_only: bool = False) -> float | None:
    """The reset to wait for: the latest exhausted one if any limit is exhausted, else the soonest.

    Every exhausted limit must have reset before a request can succeed, hence the latest of them.
    """
    exhausted = [at for at, out in resets if out]
    if exhausted:
        return max(exhausted)
    if blocked_only:
        return None
    return min((at for at, _ in resets), default=None)


def _unified(view: Mapping[str, str], blocked_only: bool = False) -> float | None:
    """Claude subscription headers: ``anthropic-ratelimit-unified[-5h|-7d|...]-reset`` (epoch)."""
    resets: list[tuple[float, bool]] = []
    for key, value in view.items():
        match = _UNIFIED_RESET.match(key)
        if match is None:
            continue
        at = finite(value)
        if at is None or at <= 0:
            continue
        status = view.get(f"anthropic-ratelimit-unified{match.group(1) or ''}-status")
        # "allowed" and "allowed_warning" still let requests through; anything else blocks.
        blocked = status is not None and not status.strip().lower().startswith("allowed")
        resets.append((at, blocked))
    return _pick(resets, blocked_only)


def _standard(view: Mapping[str, str], blocked_only: bool = False) -> float | None:
    """API-key headers: ``anthropic-ratelimit-{requests,tokens,...}-reset`` (RFC 3339)."""
    resets: list[tuple[float, bool]] = []
    for kind in _STANDARD_KINDS:
        raw = view.get(f"anthropic-ratelimit-{kind}-reset")
        if raw is None:
            continue
        at = rfc3339(raw)
        if at is None:
            continue
        remaining = view.get(f"anthropic-ratelimit-{kind}-remaining")
        resets.append((at, remaining is not None and remaining.strip() == "0"))
    return _pick(resets, blocked_only)


def announced_cooldown(headers: Mapping[str, str], wall_now: float) -> float | None:
    """How long a rate-limited account asks to rest, from its 429 response headers; None if
    it says nothing usable (the caller's default, ``health.rate_limit_default``, applies).

    Tried in order, the first well-formed answer wins: ``retry-after`` (seconds or HTTP-date);
    the unified subscription resets (epoch seconds); the per-kind API resets (RFC 3339).
    Malformed values are skipped. The result is clamped to [1 s, 1 day].
    """
    return _announced(headers, wall_now, blocked_only=False)


def cooldown_seconds(headers: Mapping[str, str], wall_now: float, default: float) -> float:
    """:func:`announced_cooldown`, else ``default`` (clamped the same way)."""
    seconds = announced_cooldown(headers, wall_now)
    return _clamp(default) if seconds is None else seconds


def announced_reset(headers: Mapping[str, str], wall_now: float) -> float | None:
    """How long an exhausted account says it stays out, from its error's headers; None if it
    does not say (the rule's ``cooldown``, else ``health.exhausted_recheck``, applies).

    Only a limit the account reports as used up counts: ``retry-after``, a unified window whose
    status is not ``allowed``, a per-kind limit with ``remaining: 0``. The reset of a limit that
    still has room (every API response carries them) says nothing about credit. Clamped to
    [1 s, 1 day]: a monthly quota is retried after a day, by one trial request.
    """
    return _announced(headers, wall_now, blocked_only=True)


def _announced(headers: Mapping[str, str], wall_now: float, *, blocked_only: bool) -> float | None:
    """``retry-after``, else the unified resets, else the per-kind resets: seconds from now."""
    view = {str(key).lower(): str(value) for key, value in headers.items()}
    header = view.get("retry-after")
    if header is not None:
        seconds = retry_after(header, wall_now)
        if seconds is not None:
            return _clamp(seconds)
    for reader in (_unified, _standard):
        at = reader(view, blocked_only)
        if at is not None:
            return _clamp(at - wall_now)
    return None


def rest_seconds(
    outcome: Outcome, rule_cooldown: float | None, headers: Mapping[str, str], wall_now: float
) -> float | None:
    """How long a failed answer keeps the account out; None for the outcome's default.

    ``exhausted``: the reset the account announced (:func:`announced_reset`), else the matched
    rule's ``cooldown``. ``rate_limited``: the rule's ``cooldown``, else what the account
    announced (:func:`announced_cooldown`). Other outcomes: None.
    """
    if outcome is Outcome.EXHAUSTED:
        announced = announced_reset(headers, wall_now)
        return rule_cooldown if announced is None else announced
    if outcome is Outcome.RATE_LIMITED:
        if rule_cooldown is not None:
            return rule_cooldown
        return announced_cooldown(headers, wall_now)
    return None
