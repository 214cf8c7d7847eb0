"""What a tick reads, in one script that sends only what changed since the last read. Pure
(the script's text and the parsing of its reply).

Every write of a verdict, of limits or of a counter batch increments its category's generation
(``gen:verdicts``, ``gen:limits``, ``gen:spend``). A tick passes the generations it last saw;
the script returns each category only if its generation moved (limits at most every
:data:`LIMITS_EVERY` seconds: they change with every response an account sends), so an idle
team's tick reads three short strings and the instance list, whatever the number of accounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

LIMITS_EVERY = 1.0

# KEYS: gen:verdicts, gen:limits, gen:spend, spend of the day, spend of the month,
#       then M verdict keys, then M limits keys.
# ARGV: the three generations last seen, M, 1 if limits are due.
READ = """
local m = tonumber(ARGV[4])
local v = redis.call('GET', KEYS[1]) or '0'
local l = redis.call('GET', KEYS[2]) or '0'
local s = redis.call('GET', KEYS[3]) or '0'
local out = {v, l, s, false, false, false, false}
if v ~= ARGV[1] and m > 0 then out[4] = redis.call('MGET', unpack(KEYS, 6, 5 + m)) end
if l ~= ARGV[2] and ARGV[5] == '1' and m > 0 then
  out[5] = redis.call('MGET', unpack(KEYS, 6 + m, 5 + 2 * m))
end
if s ~= ARGV[3] then
  out[6] = redis.call('HGETALL', KEYS[4])
  out[7] = redis.call('HGETALL', KEYS[5])
end
return out
"""


class Snapshot(NamedTuple):
    """A tick's reply; None for a category that did not change (not sent)."""

    gens: tuple[str, str, str]
    verdicts: list[bytes | None] | None
    limits: list[bytes | None] | None
    day: dict[str, float] | None
    month: dict[str, float] | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _totals(value: Any) -> dict[str, float] | None:
    """A hash as the script returns it (a flat field/value list; a map under RESP3)."""
    if value is None or value is False:
        return None
    if isinstance(value, dict):
        return {_text(k): float(v) for k, v in value.items()}
    return {_text(value[i]): float(value[i + 1]) for i in range(0, len(value) - 1, 2)}


def _values(value: Any) -> list[bytes | None] | None:
    if value is None or value is False:
        return None
    return [v if isinstance(v, bytes) and v else None for v in value]


def parse(reply: Sequence[Any]) -> Snapshot:
    gens = (_text(reply[0]), _text(reply[1]), _text(reply[2]))
    return Snapshot(
        gens, _values(reply[3]), _values(reply[4]), _totals(reply[5]), _totals(reply[6])
    )
