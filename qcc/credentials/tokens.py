"""Rotated OAuth2 refresh tokens, kept in the state dir (never in ``config.toml``).

One small JSON file per account, ``<state>/oauth/<cluster>.<account>.json``, mode 0600, replaced
atomically (:func:`qcc.config.store.atomic_write`): a ``kill -9`` during a write leaves the old
token or the new one, never half of either. The file remembers a fingerprint of the *initial*
token it descends from; when the config is given a different initial token, that one wins (the
user replaced it) and the file is ignored until the next rotation.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from qcc.config.store import atomic_write
from qcc.paths import state_dir

TOKENS_DIR = "oauth"


def tokens_dir() -> Path:
    return state_dir() / TOKENS_DIR


def _fingerprint(token: str | None) -> str:
    return "" if token is None else hashlib.sha256(token.encode()).hexdigest()[:16]


class TokenStore:
    """The newest refresh token of one account: the persisted rotation, else the initial one."""

    def __init__(self, path: Path, initial: str | None) -> None:
        self.path = path
        self.initial = initial

    def load(self) -> str | None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return self.initial
        token = doc.get("refresh_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            return self.initial
        if doc.get("initial") != _fingerprint(self.initial):
            return self.initial  # the config names another initial token: the user's choice
        return token

    def save(self, token: str) -> None:
        """Persist a rotated token (blocking: fsync; call it off the event loop)."""
        doc = {
            "refresh_token": token,
            "initial": _fingerprint(self.initial),
            "saved_at": time.time(),
        }
        atomic_write(self.path, json.dumps(doc) + "\n", 0o600)
