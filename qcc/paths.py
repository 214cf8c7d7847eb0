"""Where qcc keeps its files: one function per directory, each with an override.

Config: ``--config-dir`` (passed in), else ``QCC_CONFIG_DIR``, else platformdirs' user config dir.
State (pid file, logs, usage records): ``QCC_STATE_DIR``, else platformdirs' user state dir.
Every directory qcc creates is 0700 (:func:`private_dir`): they hold secrets and request logs.
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


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Make sure ``path`` is a directory, creating it and any missing parents with mode 0700.

    With ``tighten``, an existing directory of ours that others can read is set to 0700 too
    (for qcc's own state and log directories, never for directories shared with other tools).
    """
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is cut by the umask, never widened: be exact
    if tighten and os.name == "posix":
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o700)
    return path
