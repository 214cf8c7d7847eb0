"""Member keys: how a client key is made, stored (only a salted hash) and checked. Pure.

A member key is ``qcc-`` + 43 URL-safe characters from :func:`secrets.token_urlsafe` (256 random
bits). ``config.toml`` keeps ``sha256:SALT:DIGEST``: a per-key random salt (16 bytes, hex) and
``sha256(salt + key)`` (hex). The key itself is printed once by ``qcc key add`` and never stored.

Why a fast hash and not a password KDF (scrypt, PBKDF2): a KDF makes guessing a *low-entropy*
secret (a password) slow. A 256-bit random key cannot be guessed at any speed, so one SHA-256
protects it as well as a KDF would, and the proxy can check it in a microsecond. The salt keeps
two stored hashes of one key (two clusters, two configs) from matching, and defeats precomputed
tables. Checks compare digests with :func:`hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "qcc-"
SCHEME = "sha256"
SALT_BYTES = 16
_STORED = re.compile(r"^sha256:([0-9a-f]{32}):([0-9a-f]{64})$")


def new_key() -> str:
    """A fresh member key: ``qcc-`` and 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str, salt: bytes) -> bytes:
    return hashlib.sha256(salt + key.encode("utf-8", "surrogateescape")).digest()


def stored_form(key: str, salt: bytes | None = None) -> str:
    """What ``config.toml`` keeps for ``key``: ``sha256:SALT:DIGEST`` (a new salt by default)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    return f"{SCHEME}:{salt.hex()}:{digest(key, salt).hex()}"


def parse_stored(text: str) -> tuple[bytes, bytes] | None:
    """(salt, digest) of a stored form; None when ``text`` is not one."""
    match = _STORED.match(text)
    if match is None:
        return None
    return bytes.fromhex(match.group(1)), bytes.fromhex(match.group(2))


def matches(key: str, salt: bytes, expected: bytes) -> bool:
    """Whether ``key`` is the one whose salted hash is ``expected`` (constant-time compare)."""
    return hmac.compare_digest(digest(key, salt), expected)
