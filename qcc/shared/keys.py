"""Every Redis key qcc uses, ``qcc:{cluster}:...``, and how long each lives.

qcc:{c}:verdict:{account}    JSON verdict; expires when the verdict ends
qcc:{c}:limits:{account}     JSON of the latest announced limits; 1 h
qcc:{c}:sticky:{digest}      account name of a session (digest: 16 bytes of BLAKE2b); 1 h
qcc:{c}:instances            sorted set: instance id -> last heartbeat (unix s); 1 min
qcc:{c}:usage:{YYYY-MM-DD}   hash: a:{account}:{kind} / k:{key}:{kind} -> tokens; 40 days
qcc:{c}:spend:{YYYY-MM-DD}   hash: a:{account} / k:{key} -> USD; 40 days
qcc:{c}:spend:{YYYY-MM}      hash: a:{account} / k:{key} -> USD; 70 days
qcc:{c}:batch:{id}           marks a counter batch as applied (no double count); 1 day
"""

from __future__ import annotations

import hashlib
import time

VERDICT_MIN_TTL_MS = 1000
LIMITS_TTL = 3600
STICKY_TTL = 3600
INSTANCE_TTL = 60  # the set itself; an instance counts as live for HEARTBEAT_LIVE seconds
HEARTBEAT_LIVE = 5.0
DAY_TTL = 40 * 86400
MONTH_TTL = 70 * 86400
BATCH_TTL = 86400


class Keys:
    """The keys of one cluster."""

    def __init__(self, cluster: str) -> None:
        self.prefix = prefix = f"qcc:{cluster}:"
        self.instances = f"{prefix}instances"
        self.gens = (f"{prefix}gen:verdicts", f"{prefix}gen:limits", f"{prefix}gen:spend")

    def verdict(self, account: str) -> str:
        return f"{self.prefix}verdict:{account}"

    def limits(self, account: str) -> str:
        return f"{self.prefix}limits:{account}"

    def sticky(self, session: str) -> str:
        digest = hashlib.blake2b(session.encode("utf-8", "replace"), digest_size=16).hexdigest()
        return f"{self.prefix}sticky:{digest}"

    def day(self, what: str, wall_now: float) -> str:
        """``usage`` or ``spend`` of the local day of ``wall_now``."""
        return f"{self.prefix}{what}:{time.strftime('%Y-%m-%d', time.localtime(wall_now))}"

    def month(self, wall_now: float) -> str:
        return f"{self.prefix}spend:{time.strftime('%Y-%m', time.localtime(wall_now))}"

    def batch(self, instance: str) -> str:
        return f"{self.prefix}batch:{instance}"
