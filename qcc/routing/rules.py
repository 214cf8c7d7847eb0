"""Account-level failures hidden in error bodies: read the body, match it against a rule table.

Pure: bytes in, a :class:`Verdict` (or None) out; no I/O, no clock. Only non-2xx responses are
read, and only their first :data:`BODY_LIMIT` bytes.

What a rule looks at:

- a **user rule** (``[[clusters.NAME.rules]]``) looks at the whole decoded body (bounded), as
  the user wrote it against what their relay sends;
- a **built-in rule** looks only at the error's ``type``, ``code`` and ``message`` fields when the
  body is JSON in a known shape (Anthropic ``{"type":"error","error":{...}}``, OpenAI-style
  ``{"error":{"code":...,"type":...,"message":...}}``, ``{"error":"..."}``, a top-level
  ``message``/``msg``/``detail``), so a prompt echoed elsewhere in a 400 cannot trigger it; a
  JSON body cut short at the limit gives up only the fields it still holds whole. A body that is
  not a JSON object (a relay's plain-text answer) is matched whole.

Cost (only for non-2xx): decoding and lower-casing at most 16 KB, one JSON parse, and the rules;
with a literal or a literal-led regex each, about 1 ms for a 16 KB plain-text body, ~50 µs for a
typical error. A user's ``re:`` rule costs up to ~1 ms more per 16 KB (case-insensitive search).

First match wins: the cluster's rules in file order, then :data:`BUILT_IN_RULES`. No match means
the status keeps its usual meaning (see :mod:`qcc.routing.classify`).

Also here: :func:`next_local_midnight` and :func:`next_local_month_start`, the ends of a
spending budget's day and month in local time.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

BODY_LIMIT = 16 * 1024
ACTIONS = ("exhausted", "auth_failed", "rate_limited", "fail_over", "pass_through")
REGEX_PREFIX = "re:"
SHOWN_MESSAGE = 200  # characters of the account's message kept in a verdict's description


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What an error body says. Fields the body does not have are empty strings."""

    status: int
    type: str
    message: str
    code: str
    text: str = field(repr=False)  # the decoded first BODY_LIMIT bytes
    structured: bool = False  # True for a JSON object body: type/code/message are its fields

    @property
    def fields(self) -> str:
        """What built-in rules look at: the known fields, or the whole text if there are none."""
        if self.structured:
            return f"{self.type}\n{self.code}\n{self.message}"
        return self.text


def _string(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


_DECODER = json.JSONDecoder()
_FIELD_RE = re.compile(r'"(type|message|code)"\s*:\s*')


def _salvage(text: str) -> tuple[str, str, str] | None:
    """The first ``type``/``message``/``code`` values of JSON that does not parse (cut at
    BODY_LIMIT, or malformed); None when there are none. Linear in the text."""
    found: dict[str, str] = {}
    for match in _FIELD_RE.finditer(text):
        key = match.group(1)
        if key in found:
            continue
        try:
            value, _ = _DECODER.raw_decode(text, match.end())
        except ValueError:
            continue
        value = _string(value)
        if key == "type" and value == "error":
            continue  # Anthropic's envelope; the error's own type follows
        found[key] = value
        if len(found) == 3:
            break
    if not found:
        return None
    return found.get("type", ""), found.get("message", ""), found.get("code", "")


def _from_json(data: Any) -> tuple[str, str, str] | None:
    """(type, message, code) from a parsed body in one of the known shapes."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):  # Anthropic and OpenAI-style
        return (
            _string(error.get("type")),
            _string(error.get("message")) or _string(error.get("msg")),
            _string(error.get("code")),
        )
    if isinstance(error, str) and error:  # {"error": "quota exceeded"}
        return _string(data.get("type")), error, _string(data.get("code"))
    message = next((m for key in ("message", "msg", "detail") if (m := _string(data.get(key)))), "")
    kind, code = _string(data.get("type")), _string(data.get("code"))
    if not (message or kind or code):
        return None
    return kind, message, code


def read_error(status: int, body: bytes) -> ErrorBody:
    """Read an account's error body (only its first :data:`BODY_LIMIT` bytes). Never raises."""
    text = body[:BODY_LIMIT].decode("utf-8", errors="replace")
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return ErrorBody(status, "", "", "", text)
    # JSON: built-in rules see only its fields, even when it is cut short or has none we know
    try:
        parsed = _from_json(json.loads(stripped))
    except (ValueError, RecursionError):
        parsed = _salvage(stripped)
    kind, message, code = parsed or ("", "", "")
    return ErrorBody(status, kind, message, code, text, structured=True)


# ---- rules -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of the rule table.

    ``match`` is a case-insensitive substring, or ``re:<regex>`` (searched case-insensitively,
    compiled once, here). ``status`` None matches any non-2xx status. ``cooldown`` (seconds)
    overrides how long the action keeps the account out. ``name`` and ``origin`` say where the
    rule came from (``clusters.prod.rules[2]`` / ``config``, or a short name / ``built-in``).
    Built-in rules set ``fields_only`` (see the module docstring).

    Raises ``ValueError`` for an unknown action and ``re.error`` for a bad regex.
    """

    match: str
    action: str
    status: int | None = None
    cooldown: float | None = None
    name: str = ""
    origin: str = "config"
    fields_only: bool = False
    _needle: str = field(init=False, repr=False, compare=False)
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of: {', '.join(ACTIONS)}")
        pattern = None
        if self.match.startswith(REGEX_PREFIX):
            # built-in patterns are written in lower case and search lower-cased text: faster
            flags = 0 if self.fields_only else re.IGNORECASE
            pattern = re.compile(self.match[len(REGEX_PREFIX) :], flags)
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(self, "_needle", self.match.lower())

    def matches(self, status: int, lowered: str, original: str) -> bool:
        """Whether the rule fits ``status`` and the text (given both lower-cased and as is)."""
        if self.status is not None and self.status != status:
            return False
        if self._pattern is not None:
            return self._pattern.search(lowered if self.fields_only else original) is not None
        return self._needle in lowered

    @property
    def label(self) -> str:
        """How the rule is named on screen: ``built-in rule 'credit-balance'``."""
        return f"{self.origin} rule '{self.name or self.match}'"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a matched rule says about the account; ``error`` is what the body said."""

    action: str
    rule: Rule
    error: ErrorBody

    @property
    def cooldown(self) -> float | None:
        return self.rule.cooldown

    def describe(self) -> str:
        """One line for a health reason or ``last_error``; the caller scrubs secrets from it."""
        said = " ".join((self.error.message or self.error.text).split())[:SHOWN_MESSAGE]
        head = f"HTTP {self.error.status} matched {self.rule.label} -> {self.action}"
        return f"{head}: {said}" if said else head


def _built_in(name: str, match: str, action: str, status: int | None = None) -> Rule:
    return Rule(match, action, status, None, name, "built-in", fields_only=True)


BUILT_IN_RULES: tuple[Rule, ...] = (
    # Capability the account lacks: another account may have it. No penalty.
    _built_in("long-context", "long context", "fail_over", 400),
    _built_in("long-context", "long context", "fail_over", 429),
    _built_in("extra-usage", "out of extra usage", "fail_over", 429),
    # Out of money or quota (Anthropic credit; OpenAI-style and one-api/new-api relays).
    _built_in("credit-balance", "credit balance is too low", "exhausted"),
    _built_in("insufficient-quota", "insufficient_quota", "exhausted"),
    _built_in("insufficient-quota", "insufficient_user_quota", "exhausted"),
    _built_in("insufficient-quota", "exceeded your current quota", "exhausted"),
    _built_in(
        "quota-used-up",
        r"re:quota\b.{0,20}\b(?:exceeded|exhausted|used up|depleted)\b",
        "exhausted",
    ),
    _built_in("insufficient-balance", "insufficient balance", "exhausted"),
    _built_in("insufficient-credits", "insufficient credits", "exhausted"),
    _built_in("balance-zh", "余额不足", "exhausted"),
    _built_in("quota-zh", "额度", "exhausted"),
    # The organization or key is switched off: only the user can fix that.
    _built_in("organization-disabled", "organization has been disabled", "auth_failed"),
    _built_in("organization-not-allowed", "not allowed for this organization", "auth_failed"),
    _built_in(
        "key-disabled",
        r"re:(?:key|token)\b.{0,20}\b(?:disabled|deactivated|revoked)\b",
        "auth_failed",
    ),
    _built_in("key-disabled-zh", "re:(?:令牌|密钥|key).{0,4}已被?禁用", "auth_failed"),
)


def classify_error(rules: tuple[Rule, ...], error: ErrorBody) -> Verdict | None:
    """The first of ``rules`` then :data:`BUILT_IN_RULES` that matches ``error``, as a verdict."""
    text = error.text
    lowered: str | None = None
    fields = error.fields
    fields_lowered = fields.lower()
    for table in (rules, BUILT_IN_RULES):
        for rule in table:
            if rule.fields_only:
                hit = rule.matches(error.status, fields_lowered, fields)
            else:
                if lowered is None:
                    lowered = text.lower()
                hit = rule.matches(error.status, lowered, text)
            if hit:
                return Verdict(rule.action, rule, error)
    return None


def classify_body(rules: tuple[Rule, ...], status: int, body: bytes) -> Verdict | None:
    """Read a non-2xx body and match it (user ``rules`` first, then the built-ins). None for a
    2xx status, or when no rule matches: the status keeps its usual meaning."""
    if 200 <= status < 300:
        return None
    return classify_error(rules, read_error(status, body))


# ---- budget periods ----------------------------------------------------------------------


def _local_start(day: date) -> float:
    """Unix time of local midnight at the start of ``day``; DST-safe. Where a clock change
    skips midnight, the first local time that exists that day."""
    start = time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))
    local = time.localtime(start)
    if (local.tm_year, local.tm_mon, local.tm_mday) != (day.year, day.month, day.day):
        # midnight did not exist and mktime went back into the day before: take 01:00
        start = time.mktime((day.year, day.month, day.day, 1, 0, 0, 0, 0, -1))
    return start


def next_local_midnight(wall_now: float) -> float:
    """Unix time at which the next local day begins (a daily budget's reset)."""
    today = datetime.fromtimestamp(wall_now).date()
    return _local_start(today + timedelta(days=1))


def next_local_month_start(wall_now: float) -> float:
    """Unix time at which the next local month begins (a monthly budget's reset)."""
    today = datetime.fromtimestamp(wall_now).date()
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    first = date(year, month, 1)
    return _local_start(first)
