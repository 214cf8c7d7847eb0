"""Member keys, ``[clusters.C.keys.NAME]``: the stored hash of each key (never the key
itself), its requests-per-minute limit, daily budget and whether it is enabled.
"""

from __future__ import annotations

from qcc.config.checks import (
    as_table,
    boolean,
    check_name,
    int_at_least,
    no_unknown,
    optional,
    usd,
)
from qcc.config.keys import KEY_PREFIX, parse_stored
from qcc.config.model import MemberKey
from qcc.errors import ConfigValidationError
from qcc.redact import looks_like_secret

KEY_KEYS = ("hash", "rpm", "budget_daily_usd", "enabled")


def _key_hash(location: str, value: object) -> tuple[bytes, bytes]:
    parsed = parse_stored(value) if isinstance(value, str) else None
    if parsed is None:  # never quoted: it may be a key pasted where its hash belongs
        pasted = isinstance(value, str) and (
            value.startswith(KEY_PREFIX) or looks_like_secret(value)
        )
        raise ConfigValidationError(
            location,
            (
                "that looks like a key itself; config.toml keeps only its hash: "
                if pasted
                else "must be the hash 'qcc key add' wrote (sha256:SALT:DIGEST); "
            )
            + "create a key with 'qcc key add NAME'",
        )
    return parsed


def member_key_from(location: str, name: str, value: object) -> MemberKey:
    check_name(location, name)
    table = as_table(location, value)
    no_unknown(location, table, KEY_KEYS)
    if "hash" not in table:
        raise ConfigValidationError(
            f"{location}.hash", "is missing; create member keys with 'qcc key add NAME'"
        )
    salt, digest = _key_hash(f"{location}.hash", table["hash"])
    return MemberKey(
        name=name,
        salt=salt,
        digest=digest,
        rpm=optional(table, location, "rpm", None, int_at_least(1)),
        budget_daily_usd=optional(table, location, "budget_daily_usd", None, usd),
        enabled=optional(table, location, "enabled", True, boolean),
    )


def member_keys_from(location: str, value: object) -> tuple[MemberKey, ...]:
    table = as_table(location, value)
    return tuple(member_key_from(f"{location}.{n}", n, body) for n, body in table.items())
