r"""Session affinity: keep one Claude Code conversation on one account (prompt caches stay warm).

:func:`session_key` finds the conversation's id without parsing the (often 200 KB+) request
body: the ``x-claude-code-session-id`` header, else the ``session_id`` inside the body's
``metadata.user_id``, else the whole ``metadata.user_id`` string (SDK users set it to their end
user, which keeps that user on one account). The key is the bare id, so the header and the body
name the same conversation.

Claude Code writes ``metadata.user_id`` in two forms::

    "user_id": "{\"device_id\":\"ab12…\",\"account_uuid\":\"\",\"session_id\":\"0f3c…\"}"
    "user_id": "user_<64 hex>_account_<uuid or empty>_session_<uuid>"

Top-level ``metadata`` comes after ``messages`` and ``tools``, and a ``"metadata"`` inside a
message text is escaped (``\"metadata\"``), so the body is searched backwards from its end, from
quote to quote (:mod:`qcc.routing.jsonkeys`): a long string costs one ``memrchr``.

:class:`StickyTable` maps keys to account names: an LRU by last ``set``, with a TTL counted from
that ``set``. All operations are O(1) (amortized), except :meth:`StickyTable.forget_account`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

from qcc.routing.jsonkeys import rfind_quoted

HEADER = "x-claude-code-session-id"
_CASELESS = (CIMultiDict, CIMultiDictProxy)  # aiohttp's request headers: get() ignores case

_METADATA = b'"metadata"'
_MAX_METADATA_TRIES = 4  # occurrences of "metadata" examined, from the end of the body
_WINDOW = 4096  # bytes after "metadata" in which user_id must start
_USER_ID = re.compile(rb'"user_id"\s*:\s*"((?:[^"\\]|\\.){1,4096})"')
_JSON_SESSION = re.compile(rb'session_id\\?"\s*:\s*\\?"([A-Za-z0-9._:-]{1,128})\\?"')
_LEGACY_SESSION = re.compile(rb"_session_([A-Za-z0-9-]{1,128})$")


def _header(headers: Mapping[str, str]) -> str | None:
    value = headers.get(HEADER)
    if value is None and not isinstance(headers, _CASELESS):  # a plain dict: look at every name
        for key, candidate in headers.items():
            if key.lower() == HEADER:
                value = candidate
                break
    if value is None:
        return None
    value = value.strip()
    return value[:256] or None


def _from_user_id(raw: bytes) -> str | None:
    match = _JSON_SESSION.search(raw) or _LEGACY_SESSION.search(raw)
    return match.group(1).decode("ascii") if match else None


def _body(body: bytes) -> str | None:
    end = len(body)
    for _ in range(_MAX_METADATA_TRIES):
        start = rfind_quoted(body, _METADATA, end)
        if start < 0:
            return None
        after = start + len(_METADATA)
        match = _USER_ID.search(body, after, min(after + _WINDOW + 8192, len(body)))
        if match is not None and match.start() - after <= _WINDOW:
            raw = match.group(1)
            # The session inside the user id, else the user id itself (as sent, JSON-escaped).
            return _from_user_id(raw) or raw.decode("utf-8", "replace")
        end = start
    return None


def session_key(headers: Mapping[str, str], body: bytes) -> str | None:
    """The conversation id of a request, or None if it carries none."""
    return _header(headers) or _body(body)


class StickyTable:
    """Session key -> account name, with a TTL from the last ``set`` and at most ``max_entries``."""

    def __init__(self, ttl: float = 3600.0, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        # key -> (account, expires_at), oldest set first; TTL is constant, so also soonest expiry
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, key: str, now: float) -> str | None:
        """The account of ``key`` unless expired. Reading does not extend the TTL."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry[1]:
            del self._entries[key]
            return None
        return entry[0]

    def set(self, key: str, account: str, now: float) -> None:
        """Bind ``key`` to ``account`` for ``ttl`` seconds from ``now``."""
        entries = self._entries
        entries[key] = (account, now + self.ttl)
        entries.move_to_end(key)
        self._expire(now)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (_, expires_at) = next(iter(entries.items()))
            if now < expires_at:
                return
            del entries[key]

    def forget_account(self, account: str) -> None:
        """Drop every session bound to ``account`` (it was removed or changed). O(n)."""
        stale = [key for key, (name, _) in self._entries.items() if name == account]
        for key in stale:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
