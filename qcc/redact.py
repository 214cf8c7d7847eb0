"""Keeping secrets out of everything qcc stores, logs, prints or answers. Pure.

Two tools, used at every edge where text from outside (an account's error body, an exception
message, a value typed on the command line) could carry a secret onwards:

* :func:`scrub` replaces every occurrence of known secrets (an account's credential, the client's
  key) with a masked form, and also anything shaped like an Anthropic key or a bearer token, so an
  account that echoes ``"invalid x-api-key: sk-ant-…"`` back never puts the key into
  ``last_error``, a log line or a response;
* :func:`looks_like_secret` tells a CLI error not to repeat a value that is probably a key (say,
  one pasted into ``--api-key-env``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
MIN_SECRET = 8  # shorter "secrets" (placeholders such as "qcc") are not worth hunting for

# Shapes of credentials worth hiding even when qcc does not know the value: Anthropic keys and
# tokens (sk-ant-…), OpenAI-style keys (sk-…), and what follows "Bearer ".
_SHAPES = re.compile(
    r"sk-[A-Za-z0-9_\-]{16,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{12,}"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret, and anything shaped like a key, replaced by a mask."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET and secret in text:
            text = text.replace(secret, MASK)
    if "sk-" in text or "earer" in text or "EARER" in text:
        text = _SHAPES.sub(MASK, text)
    return text


def looks_like_secret(value: str) -> bool:
    """Whether a value given where a *name* was expected is more likely a key: ``sk-…``, or a
    long run of token characters that is not an environment variable name."""
    value = value.strip()
    if value.startswith(("sk-", "sk_")):
        return True
    if not _ENV_NAME.match(value):
        return len(value) >= 16  # long, with characters no variable name has ("-", "/", "=")
    # A valid name, but long and mixing lower case with digits, as random tokens do.
    return len(value) >= 32 and any(c.islower() for c in value) and any(c.isdigit() for c in value)
