"""The accounts of a running proxy: who they are, how they are doing, which one serves next.

Knows nothing of HTTP. ``member`` joins an account's config with its runtime state; ``pool``
selects (sticky session, strategy, panic mode) and applies reloads (``reload`` decides which
members stay; ``credentials`` wires their credentials); ``observe`` is the one place an outcome
(from traffic or a probe) becomes health state, stats and latency score; ``spend`` judges budgets;
``availability`` says which accounts can serve and why not; ``monitor`` schedules probes through a
callable the proxy gives it.
"""
