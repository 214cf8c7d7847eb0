"""Judging an account's error answer: decoded copy for reading, the bytes kept as they came."""

from __future__ import annotations

import gzip
import zlib

from qcc import wire
from qcc.proxy.error_answer import decoded, judge
from qcc.routing.classify import Outcome
from qcc.routing.rules import BODY_LIMIT, Rule

CREDIT = wire.encode(wire.error("invalid_request_error", "Your credit balance is too low."))


def test_gzip_and_deflate_are_read_decoded_and_kept_encoded() -> None:
    for encoding, packed in (
        ("gzip", gzip.compress(CREDIT)),
        ("deflate", zlib.compress(CREDIT)),
        ("deflate", zlib.compress(CREDIT)[2:-4]),  # raw deflate, as some servers send it
    ):
        answer = judge(400, packed, encoding, ())
        assert answer.outcome is Outcome.EXHAUSTED, encoding
        assert answer.prefix == packed  # relayed as it came, if it ever is
        assert answer.rule == "built-in: credit-balance"
        assert answer.reason == (
            "HTTP 400 credit or quota exhausted: matched built-in rule 'credit-balance'"
        )
        assert answer.detail == "Your credit balance is too low."


def test_unknown_encoding_or_broken_stream_is_read_as_it_came() -> None:
    assert decoded(b"\x1f\x8bnot gzip", "gzip") == b"\x1f\x8bnot gzip"
    assert decoded(CREDIT, "br") == CREDIT
    assert decoded(CREDIT, "identity") == CREDIT


def test_decoding_is_bounded() -> None:
    bomb = gzip.compress(b"a" * (50 * BODY_LIMIT))
    assert len(decoded(bomb, "gzip")) == BODY_LIMIT
    cut = gzip.compress(CREDIT * 100)[:200]  # the first bytes of a longer body
    assert decoded(cut, "gzip").startswith(CREDIT[:50])


def test_no_rule_keeps_the_status_meaning_and_the_error_type() -> None:
    overloaded = wire.encode(wire.error("overloaded_error", "Overloaded"))
    answer = judge(529, overloaded, "", ())
    assert (answer.outcome, answer.rule, answer.reason) == (
        Outcome.OVERLOADED,
        "",
        "HTTP 529 overloaded_error",
    )
    assert judge(400, b"<html>bad</html>", "", ()).reason == "HTTP 400"
    weird = wire.encode(wire.error("Not A Type!", "x"))
    assert judge(500, weird, "", ()).reason == "HTTP 500"


def test_user_rule_first_and_plain_text_detail() -> None:
    rule = Rule("re:allowance\\s+is\\s+finished", "exhausted", 402, 60.0, "clusters.p.rules[0]")
    answer = judge(402, b"Your   monthly\nallowance is finished", "", (rule,))
    assert answer.outcome is Outcome.EXHAUSTED
    assert answer.rule == "clusters.p.rules[0]"
    assert answer.detail == "Your monthly allowance is finished"
    assert answer.verdict is not None and answer.verdict.cooldown == 60.0
