"""Several qcc instances sharing one pool through Redis (``[shared] redis_url``).

Nothing here is imported unless ``[shared]`` (or ``QCC_REDIS_URL``) is configured: without it
qcc is the single process it always was.

* :mod:`~qcc.shared.settings` — where Redis is; the password never shown.
* :mod:`~qcc.shared.keys` — every key, ``qcc:{cluster}:...``, each with a TTL.
* :mod:`~qcc.shared.facts` — verdicts and announced limits as Redis stores them (pure).
* :mod:`~qcc.shared.counters` — usage and spend deltas, batched, idempotent on retry (pure).
* :mod:`~qcc.shared.client` — the redis-py asyncio client, ok/down, backoff.
* :mod:`~qcc.shared.reads` — the read script that returns only what changed (pure).
* :mod:`~qcc.shared.pipeline` — what one tick writes and reads, queued on one pipeline.
* :mod:`~qcc.shared.sync` — the one owned task per cluster: the tick, and applying what the
  others decided.
"""
