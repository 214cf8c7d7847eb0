"""What an upstream answer means for failover and health, and how long it keeps the account out.

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

from enum import StrEnum

from qcc.routing.ratelimit import Headers, rest_after_429, rest_when_exhausted


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


# ---- how long a failed answer keeps the account out ------------------------------------------


def rest_seconds(
    outcome: Outcome, rule_cooldown: float | None, headers: Headers, wall_now: float
) -> float | None:
    """How long a failed answer keeps the account out; None for the outcome's default.

    ``exhausted``: the reset the account announced (:func:`~qcc.routing.ratelimit.
    rest_when_exhausted`), else the matched rule's ``cooldown``. ``rate_limited``: the rule's
    ``cooldown``, else what the 429 announced (:func:`~qcc.routing.ratelimit.rest_after_429`).
    Other outcomes: None.
    """
    if outcome is Outcome.EXHAUSTED:
        announced = rest_when_exhausted(headers, wall_now)
        return rule_cooldown if announced is None else announced
    if outcome is Outcome.RATE_LIMITED:
        if rule_cooldown is not None:
            return rule_cooldown
        return rest_after_429(headers, wall_now)
    return None
