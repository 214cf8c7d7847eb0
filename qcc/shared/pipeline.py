"""What one tick sends, queued on its one pipeline (nothing is sent here: the sync task
executes it, one round trip).

:func:`queue_writes`, in order: verdicts this instance decided (SET PX, expiring with the
verdict; DEL when the account is healthy again), announced limits that changed, a bump of each
written category's generation, session bindings, the pending usage/spend batch
(:mod:`qcc.shared.counters`), then the heartbeat and a read of the live instances.
:func:`queue_read` then queues the read script of :mod:`qcc.shared.reads`. So the tick's last
reply is the script's and the one before it the instance list.
"""

from __future__ import annotations

from redis.asyncio.client import Pipeline

from qcc.shared import keys as K
from qcc.shared.counters import APPLY, Batch
from qcc.shared.facts import Announced, Verdict
from qcc.shared.reads import READ


def queue_writes(
    pipe: Pipeline,
    keys: K.Keys,
    ident: str,
    verdicts: dict[str, Verdict | None],
    sessions: dict[str, str],
    limits: dict[str, Announced],
    batch: Batch | None,
    wall_now: float,
) -> None:
    """Queue one tick's writes by instance ``ident`` on ``pipe``."""
    for name, verdict in verdicts.items():
        if verdict is None:
            pipe.delete(keys.verdict(name))
        else:
            ttl = max(int((verdict.until - wall_now) * 1000), K.VERDICT_MIN_TTL_MS)
            pipe.set(keys.verdict(name), verdict.encode(), px=ttl)
    for name, announced in limits.items():
        pipe.set(keys.limits(name), announced.encode(), ex=K.LIMITS_TTL)
    for gen, written in zip(keys.gens, (verdicts, limits), strict=False):
        if written:
            pipe.incr(gen)
            pipe.expire(gen, K.BATCH_TTL)
    for session, account in sessions.items():
        pipe.set(keys.sticky(session), account, ex=K.STICKY_TTL)
    if batch is not None:  # EVAL, not EVALSHA: no extra round trip to load the script
        pipe.eval(
            APPLY,
            5,
            keys.batch(ident),
            keys.day("usage", batch.wall),
            keys.day("spend", batch.wall),
            keys.month(batch.wall),
            keys.gens[2],
            *batch.args(K.BATCH_TTL, K.DAY_TTL, K.MONTH_TTL),
        )
    pipe.zadd(keys.instances, {ident: wall_now})
    pipe.zremrangebyscore(keys.instances, "-inf", wall_now - K.INSTANCE_TTL)
    pipe.expire(keys.instances, K.INSTANCE_TTL)
    pipe.zrange(keys.instances, 0, -1, withscores=True)


def queue_read(
    pipe: Pipeline,
    keys: K.Keys,
    names: list[str],
    seen: tuple[str, str, str],
    limits_due: bool,
    wall_now: float,
) -> None:
    """Queue the read script for accounts ``names``, given the generations last ``seen``
    (``("", "", "")``: read everything); limits only when ``limits_due``."""
    pipe.eval(
        READ,
        5 + 2 * len(names),
        *keys.gens,
        keys.day("spend", wall_now),
        keys.month(wall_now),
        *(keys.verdict(n) for n in names),
        *(keys.limits(n) for n in names),
        *seen,
        len(names),
        1 if limits_due else 0,
    )
