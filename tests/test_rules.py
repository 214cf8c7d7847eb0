"""The rule table: reading error bodies, each built-in wording, user rules, precedence."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from qcc.routing.rules import (
    BODY_LIMIT,
    BUILT_IN_RULES,
    Rule,
    classify_body,
    classify_error,
    next_local_midnight,
    next_local_month_start,
    read_error,
)


def anthropic(kind: str, message: str) -> bytes:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    return json.dumps(body).encode()


def openai(code: str | int | None, message: str, kind: str = "") -> bytes:
    return json.dumps({"error": {"code": code, "type": kind, "message": message}}).encode()


CREDIT = anthropic(
    "invalid_request_error",
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits.",
)


# ---- reading bodies ------------------------------------------------------------------------


def test_reads_anthropic_format() -> None:
    error = read_error(400, CREDIT)
    assert (error.status, error.type, error.code) == (400, "invalid_request_error", "")
    assert error.message.startswith("Your credit balance is too low")
    assert error.structured


def test_reads_openai_format_with_numeric_code() -> None:
    error = read_error(429, openai(1008, "quota gone", "insufficient_quota"))
    assert (error.type, error.message, error.code) == ("insufficient_quota", "quota gone", "1008")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "quota exceeded"}', "quota exceeded"),
        (b'{"message": "no money", "code": 402}', "no money"),
        (b'{"detail": "forbidden"}', "forbidden"),
        (b'{"error": {"msg": "old relay"}}', "old relay"),
    ],
)
def test_reads_other_json_shapes(body: bytes, message: str) -> None:
    error = read_error(400, body)
    assert error.structured and error.message == message


def test_reads_plain_text() -> None:
    error = read_error(403, "余额不足，请充值".encode())
    assert not error.structured
    assert (error.type, error.message, error.code) == ("", "", "")
    assert error.text == "余额不足，请充值"
    assert error.fields == error.text


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00garbage\x80",
        b"{",
        b"[1, 2, 3]",
        b"null",
        b'{"error": null}',
        b"{" * 20000,  # deeper than the parser's recursion limit, and over the byte limit
        b'{"a": ' * 3000 + b"1" + b"}" * 3000,
        "💥".encode()[:3],  # a character cut in half
    ],
)
def test_never_raises_on_garbage(body: bytes) -> None:
    error = read_error(500, body)
    assert error.status == 500
    assert len(error.text) <= BODY_LIMIT


def test_truncated_json_salvages_the_fields() -> None:
    body = anthropic("invalid_request_error", "Your credit balance is too low")[:-10]
    with pytest.raises(ValueError):
        json.loads(body)
    error = read_error(400, body)
    assert error.structured
    assert error.type == "invalid_request_error"
    assert error.message == "Your credit balance is too low"


def test_only_the_first_16_kb_is_read() -> None:
    late = b" " * BODY_LIMIT + b"credit balance is too low"
    assert read_error(400, late).text.strip() == ""
    assert classify_body((), 400, late) is None
    assert classify_body((Rule("credit balance", "exhausted"),), 400, late) is None


def test_replacement_characters_for_bad_utf8() -> None:
    assert read_error(400, b"quota \xff exhausted").text == "quota \ufffd exhausted"


# ---- built-in rules ------------------------------------------------------------------------

BUILT_IN_CASES = [
    pytest.param(400, CREDIT, "exhausted", "credit-balance", id="anthropic-credit"),
    pytest.param(
        429,
        openai(
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
        ),
        "exhausted",
        "insufficient-quota",
        id="openai-insufficient-quota",
    ),
    pytest.param(
        403,
        openai("insufficient_user_quota", "用户额度不足, 剩余额度: $0.01", "new_api_error"),
        "exhausted",
        "insufficient-quota",
        id="new-api-user-quota",
    ),
    pytest.param(
        429, openai(None, "Quota exceeded for this key"), "exhausted", "quota-used-up", id="qx"
    ),
    pytest.param(
        403, openai(None, "Your quota has been exhausted"), "exhausted", "quota-used-up", id="qe"
    ),
    pytest.param(
        402, b'{"error": "Insufficient Balance"}', "exhausted", "insufficient-balance", id="bal"
    ),
    pytest.param(
        402, openai(402, "Insufficient credits"), "exhausted", "insufficient-credits", id="cred"
    ),
    pytest.param(500, "余额不足".encode(), "exhausted", "balance-zh", id="balance-zh-plain"),
    pytest.param(
        403, openai(None, "该令牌额度已用尽"), "exhausted", "quota-zh", id="token-quota-zh"
    ),
    pytest.param(
        403,
        anthropic("permission_error", "This organization has been disabled."),
        "auth_failed",
        "organization-disabled",
        id="org-disabled-403",
    ),
    pytest.param(
        400,
        anthropic("invalid_request_error", "This organization has been disabled."),
        "auth_failed",
        "organization-disabled",
        id="org-disabled-400",
    ),
    pytest.param(
        403,
        anthropic(
            "permission_error",
            "OAuth authentication is currently not allowed for this organization.",
        ),
        "auth_failed",
        "organization-not-allowed",
        id="org-not-allowed",
    ),
    pytest.param(
        401, openai(None, "API key is disabled"), "auth_failed", "key-disabled", id="key-disabled"
    ),
    pytest.param(
        400,
        openai(None, "This API key has been deactivated"),
        "auth_failed",
        "key-disabled",
        id="key-deactivated",
    ),
    pytest.param(
        401, openai(None, "该令牌已被禁用"), "auth_failed", "key-disabled-zh", id="key-disabled-zh"
    ),
    pytest.param(
        429,
        anthropic("rate_limit_error", "Extra usage is required for long context requests."),
        "fail_over",
        "long-context",
        id="long-context-429",
    ),
    pytest.param(
        400,
        anthropic(
            "invalid_request_error",
            "The long context beta is not yet available for this subscription.",
        ),
        "fail_over",
        "long-context",
        id="long-context-400",
    ),
    pytest.param(
        429,
        anthropic("rate_limit_error", "You're out of extra usage. Add more at claude.ai."),
        "fail_over",
        "extra-usage",
        id="out-of-extra-usage",
    ),
]


@pytest.mark.parametrize(("status", "body", "action", "name"), BUILT_IN_CASES)
def test_built_in_rules(status: int, body: bytes, action: str, name: str) -> None:
    verdict = classify_body((), status, body)
    assert verdict is not None
    assert (verdict.action, verdict.rule.name, verdict.rule.origin) == (action, name, "built-in")
    assert verdict.cooldown is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, anthropic("invalid_request_error", "max_tokens: Field required")),
        (400, anthropic("invalid_request_error", "prompt is too long: 250000 tokens > 200000")),
        (404, anthropic("not_found_error", "model: claude-nope")),
        (413, anthropic("request_too_large", "Request exceeds the maximum allowed size")),
        (429, anthropic("rate_limit_error", "Number of request tokens has exceeded your limit")),
        (529, anthropic("overloaded_error", "Overloaded")),
        (500, b"Internal Server Error"),
        (401, anthropic("authentication_error", "invalid x-api-key")),
        (400, b""),
    ],
)
def test_everything_else_keeps_its_status_meaning(status: int, body: bytes) -> None:
    assert classify_body((), status, body) is None


def test_success_is_never_read() -> None:
    assert classify_body((Rule("", "exhausted"),), 200, CREDIT) is None


def test_long_context_needs_its_status() -> None:
    body = anthropic("api_error", "long context requests are slow today")
    assert classify_body((), 500, body) is None


def test_echoed_prompt_does_not_trigger_built_ins() -> None:
    """A 400 that quotes the user's text outside the message field matches no built-in rule."""
    prompt = "why does my relay say 余额不足 and 'credit balance is too low' and quota exceeded?"
    body = json.dumps(
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "messages.0: bad block"},
            "echo": {"messages": [{"role": "user", "content": prompt}]},
        }
    ).encode()
    assert classify_body((), 400, body) is None
    # a user rule looks at the whole body, by choice
    verdict = classify_body((Rule("quota exceeded", "exhausted"),), 400, body)
    assert verdict is not None and verdict.rule.origin == "config"


def test_built_ins_are_compiled_once_and_specific() -> None:
    for rule in BUILT_IN_RULES:
        assert rule.fields_only and rule.origin == "built-in" and rule.name
        if rule.match.startswith("re:"):
            assert rule._pattern is not None


# ---- user rules ----------------------------------------------------------------------------


def test_user_rule_substring_is_case_insensitive() -> None:
    rules = (Rule("Daily Limit REACHED", "exhausted", status=403, cooldown=600.0, name="r0"),)
    verdict = classify_body(rules, 403, b'{"error":{"message":"daily limit reached for key"}}')
    assert verdict is not None
    assert (verdict.action, verdict.cooldown, verdict.rule.name) == ("exhausted", 600.0, "r0")
    assert classify_body(rules, 429, b"daily limit reached") is None  # status must match


def test_user_regex_rule() -> None:
    rules = (Rule(r"re:window\s+(closed|full)", "rate_limited", cooldown=300.0),)
    verdict = classify_body(rules, 429, b"5h WINDOW   Closed, try later")
    assert verdict is not None and verdict.action == "rate_limited"
    assert classify_body(rules, 429, b"window open") is None


def test_user_rules_come_before_built_ins() -> None:
    rules = (Rule("credit balance", "pass_through", status=400),)
    verdict = classify_body(rules, 400, CREDIT)
    assert verdict is not None and verdict.action == "pass_through"
    assert verdict.rule.origin == "config"
    other = classify_body(rules, 402, CREDIT)  # the user rule needs 400; the built-in does not
    assert other is not None and other.action == "exhausted"


def test_first_user_rule_wins() -> None:
    rules = (
        Rule("quota", "fail_over", name="first"),
        Rule("quota", "exhausted", name="second"),
    )
    verdict = classify_body(rules, 403, b"quota")
    assert verdict is not None and verdict.rule.name == "first"


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="action must be one of"):
        Rule("x", "explode")
    with pytest.raises(re.error):
        Rule("re:(unclosed", "exhausted")


def test_rules_compare_by_what_they_say() -> None:
    assert Rule("re:a+", "exhausted") == Rule("re:a+", "exhausted")
    assert Rule("re:a+", "exhausted") != Rule("re:a+", "fail_over")


def test_describe_names_rule_and_message() -> None:
    verdict = classify_body((), 400, CREDIT)
    assert verdict is not None
    assert verdict.describe() == (
        "HTTP 400 matched built-in rule 'credit-balance' -> exhausted: Your credit balance is "
        "too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase "
        "credits."
    )
    plain = classify_body((Rule("nope", "fail_over", name="clusters.p.rules[0]"),), 503, b"nope\n")
    assert plain is not None
    assert plain.describe() == (
        "HTTP 503 matched config rule 'clusters.p.rules[0]' -> fail_over: nope"
    )


def test_classify_error_reuses_a_read_body() -> None:
    error = read_error(400, CREDIT)
    verdict = classify_error((), error)
    assert verdict is not None and verdict.error is error


@pytest.mark.parametrize(
    "body",
    [
        b"x" * (BODY_LIMIT * 4),  # plain text: every rule scans 16 KB
        b'{"error":{"message":"' + b"x" * (BODY_LIMIT * 4) + b'"}}',  # JSON cut short
    ],
)
def test_matching_a_full_body_is_cheap(body: bytes) -> None:
    rules = (
        Rule("daily limit", "exhausted"),
        Rule(r"re:window\s+closed", "rate_limited"),
        Rule("quota", "exhausted", status=403),
    )
    started = time.perf_counter()
    for _ in range(50):
        assert classify_body(rules, 400, body) is None
    assert (time.perf_counter() - started) / 50 < 0.005  # ~1.5 ms measured on one idle core


# ---- budget periods ------------------------------------------------------------------------


@pytest.fixture
def timezone() -> Iterator[Callable[[str], None]]:
    saved = os.environ.get("TZ")

    def use(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


Moment = tuple[int, int, int, int, int, int]


def local(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))


def shown(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("zone", "now", "midnight"),
    [
        ("UTC", (2026, 11, 30, 1, 50, 0), "2026-12-01 00:00"),
        ("UTC", (2026, 12, 31, 23, 59, 59), "2027-01-01 00:00"),
        ("Europe/Berlin", (2026, 3, 28, 12, 0, 0), "2026-03-29 00:00"),  # 23-hour day next
        ("Europe/Berlin", (2026, 3, 29, 0, 0, 0), "2026-03-30 00:00"),  # exactly midnight
        ("Europe/Berlin", (2026, 10, 25, 1, 0, 0), "2026-10-26 00:00"),  # a 25-hour day
        ("America/Santiago", (2024, 9, 7, 22, 0, 0), "2024-09-08 01:00"),  # midnight skipped
    ],
)
def test_next_local_midnight(
    timezone: Callable[[str], None],
    zone: str,
    now: Moment,
    midnight: str,
) -> None:
    timezone(zone)
    wall_now = local(*now)
    nxt = next_local_midnight(wall_now)
    assert shown(nxt) == midnight
    assert nxt > wall_now


def test_day_lengths_follow_dst(timezone: Callable[[str], None]) -> None:
    timezone("Europe/Berlin")
    start = local(2026, 3, 29, 0, 0, 0)
    assert next_local_midnight(start) - start == 23 * 3600
    start = local(2026, 10, 25, 0, 0, 0)
    assert next_local_midnight(start) - start == 25 * 3600


@pytest.mark.parametrize(
    ("zone", "now", "month"),
    [
        ("UTC", (2026, 11, 30, 23, 59, 0), "2026-12-01 00:00"),
        ("UTC", (2026, 12, 1, 0, 0, 0), "2027-01-01 00:00"),
        ("Europe/Berlin", (2026, 3, 15, 12, 0, 0), "2026-04-01 00:00"),
        ("Asia/Tokyo", (2028, 2, 29, 8, 0, 0), "2028-03-01 00:00"),
    ],
)
def test_next_local_month_start(
    timezone: Callable[[str], None], zone: str, now: Moment, month: str
) -> None:
    timezone(zone)
    wall_now = local(*now)
    assert shown(next_local_month_start(wall_now)) == month
