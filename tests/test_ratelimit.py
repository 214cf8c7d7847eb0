from __future__ import annotations

from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict

from qcc.routing.ratelimit import (
    MAX_COOLDOWN,
    Limits,
    Quota,
    Window,
    blocked_until,
    cooldown_for_429,
    headroom,
    parse_limits,
    parse_reset,
)

WALL = 1_750_000_000.0


def iso(offset: float) -> str:
    return datetime.fromtimestamp(WALL + offset, UTC).isoformat().replace("+00:00", "Z")


def epoch(offset: float) -> str:
    return str(int(WALL + offset))


PLAIN = [
    ("date", "Mon, 30 Nov 2026 01:00:00 GMT"),
    ("content-type", "application/json"),
    ("transfer-encoding", "chunked"),
    ("connection", "keep-alive"),
    ("request-id", "req_011CSLsW7mFqvHHnzrKdKjAE"),
    ("anthropic-organization-id", "36562039-1ae4-48e6-ae28-1e517e3d2d12"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
    ("x-envoy-upstream-service-time", "690"),
    ("via", "1.1 google"),
    ("cf-cache-status", "DYNAMIC"),
    ("server", "cloudflare"),
    ("cf-ray", "972a33bb3977d246-FRA"),
]

API_KEY = [
    ("anthropic-ratelimit-requests-limit", "1000"),
    ("anthropic-ratelimit-requests-remaining", "999"),
    ("anthropic-ratelimit-requests-reset", iso(1)),
    ("anthropic-ratelimit-tokens-limit", "96000"),
    ("anthropic-ratelimit-tokens-remaining", "48000"),
    ("anthropic-ratelimit-tokens-reset", iso(10)),
    ("anthropic-ratelimit-input-tokens-limit", "80000"),
    ("anthropic-ratelimit-input-tokens-remaining", "80000"),
    ("anthropic-ratelimit-input-tokens-reset", iso(1)),
    ("anthropic-ratelimit-output-tokens-limit", "16000"),
    ("anthropic-ratelimit-output-tokens-remaining", "16000"),
    ("anthropic-ratelimit-output-tokens-reset", iso(2)),
]

UNIFIED = [
    ("anthropic-ratelimit-unified-status", "allowed"),
    ("anthropic-ratelimit-unified-reset", epoch(3600)),
    ("anthropic-ratelimit-unified-5h-status", "allowed"),
    ("anthropic-ratelimit-unified-5h-utilization", "0.25"),
    ("anthropic-ratelimit-unified-5h-reset", epoch(3600)),
    ("anthropic-ratelimit-unified-7d-status", "allowed_warning"),
    ("anthropic-ratelimit-unified-7d-utilization", "0.8"),
    ("anthropic-ratelimit-unified-7d-reset", epoch(86400)),
    ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
    ("anthropic-ratelimit-unified-fallback-percentage", "0.5"),
    ("anthropic-ratelimit-unified-overage-status", "rejected"),
    ("anthropic-ratelimit-unified-overage-disabled-reason", "org_level_disabled"),
    ("anthropic-ratelimit-unified-5h-surpassed-threshold", "0.75"),
]


def test_no_ratelimit_headers_is_none() -> None:
    assert parse_limits(PLAIN) is None
    assert parse_limits({}) is None
    assert parse_limits([]) is None


def test_api_key_headers_from_pairs() -> None:
    limits = parse_limits(PLAIN + API_KEY)
    assert limits is not None
    kinds = {q.kind: q for q in limits.quotas}
    assert list(kinds) == ["requests", "tokens", "input-tokens", "output-tokens"]
    assert kinds["tokens"] == Quota("tokens", 96000, 48000, WALL + 10)
    assert kinds["requests"].reset == pytest.approx(WALL + 1)
    assert limits.windows == ()
    assert headroom(limits) == pytest.approx(0.5)


def test_unified_headers_generic_windows_and_extras_skipped() -> None:
    limits = parse_limits(UNIFIED)
    assert limits is not None
    assert limits.quotas == ()
    assert [w.name for w in limits.windows] == ["", "5h", "7d"]  # not overage, not fallback
    assert limits.window("") == Window("", "allowed", None, WALL + 3600)
    assert limits.window("7d") == Window("7d", "allowed_warning", 0.8, WALL + 86400)
    assert limits.representative_claim == "five_hour"
    assert headroom(limits) == pytest.approx(0.2)
    assert blocked_until(limits, 0.05, WALL) is None  # overage "rejected" blocks nothing


def test_unknown_window_is_read_generically() -> None:
    limits = parse_limits(
        {
            "anthropic-ratelimit-unified-7d_opus-status": "rejected",
            "anthropic-ratelimit-unified-7d_opus-reset": epoch(500),
        }
    )
    assert limits is not None
    assert limits.windows == (Window("7d_opus", "rejected", None, WALL + 500),)


def test_mapping_and_mixed_case_pairs() -> None:
    mapping = CIMultiDict(API_KEY)
    assert parse_limits(mapping) == parse_limits(API_KEY)
    shouting = [(name.title(), value) for name, value in API_KEY]
    assert parse_limits(shouting) == parse_limits(API_KEY)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (iso(30), WALL + 30),
        ("2025-06-15T15:07:00+02:00", datetime(2025, 6, 15, 13, 7, tzinfo=UTC).timestamp()),
        ("2025-06-15T15:07:00", datetime(2025, 6, 15, 15, 7, tzinfo=UTC).timestamp()),
        (epoch(30), WALL + 30),
        (f" {WALL + 30.5} ", WALL + 30.5),
        (str(int((WALL + 30) * 1000)), WALL + 30),  # milliseconds
        ("tomorrow", None),
        ("", None),
        ("0", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_reset_both_formats(value: str, expected: float | None) -> None:
    got = parse_reset(value)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_garbled_values_are_skipped_never_raised() -> None:
    limits = parse_limits(
        [
            ("anthropic-ratelimit-requests-limit", "lots"),
            ("anthropic-ratelimit-requests-remaining", "-1"),
            ("anthropic-ratelimit-requests-reset", "soon"),
            ("anthropic-ratelimit-tokens-limit", "1000"),
            ("anthropic-ratelimit-tokens-remaining", "1.5"),
            ("anthropic-ratelimit-unified-5h-utilization", "high"),
            ("anthropic-ratelimit-unified-5h-reset", "later"),
            ("anthropic-ratelimit-unified-7d-status", "  "),
            ("anthropic-ratelimit-unified-reset", "\x00"),
            ("anthropic-ratelimit-", ""),
            ("anthropic-ratelimit-unified-", "x"),
            ("anthropic-ratelimit-unified--status", "rejected"),
        ]
    )
    assert limits == Limits(quotas=(Quota("tokens", 1000, None, None),))
    assert headroom(limits) is None
    assert blocked_until(limits, 0.05, WALL) is None


def test_missing_values_leave_fields_none() -> None:
    limits = parse_limits({"anthropic-ratelimit-requests-remaining": "3"})
    assert limits == Limits(quotas=(Quota("requests", None, 3, None),))
    assert headroom(limits) is None  # no limit to divide by


# ---- decisions -------------------------------------------------------------------------------


def quota(kind: str, limit: int, remaining: int, reset_in: float | None) -> Quota:
    return Quota(kind, limit, remaining, None if reset_in is None else WALL + reset_in)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        pytest.param(Limits(), None, id="nothing announced"),
        pytest.param(Limits((quota("requests", 100, 50, 10),)), None, id="room"),
        pytest.param(Limits((quota("requests", 100, 5, 10),)), None, id="exactly at headroom"),
        pytest.param(Limits((quota("requests", 100, 4, 10),)), 10, id="below headroom"),
        pytest.param(Limits((quota("tokens", 100, 0, 30),)), 30, id="remaining 0"),
        pytest.param(Limits((quota("tokens", 100, 0, -5),)), None, id="reset passed"),
        pytest.param(Limits((quota("tokens", 100, 0, None),)), None, id="reset unknown"),
        pytest.param(
            Limits((quota("requests", 100, 0, 10), quota("tokens", 1000, 1, 40))),
            40,
            id="every exhausted quota must reset: the latest",
        ),
        pytest.param(
            Limits((quota("requests", 100, 0, 10), quota("tokens", 1000, 900, 40))),
            10,
            id="a quota with room does not extend",
        ),
        pytest.param(Limits(windows=(Window("5h", "rejected", None, WALL + 600),)), 600, id="5h"),
        pytest.param(Limits(windows=(Window("", "rejected", None, WALL + 700),)), 700, id="all"),
        pytest.param(Limits(windows=(Window("7d", "allowed", 0.98, WALL + 900),)), 900, id="0.98"),
        pytest.param(Limits(windows=(Window("7d", "allowed", 0.97, WALL + 900),)), None, id="0.97"),
        pytest.param(
            Limits(windows=(Window("5h", "allowed_warning", 0.9, WALL + 900),)), None, id="warn"
        ),
    ],
)
def test_blocked_until(limits: Limits, expected: float | None) -> None:
    got = blocked_until(limits, 0.05, WALL)
    assert got == (None if expected is None else pytest.approx(WALL + expected))


def test_blocked_until_headroom_zero_still_blocks_at_zero() -> None:
    assert blocked_until(Limits((quota("requests", 100, 0, 10),)), 0.0, WALL) == WALL + 10
    assert blocked_until(Limits((quota("requests", 100, 1, 10),)), 0.0, WALL) is None


def test_headroom_smallest_of_all() -> None:
    limits = Limits(
        (quota("requests", 100, 90, 1), quota("output-tokens", 1000, 300, 1)),
        (Window("5h", "allowed", 0.5, None), Window("7d", "allowed", 1.2, None)),
    )
    assert headroom(limits) == 0.0  # utilization above 1 is clamped
    assert headroom(Limits((quota("requests", 100, 90, 1),))) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("limits", "retry_after", "expected"),
    [
        pytest.param(None, None, 5.0, id="nothing: short default"),
        pytest.param(None, 12.0, 12.0, id="retry-after only"),
        pytest.param(Limits(), 0.0, 1.0, id="clamped to 1 s"),
        pytest.param(None, 1e9, MAX_COOLDOWN, id="clamped to a day"),
        pytest.param(
            Limits(windows=(Window("5h", "rejected", 0.99, WALL + 7200),)),
            30.0,
            7200.0,
            id="rejected 5h: until its reset, not retry-after",
        ),
        pytest.param(
            Limits(
                windows=(
                    Window("", "rejected", None, None),
                    Window("5h", "allowed", 0.4, WALL + 600),
                    Window("7d", "rejected", 1.0, WALL + 90000),
                )
            ),
            30.0,
            90000.0,
            id="the rejected window's reset",
        ),
        pytest.param(
            Limits(windows=(Window("5h", "allowed", 0.4, WALL + 600),)),
            30.0,
            30.0,
            id="unified allowed: request-scoped",
        ),
        pytest.param(
            Limits(windows=(Window("5h", "rejected", None, WALL - 60),)),
            30.0,
            30.0,
            id="rejected window already reset",
        ),
        pytest.param(
            Limits((quota("tokens", 100, 0, 45),)), None, 45.0, id="exhausted quota, no retry-after"
        ),
        pytest.param(
            Limits((quota("tokens", 100, 0, 45),)), 3.0, 3.0, id="retry-after beats API quota"
        ),
        pytest.param(Limits((quota("tokens", 100, 50, 45),)), None, 5.0, id="quota with room"),
    ],
)
def test_cooldown_for_429(
    limits: Limits | None, retry_after: float | None, expected: float
) -> None:
    assert cooldown_for_429(limits, retry_after, WALL, 5.0) == pytest.approx(expected)


def test_parsed_429_rejected_window_end_to_end() -> None:
    limits = parse_limits(
        [
            ("retry-after", "30"),
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-reset", epoch(3 * 3600)),
        ]
    )
    assert cooldown_for_429(limits, 30.0, WALL, 5.0) == pytest.approx(3 * 3600)
    assert blocked_until(limits, 0.05, WALL) == pytest.approx(WALL + 3 * 3600) if limits else False


def test_as_dict() -> None:
    limits = parse_limits(API_KEY[:3] + UNIFIED[:6])
    assert limits is not None
    assert limits.as_dict() == {
        "headroom": pytest.approx(0.75),
        "quotas": {"requests": {"limit": 1000, "remaining": 999, "reset": pytest.approx(WALL + 1)}},
        "unified": {
            "overall": {"status": "allowed", "utilization": None, "reset": WALL + 3600},
            "5h": {"status": "allowed", "utilization": 0.25, "reset": WALL + 3600},
            "7d": {"status": "allowed_warning", "utilization": None, "reset": None},
        },
        "representative_claim": None,
    }
