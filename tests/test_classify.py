from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from qcc.routing.classify import (
    MAX_COOLDOWN,
    Outcome,
    announced_reset,
    classify_answer,
    classify_status,
    cooldown_seconds,
    counts_against_health,
    fails_over,
    rest_seconds,
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


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, 42.0, id="nothing: default"),
        pytest.param({"retry-after": "17"}, 17.0, id="retry-after seconds"),
        pytest.param({"Retry-After": "17"}, 17.0, id="retry-after any case"),
        pytest.param({"retry-after": " 2.5 "}, 2.5, id="retry-after fractional"),
        pytest.param({"retry-after": "0"}, 1.0, id="retry-after 0 clamps to 1"),
        pytest.param({"retry-after": "999999"}, MAX_COOLDOWN, id="retry-after clamps to a day"),
        pytest.param({"retry-after": HTTP_DATE_IN_120}, 120.0, id="retry-after HTTP-date"),
        pytest.param({"retry-after": HTTP_DATE_PAST}, 1.0, id="retry-after date in the past"),
        pytest.param({"retry-after": "soon"}, 42.0, id="retry-after malformed"),
        pytest.param({"retry-after": "-5"}, 42.0, id="retry-after negative"),
        pytest.param({"retry-after": "inf"}, 42.0, id="retry-after infinite"),
        pytest.param({"retry-after": "nan"}, 42.0, id="retry-after nan"),
        pytest.param(
            {"retry-after": "junk", "anthropic-ratelimit-unified-reset": str(int(WALL + 300))},
            300.0,
            id="malformed retry-after falls through",
        ),
        pytest.param(
            {"retry-after": "5", "anthropic-ratelimit-unified-reset": str(int(WALL + 300))},
            5.0,
            id="retry-after wins",
        ),
        pytest.param(
            {"anthropic-ratelimit-unified-reset": str(int(WALL + 3600))},
            3600.0,
            id="unified reset",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-unified-5h-reset": str(int(WALL + 600)),
                "anthropic-ratelimit-unified-7d-reset": str(int(WALL + 90000)),
            },
            600.0,
            id="unified without statuses: soonest",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-unified-5h-reset": str(int(WALL + 600)),
                "anthropic-ratelimit-unified-5h-status": "allowed",
                "anthropic-ratelimit-unified-7d-reset": str(int(WALL + 7200)),
                "anthropic-ratelimit-unified-7d-status": "rejected",
            },
            7200.0,
            id="unified: the rejected window",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-unified-5h-reset": str(int(WALL + 600)),
                "anthropic-ratelimit-unified-5h-status": "allowed_warning",
                "anthropic-ratelimit-unified-7d-reset": str(int(WALL + 7200)),
                "anthropic-ratelimit-unified-7d-status": "allowed",
            },
            600.0,
            id="unified: all allowed, soonest",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-unified-reset": str(int(WALL + 900)),
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-5h-reset": str(int(WALL + 300)),
                "anthropic-ratelimit-unified-5h-status": "rejected",
            },
            900.0,
            id="unified: several rejected, wait for all",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-unified-reset": "tomorrow",
                "anthropic-ratelimit-requests-reset": iso(45),
            },
            45.0,
            id="malformed unified falls through",
        ),
        pytest.param(
            {"anthropic-ratelimit-requests-reset": iso(30)},
            30.0,
            id="requests reset RFC 3339",
        ),
        pytest.param(
            {"anthropic-ratelimit-tokens-reset": "2025-06-15T15:07:00+00:00"},
            datetime(2025, 6, 15, 15, 7, tzinfo=UTC).timestamp() - WALL,
            id="tokens reset with offset",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-requests-reset": iso(10),
                "anthropic-ratelimit-requests-remaining": "7",
                "anthropic-ratelimit-input-tokens-reset": iso(50),
                "anthropic-ratelimit-input-tokens-remaining": "0",
                "anthropic-ratelimit-output-tokens-reset": iso(20),
                "anthropic-ratelimit-output-tokens-remaining": "100",
            },
            50.0,
            id="standard: the exhausted one",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-requests-reset": iso(10),
                "anthropic-ratelimit-requests-remaining": "7",
                "anthropic-ratelimit-tokens-reset": iso(20),
                "anthropic-ratelimit-tokens-remaining": "9",
            },
            10.0,
            id="standard: none exhausted, soonest",
        ),
        pytest.param(
            {"anthropic-ratelimit-requests-reset": "not a date"},
            42.0,
            id="standard malformed",
        ),
        pytest.param(
            {"anthropic-ratelimit-requests-reset": iso(-30)},
            1.0,
            id="reset already passed clamps to 1",
        ),
    ],
)
def test_cooldown_seconds(headers: dict[str, str], expected: float) -> None:
    assert cooldown_seconds(headers, WALL, 42.0) == pytest.approx(expected, abs=1e-6)


def test_cooldown_default_is_clamped() -> None:
    assert cooldown_seconds({}, WALL, 0.0) == 1.0
    assert cooldown_seconds({}, WALL, 1e9) == MAX_COOLDOWN


def test_cooldown_accepts_cimultidict() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    headers = CIMultiDictProxy(CIMultiDict({"Retry-After": "12", "Content-Type": "x"}))
    assert cooldown_seconds(headers, WALL, 42.0) == 12.0


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
def test_announced_reset_counts_only_limits_used_up(
    headers: dict[str, str], expected: float | None
) -> None:
    assert announced_reset(headers, WALL) == expected


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
