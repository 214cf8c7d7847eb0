"""rfind_quoted: the same answer as bytes.rfind, without a byte-by-byte search of long strings."""

from __future__ import annotations

import random

import pytest

from qcc.proxy.messages import wants_stream
from qcc.routing.jsonkeys import SHORT, rfind_quoted
from qcc.routing.sticky import session_key

WORDS = (b'"stream"', b'"metadata"')
PIECES = [b'"', b'\\"', b'"stream"', b'"metadata"', b"stream", b"x" * 3000, b"ab", b":", b"\\"]


class Watched(bytes):
    """A body that records every multi-byte search run over it (needle, bytes searched)."""

    searches: list[tuple[bytes, int]]

    def rfind(self, sub: bytes, start: int = 0, end: int | None = None) -> int:  # type: ignore[override]
        stop = len(self) if end is None else end
        if len(sub) > 1:
            self.searches.append((sub, stop - start))
        return super().rfind(sub, start, end)


def watched(data: bytes) -> Watched:
    body = Watched(data)
    body.searches = []
    return body


@pytest.mark.parametrize("seed", range(30))
def test_same_answer_as_rfind(seed: int) -> None:
    rng = random.Random(seed)
    body = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 120)))
    for word in WORDS:
        for end in (None, len(body) // 2, len(body) // 3):
            for budget in (0, 3, 48):
                expected = body.rfind(word, 0, len(body) if end is None else end)
                assert rfind_quoted(body, word, end, budget) == expected


def big_request(tail: bytes = b"") -> bytes:
    text = b"lorem ipsum " * (200 * 1024 // 12)  # bench S3: one long string, no stream/metadata
    return (
        b'{"model":"m","max_tokens":1024,"messages":[{"role":"user","content":"'
        + text
        + (b'"}]' + tail + b"}")
    )


def test_a_long_string_is_not_searched_byte_by_byte() -> None:
    body = watched(big_request())
    assert wants_stream(body) is False
    assert session_key({}, body) is None
    assert all(span <= SHORT for _, span in body.searches), body.searches


def test_keys_after_a_long_string_are_found() -> None:
    tail = b',"stream":true,"metadata":{"user_id":"user_ab_account__session_s-1"}'
    body = watched(big_request(tail))
    assert wants_stream(body) is True
    assert session_key({}, body) == "s-1"
    assert all(span <= SHORT for _, span in body.searches)


def test_a_body_dense_with_quotes_falls_back_to_one_plain_search() -> None:
    body = watched(b'{"messages":[' + b'"ab",' * 5000 + b'"x"]}')
    assert wants_stream(body) is False
    assert [needle for needle, _ in body.searches] == [b'"stream"']
