"""The redis-py asyncio client of one proxy, every call bounded, and whether Redis is up.

One connection pool (at most :data:`MAX_CONNECTIONS`), socket and connect timeouts of
:data:`SOCKET_TIMEOUT`, no retries inside redis-py: the sync task decides when to try again
(:class:`Backoff`), and request-path lookups give up after their own short wait.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from qcc.shared.settings import Target

SOCKET_TIMEOUT = 0.2
MAX_CONNECTIONS = 16
ERRORS = (RedisError, OSError, TimeoutError)  # what a Redis call may raise


@dataclass
class Backoff:
    """Seconds between attempts while Redis is down: doubling from ``first`` up to ``most``."""

    first: float = 0.25
    most: float = 2.0
    current: float = 0.0

    def failed(self) -> float:
        self.current = self.first if not self.current else min(self.current * 2, self.most)
        return self.current

    def succeeded(self) -> None:
        self.current = 0.0


class SharedClient:
    def __init__(self, target: Target, timeout: float = SOCKET_TIMEOUT) -> None:
        self.target = target
        pool = redis.BlockingConnectionPool.from_url(
            target.url,
            password=target.password,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,  # waiting for a free connection
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.redis: redis.Redis = redis.Redis(connection_pool=pool)
        self.up = False
        self.backoff = Backoff()
        self.last_error = ""

    def ok(self) -> None:
        self.up = True
        self.backoff.succeeded()
        self.last_error = ""

    def failed(self, exc: BaseException) -> float:
        """Mark Redis down; the seconds to wait before the next attempt."""
        self.up = False
        self.last_error = type(exc).__name__  # never the message: it may quote the URL
        return self.backoff.failed()

    async def close(self) -> None:
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()
