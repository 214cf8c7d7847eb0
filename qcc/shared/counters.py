"""Usage and spend not yet in Redis: added per request, sent in batches that count once. Pure.

:meth:`Counters.add` costs a few dict updates per request (no I/O). Each tick :meth:`freeze`
turns what is pending into a :class:`Batch` with a unique id; the batch is sent by :data:`APPLY`,
a Lua script that applies it only if its id is not the last one applied for this instance (one
marker key per instance: an instance sends its batches one after the other), so a batch whose
reply was lost (Redis died, a timeout) and that is sent again after the reconnect is counted
once. Only a batch known applied is dropped; while one is unconfirmed, new requests add
to the next batch. Nothing is lost while Redis is down: it waits here, in memory, until the
reconnect (lost only if this process ends before Redis comes back; the local usage store has it).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

# KEYS: this instance's batch marker, usage of the day, spend of the day, spend of the month,
# gen:spend. ARGV: batch id, marker ttl, day ttl, month ttl, number of token fields, then
# field/value pairs of tokens, then field/value pairs of USD.
APPLY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i < #ARGV do
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBYFLOAT', KEYS[4], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[4])
redis.call('INCR', KEYS[5])
redis.call('EXPIRE', KEYS[5], ARGV[2])
return 1
"""


def account_field(account: str) -> str:
    return f"a:{account}"


def key_field(key_name: str) -> str:
    return f"k:{key_name}"


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    wall: float  # when it was frozen: its day and month
    tokens: tuple[tuple[str, int], ...]  # ("a:main:input_tokens", 120), ("k:ann:requests", 1)
    usd: tuple[tuple[str, float], ...]  # ("a:main", 0.0012), ("k:ann", 0.0012)

    def args(self, marker_ttl: int, day_ttl: int, month_ttl: int) -> list[str | int | float]:
        flat: list[str | int | float] = [self.id, marker_ttl, day_ttl, month_ttl, len(self.tokens)]
        for name, count in self.tokens:
            flat += (name, count)
        for name, usd in self.usd:
            flat += (name, repr(usd))
        return flat


class Counters:
    def __init__(self) -> None:
        self._tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._usd: defaultdict[str, float] = defaultdict(float)
        self.batch: Batch | None = None  # sent, not yet known applied

    def add(
        self, account: str, usage: Mapping[str, int], usd: float, key_name: str | None = None
    ) -> None:
        """One request's usage and cost, for ``account`` and (if named) the member key."""
        tokens = self._tokens
        names = (
            (account_field(account),)
            if key_name is None
            else (
                account_field(account),
                key_field(key_name),
            )
        )
        for name in names:
            tokens[(name, "requests")] += 1
            for kind, count in usage.items():
                if count:
                    tokens[(name, kind)] += count
            if usd:
                self._usd[name] += usd

    def freeze(self, wall_now: float) -> Batch | None:
        """The batch to send now: the unconfirmed one again, else what is pending (if any)."""
        if self.batch is None and (self._tokens or self._usd):
            self.batch = Batch(
                uuid.uuid4().hex,
                wall_now,
                tuple((f"{name}:{kind}", n) for (name, kind), n in self._tokens.items()),
                tuple(self._usd.items()),
            )
            self._tokens.clear()
            self._usd.clear()
        return self.batch

    def applied(self, batch: Batch) -> None:
        """Redis confirmed ``batch`` (applied now, or before: a retry)."""
        if self.batch is batch:
            self.batch = None

    def unsent_usd(self, name: str) -> float:
        """USD of ``name`` (``a:{account}`` or ``k:{key}``) not known to be in Redis yet."""
        usd = self._usd.get(name, 0.0)
        batch = self.batch
        if batch is not None:
            usd += sum(v for n, v in batch.usd if n == name)
        return usd
