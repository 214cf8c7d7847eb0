"""The secret scrubber every edge uses: known secrets and key-shaped text never pass."""

from __future__ import annotations

import pytest

from qcc.redact import MASK, looks_like_secret, scrub

KEY = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"


def test_known_secret_is_replaced_everywhere() -> None:
    text = f"invalid x-api-key: {KEY} (was {KEY})"
    assert scrub(text, [KEY]) == f"invalid x-api-key: {MASK} (was {MASK})"


def test_unknown_key_shapes_are_replaced() -> None:
    assert KEY not in scrub(f"bad key {KEY}")
    assert "abcdefghijklmnop1234" not in scrub("Authorization: Bearer abcdefghijklmnop1234")
    assert "sk-proj-0123456789abcdefgh" not in scrub("OpenAI key sk-proj-0123456789abcdefgh")


def test_custom_secret_without_a_known_shape() -> None:
    token = "relay-token-7f3a9c2e"
    assert token not in scrub(f"token {token} expired", [token])


def test_short_values_and_plain_text_are_left_alone() -> None:
    assert scrub("HTTP 500 overloaded", ["qcc", None, ""]) == "HTTP 500 overloaded"
    assert scrub("ask-me later") == "ask-me later"


@pytest.mark.parametrize(
    "value",
    [KEY, "sk_live_abc", "abcDEF0123456789abcDEF0123456789xyz", "ab12-cd34-ef56-gh78-ij90"],
)
def test_looks_like_secret(value: str) -> None:
    assert looks_like_secret(value)


@pytest.mark.parametrize(
    "value", ["ANTHROPIC_API_KEY", "RELAY_TOKEN", "my_key", "A_VERY_LONG_VARIABLE_NAME_FOR_KEYS_X"]
)
def test_variable_names_are_not_secrets(value: str) -> None:
    assert not looks_like_secret(value)
