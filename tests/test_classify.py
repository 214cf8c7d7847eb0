from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from qcc.routing.classify import (
    Outcome,
    classify_answer,
    classify_status,
    counts_against_health,
    fails_over,
    rest_seconds,
)
from qcc.routing.ratelimit import (
    MAX_COOLDOWN,
    Headers,
    cooldown_for_429,
    parse_limits,
    rest_after_429,
    rest_when_exhausted,
    retry_after,
)

WALL = 1_750_000_000.0  # a fixed "time.time()"


def iso(offset: float) -> str:
    return datetime.fromtimestamp(WALL + offset, UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SUCCESS),
        (201, Outcome.SUCCESS),
        (304, Outcome.SUCCESS),
        (400, Outcome.CLIENT_ERROR),
        (404, Outcome.CLIENT_ERROR),
        (405, Outcome.CLIENT_ERROR),
        (413, Outcome.CLIENT_ERROR),
        (422, Outcome.CLIENT_ERROR),
        (499, Outcome.CLIENT_ERROR),
        (401, Outcome.AUTH_FAILED),
        (403, Outcome.AUTH_FAILED),
        (429, Outcome.RATE_LIMITED),
        (500, Outcome.SERVER_ERROR),
        (502, Outcome.SERVER_ERROR),
        (503, Outcome.SERVER_ERROR),
        (504, Outcome.SERVER_ERROR),
        (529, Outcome.OVERLOADED),
    ],
)
def test_classify_status(status: int, outcome: Outcome) -> None:
    assert classify_status(status) is outcome


@pytest.mark.parametrize(
    ("outcome", "failover", "health"),
    [
        (Outcome.SUCCESS, False, False),
        (Outcome.CLIENT_ERROR, False, False),
        (Outcome.AUTH_FAILED, True, False),
        (Outcome.RATE_LIMITED, True, False),
        (Outcome.OVERLOADED, True, True),
        (Outcome.SERVER_ERROR, True, True),
        (Outcome.NETWORK, True, True),
        (Outcome.TIMEOUT, True, True),
        (Outcome.STREAM_ERROR, True, True),
        (Outcome.EXHAUSTED, True, False),
        (Outcome.CAPABILITY, True, False),
    ],
)
def test_failover_and_health(outcome: Outcome, failover: bool, health: bool) -> None:
    assert fails_over(outcome) is failover
    assert counts_against_health(outcome) is health


def test_outcome_values_are_strings() -> None:
    assert str(Outcome.RATE_LIMITED) == "rate_limited"
    assert f"{Outcome.STREAM_ERROR}" == "stream_error"


HTTP_DATE_IN_120 = format_datetime(datetime.fromtimestamp(WALL + 120, UTC), usegmt=True)
HTTP_DATE_PAST = format_datetime(datetime.fromtimestamp(WALL - 120, UTC), usegmt=True)
DEFAULT = 42.0  # the caller's rate_limit_default in these cases


def cooldown(headers: Headers) -> float:
    """What a 429 with ``headers`` cools its account for, the proxy's and the probe's way."""
    return cooldown_for_429(
        parse_limits(headers),
        None if (ra := dict(headers).get("retry-after")) is None else retry_after(ra, WALL),
        WALL,
        DEFAULT,
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after": "30"}, 30.0, id="retry-after seconds"),
        pytest.param({"retry-after": "0"}, 1.0, id="retry-after 0 clamps to 1"),
        pytest.param({"retry-after": "999999"}, MAX_COOLDOWN, id="retry-after clamps to a day"),
        pytest.param({"retry-after": HTTP_DATE_IN_120}, 120.0, id="retry-after HTTP-date"),
        pytest.param({"retry-after": HTTP_DATE_PAST}, 1.0, id="retry-after date in the past"),
        pytest.param({"retry-after": "soon"}, None, id="retry-after malformed"),
        pytest.param({"retry-after": "-5"}, None, id="retry-after negative"),
        pytest.param({"retry-after": "inf"}, None, id="retry-after infinite"),
        pytest.param({"retry-after": "nan"}, None, id="retry-after nan"),
        pytest.param({}, None, id="nothing said: request-scoped"),
        pytest.param(
            {
                "retry-after": "5",
                "anthropic-ratelimit-unified-5h-status": "rejected",
                "anthropic-ratelimit-unified-5h-reset": str(int(WALL + 3600)),
            },
            3600.0,
            id="a rejected window outlasts retry-after",
        ),
        pytest.param(
            {
                "retry-after": "5",
                "anthropic-ratelimit-unified-5h-status": "allowed",
                "anthropic-ratelimit-unified-5h-reset": str(int(WALL + 3600)),
            },
            5.0,
            id="an open window: retry-after",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-unified-reset": str(int(WALL + 900)),
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-5h-reset": str(int(WALL + 300)),
                "anthropic-ratelimit-unified-5h-status": "rejected",
            },
            900.0,
            id="several rejected: wait for all",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-unified-7d-status": "rejected",
                "anthropic-ratelimit-unified-7d-reset": "2025-06-16T15:06:40Z",
            },
            datetime(2025, 6, 16, 15, 6, 40, tzinfo=UTC).timestamp() - WALL,
            id="unified reset in RFC 3339",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-unified-5h-status": "rejected",
                "anthropic-ratelimit-unified-5h-reset": "tomorrow",
            },
            None,
            id="garbled reset: nothing said",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-requests-reset": iso(10),
                "anthropic-ratelimit-requests-remaining": "7",
                "anthropic-ratelimit-input-tokens-reset": iso(50),
                "anthropic-ratelimit-input-tokens-remaining": "0",
            },
            50.0,
            id="API quota used up: its reset",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-requests-reset": iso(10),
                "anthropic-ratelimit-requests-remaining": "7",
            },
            None,
            id="API quota with room: request-scoped",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": iso(-30),
            },
            None,
            id="a reset already passed says nothing",
        ),
    ],
)
def test_rest_after_429(headers: dict[str, str], expected: float | None) -> None:
    assert rest_after_429(headers, WALL) == pytest.approx(expected, abs=1e-6)
    # the proxy's path (parsed limits + retry-after) and the probe's (headers) agree
    assert cooldown(headers) == pytest.approx(DEFAULT if expected is None else expected, abs=1e-6)


def test_rest_after_429_reads_pairs_and_cimultidict() -> None:
    from multidict import CIMultiDict

    pairs = [("Retry-After", "12"), ("Content-Type", "x")]
    assert rest_after_429(pairs, WALL) == 12.0
    assert rest_after_429(CIMultiDict(pairs), WALL) == 12.0


def test_cooldown_default_is_clamped() -> None:
    assert cooldown_for_429(None, None, WALL, 0.0) == 1.0
    assert cooldown_for_429(None, None, WALL, 1e9) == MAX_COOLDOWN


# ---- error bodies: a matched rule's action, and how long the account stays out ------------------


@pytest.mark.parametrize(
    ("status", "action", "outcome"),
    [
        (400, "exhausted", Outcome.EXHAUSTED),
        (403, "auth_failed", Outcome.AUTH_FAILED),
        (400, "rate_limited", Outcome.RATE_LIMITED),
        (429, "fail_over", Outcome.CAPABILITY),
        (429, "pass_through", Outcome.CLIENT_ERROR),
        (503, "pass_through", Outcome.CLIENT_ERROR),
        (429, None, Outcome.RATE_LIMITED),
        (400, None, Outcome.CLIENT_ERROR),
    ],
)
def test_classify_answer(status: int, action: str | None, outcome: Outcome) -> None:
    assert classify_answer(status, action) is outcome


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "120"}, 120.0),
        # limits with room left say nothing about credit (every API answer carries them)
        (
            {
                "anthropic-ratelimit-requests-remaining": "49",
                "anthropic-ratelimit-requests-reset": iso(30),
            },
            None,
        ),
        (
            {
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": iso(300),
                "anthropic-ratelimit-requests-remaining": "9",
                "anthropic-ratelimit-requests-reset": iso(5),
            },
            300.0,
        ),
        (
            {
                "anthropic-ratelimit-unified-7d-status": "rejected",
                "anthropic-ratelimit-unified-7d-reset": str(int(WALL + 7200)),
                "anthropic-ratelimit-unified-5h-status": "allowed",
                "anthropic-ratelimit-unified-5h-reset": str(int(WALL + 60)),
            },
            7200.0,
        ),
        (
            {
                "anthropic-ratelimit-unified-5h-status": "allowed",
                "anthropic-ratelimit-unified-5h-reset": str(int(WALL + 60)),
            },
            None,
        ),
        ({"retry-after": "soon"}, None),
        ({"retry-after": str(10 * 86400)}, MAX_COOLDOWN),
    ],
)
def test_rest_when_exhausted_counts_only_limits_used_up(
    headers: dict[str, str], expected: float | None
) -> None:
    assert rest_when_exhausted(headers, WALL) == expected


def test_rest_seconds_order() -> None:
    announced = {"retry-after": "90"}
    # exhausted: what the account announced first, then the rule's cooldown, else the recheck
    assert rest_seconds(Outcome.EXHAUSTED, 600.0, announced, WALL) == 90.0
    assert rest_seconds(Outcome.EXHAUSTED, 600.0, {}, WALL) == 600.0
    assert rest_seconds(Outcome.EXHAUSTED, None, {}, WALL) is None
    # rate limited: the rule's cooldown first, then what was announced, else the default
    assert rest_seconds(Outcome.RATE_LIMITED, 600.0, announced, WALL) == 600.0
    assert rest_seconds(Outcome.RATE_LIMITED, None, announced, WALL) == 90.0
    assert rest_seconds(Outcome.RATE_LIMITED, None, {}, WALL) is None
    assert rest_seconds(Outcome.SERVER_ERROR, 600.0, announced, WALL) is None
