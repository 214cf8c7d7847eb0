"""Account health: :mod:`qcc.health.state` is the per-account state machine (pure, synchronous)."""
