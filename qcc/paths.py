"""Where qcc keeps its files: one function per directory, each with an override.

Config: ``--config-dir`` (passed in), else ``QCC_CONFIG_DIR``, else platformdirs' user config dir.
State (pid file, logs, usage records): ``QCC_STATE_DIR``, else platformdirs' user state dir.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "qcc"
CONFIG_FILE_NAME = "config.toml"


def config_dir(override: str | os.PathLike[str] | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get("QCC_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def config_path(override: str | os.PathLike[str] | None = None) -> Path:
    return config_dir(override) / CONFIG_FILE_NAME


def state_dir() -> Path:
    env = os.environ.get("QCC_STATE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def log_dir() -> Path:
    env = os.environ.get("QCC_STATE_DIR")
    if env:
        return Path(env).expanduser() / "logs"
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
