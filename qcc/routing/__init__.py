"""Routing decisions, all pure and synchronous (``now`` is always an argument).

- :mod:`qcc.routing.classify`: what an answer means (fail over? penalize?); 429 cool-downs
- :mod:`qcc.routing.strategies`: priority tiers and the four load-balancing strategies
- :mod:`qcc.routing.sticky`: session keys and the session -> account table
- :mod:`qcc.routing.latency`: the least-latency score (EWMA of TTFB plus a decaying failure penalty)
- :mod:`qcc.routing.budget`: the retry budget that bounds failovers
"""
