"""What instances tell each other, as stored in Redis: verdicts and announced limits. Pure.

A verdict is the state one instance decided for an account, with its end in unix seconds (the
instances' monotonic clocks differ), its reason (already scrubbed of secrets by the health
decision) and who decided it when: ``(by, at)`` names it, so each instance adopts a verdict once
and never its own.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from qcc.health.state import State
from qcc.routing.ratelimit import Limits, Quota, Window

SHARED_STATES = frozenset({State.EJECTED, State.RATE_LIMITED, State.EXHAUSTED, State.AUTH_FAILED})
MAX_REASON = 300


class Verdict(NamedTuple):
    state: State
    until: float  # unix seconds
    reason: str
    by: str  # instance id
    at: float  # unix seconds it was decided

    def encode(self) -> bytes:
        return json.dumps(
            {
                "state": self.state.value,
                "until": self.until,
                "reason": self.reason[:MAX_REASON],
                "by": self.by,
                "at": self.at,
            }
        ).encode()


def decode_verdict(raw: bytes | None) -> Verdict | None:
    """A stored verdict, or None (missing, or not one qcc wrote)."""
    if not raw:
        return None
    try:
        doc = json.loads(raw)
        state = State(doc["state"])
        until, at = float(doc["until"]), float(doc["at"])
        verdict = Verdict(state, until, str(doc["reason"]), str(doc["by"]), at)
    except (ValueError, KeyError, TypeError):
        return None
    return verdict if state in SHARED_STATES else None


class Announced(NamedTuple):
    """The latest limits an account announced, to whom (``by``) and when (``at``, unix s)."""

    limits: Limits
    by: str
    at: float

    def encode(self) -> bytes:
        limits = self.limits
        return json.dumps(
            {
                "quotas": [list(q) for q in limits.quotas],
                "windows": [list(w) for w in limits.windows],
                "claim": limits.representative_claim,
                "by": self.by,
                "at": self.at,
            }
        ).encode()


def decode_announced(raw: bytes | None) -> Announced | None:
    if not raw:
        return None
    try:
        doc: dict[str, Any] = json.loads(raw)
        limits = Limits(
            quotas=tuple(Quota(*q) for q in doc["quotas"]),
            windows=tuple(Window(*w) for w in doc["windows"]),
            representative_claim=doc["claim"],
        )
        return Announced(limits, str(doc["by"]), float(doc["at"]))
    except (ValueError, KeyError, TypeError):
        return None
