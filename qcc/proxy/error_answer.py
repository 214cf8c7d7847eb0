"""An account's error answer (HTTP 4xx/5xx): its first bytes, and what they mean.

Only error answers are read here; a 2xx never is. :func:`read_answer` buffers at most the first
:data:`~qcc.routing.rules.BODY_LIMIT` (16 KB) bytes of the body within :data:`READ_SECONDS`,
classifies a decoded copy (gzip or deflate; any other encoding as it came) with the cluster's
rules (:func:`qcc.routing.rules.classify_error`), and keeps the bytes exactly as they arrived:
an answer passed through to the client is relayed as those bytes followed by the rest, never
decoded or re-encoded.

Cost, per error answer only: the buffered bytes (≤ 16 KB plus whatever arrived with them), at
most 16 KB decompressed, one JSON parse and the rule table (see :mod:`qcc.routing.rules`).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from qcc.net.connection import Response
from qcc.net.errors import UpstreamError
from qcc.routing.classify import Outcome, classify_answer
from qcc.routing.rules import BODY_LIMIT, SHOWN_MESSAGE, ErrorBody, Rule, Verdict, classify_error
from qcc.routing.rules import read_error as parse_error

READ_SECONDS = 2.0  # how long an error body may take to arrive before it is judged as it is
SHOWN_DETAIL = SHOWN_MESSAGE
_ERROR_KIND = re.compile(r"[a-z_]{1,40}")

# What a matched rule's action did to the account, in qcc's words (the health reason).
_DOING = {
    "exhausted": "credit or quota exhausted",
    "auth_failed": "account or key disabled",
    "rate_limited": "rate limited",
    "fail_over": "not available on this account",
    "pass_through": "passed through",
}


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """What an error answer says. ``prefix`` is the body as it arrived (first bytes only)."""

    status: int
    outcome: Outcome
    prefix: bytes
    error: ErrorBody
    verdict: Verdict | None

    @property
    def rule(self) -> str:
        """The matched rule, as ``last_rule`` shows it: ``built-in: credit-balance`` or
        ``clusters.prod.rules[0]``; "" when none matched."""
        verdict = self.verdict
        if verdict is None:
            return ""
        return rule_name(verdict.rule)

    @property
    def reason(self) -> str:
        """The failure in qcc's words: ``HTTP 400 credit or quota exhausted: matched built-in
        rule 'credit-balance'``, or ``HTTP 529 overloaded_error`` with no rule."""
        verdict = self.verdict
        if verdict is not None:
            doing = _DOING[verdict.action]
            return f"HTTP {self.status} {doing}: matched {verdict.rule.label}"
        kind = error_kind(self.error.type) if self.error.structured else ""
        return f"HTTP {self.status} {kind}" if kind else f"HTTP {self.status}"

    @property
    def detail(self) -> str:
        """What the account said (kept in ``last_error`` after scrubbing): its error message,
        or for a matched plain-text body the text itself; short, on one line."""
        error = self.error
        said = error.message
        if not said and self.verdict is not None and not error.structured:
            said = error.text
        return " ".join(said.split())[:SHOWN_DETAIL]


def rule_name(rule: Rule) -> str:
    return f"built-in: {rule.name}" if rule.origin == "built-in" else rule.name or rule.match


def error_kind(value: object) -> str:
    """An account's error type if it looks like one (``overloaded_error``), else ""."""
    return value if isinstance(value, str) and _ERROR_KIND.fullmatch(value) else ""


def decoded(prefix: bytes, encoding: str) -> bytes:
    """A decoded copy of the first bytes of a body, for reading only (at most BODY_LIMIT out).
    gzip and deflate are decoded; anything else (or a stream that does not decode) is read as
    it came."""
    encoding = encoding.strip().lower()
    if not prefix or encoding in ("", "identity"):
        return prefix
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS if prefix[:1] == b"\x78" else -zlib.MAX_WBITS
    else:
        return prefix
    try:
        return zlib.decompressobj(wbits).decompress(prefix, BODY_LIMIT)
    except zlib.error:
        return prefix


def judge(status: int, prefix: bytes, encoding: str, rules: tuple[Rule, ...]) -> ErrorAnswer:
    """Pure: what the first bytes of an error answer mean under ``rules`` (then the built-ins)."""
    error = parse_error(status, decoded(prefix, encoding))
    verdict = classify_error(rules, error)
    action = None if verdict is None else verdict.action
    return ErrorAnswer(status, classify_answer(status, action), prefix, error, verdict)


async def read_answer(upstream: Response, rules: tuple[Rule, ...], deadline: float) -> ErrorAnswer:
    """Buffer the first BODY_LIMIT bytes of an error answer (until ``deadline``, monotonic)
    and judge them. A body that is slow or breaks off is judged on what arrived; the rest, or
    the error, is left for whoever reads on."""
    prefix = upstream.ready()
    try:
        while len(prefix) < BODY_LIMIT and not upstream.at_eof():
            chunk = await upstream.read(deadline)
            if not chunk:
                break
            prefix += chunk
    except (TimeoutError, UpstreamError, OSError):
        pass
    encoding = upstream.headers.get("content-encoding", "")
    return judge(upstream.status, prefix, encoding, rules)
