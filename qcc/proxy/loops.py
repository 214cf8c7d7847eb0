"""Which event loop the proxy runs on: uvloop when it is installed (not on Windows), else asyncio.

``QCC_LOOP=asyncio`` forces asyncio's own loop (the benchmark compares both); ``QCC_LOOP=uvloop``
insists on uvloop and fails with a one-line error when it is missing. Unset (or ``auto``): uvloop
if importable, else asyncio.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Mapping
from importlib import metadata

from qcc.errors import ProxyError

LOOP_ENV = "QCC_LOOP"
CHOICES = ("auto", "asyncio", "uvloop")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def wanted(env: Mapping[str, str] | None = None) -> str:
    """``auto``, ``asyncio`` or ``uvloop`` from ``QCC_LOOP``; a ProxyError for anything else."""
    value = (os.environ if env is None else env).get(LOOP_ENV, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise ProxyError(f"{LOOP_ENV}={value!r} is not a loop qcc knows; use asyncio or uvloop")
    return value


def factory(
    env: Mapping[str, str] | None = None, platform: str = sys.platform
) -> LoopFactory | None:
    """The loop factory for ``asyncio.Runner`` (None: asyncio's default loop)."""
    choice = wanted(env)
    if choice == "asyncio" or (platform == "win32" and choice == "auto"):
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ProxyError(
                f"{LOOP_ENV}=uvloop but uvloop is not installed; pip install uvloop, "
                f"or unset {LOOP_ENV}"
            ) from None
        return None
    new_loop: LoopFactory = uvloop.new_event_loop
    return new_loop


def describe(env: Mapping[str, str] | None = None) -> str:
    """The loop a proxy started now would run on, with its version: ``uvloop 0.21.0``."""
    try:
        if factory(env) is None:
            return "asyncio"
    except ProxyError:
        return f"asyncio ({LOOP_ENV} is invalid)"
    try:
        return f"uvloop {metadata.version('uvloop')}"
    except metadata.PackageNotFoundError:
        return "uvloop"


def running() -> str:
    """``uvloop`` or ``asyncio``: the loop this code runs on (call it inside the loop)."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
