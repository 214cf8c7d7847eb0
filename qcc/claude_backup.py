"""What ``qcc claude enable`` remembers, in qcc's state dir, so ``disable`` can undo it exactly.

Two files (mode 0600 in a 0700 directory), and a lock beside them::

    claude-settings-backup.json        the :class:`BackupRecord`, version 1:
        {"version": 1, "settings_path": "...", "existed": bool, "dir_existed": bool,
         "env_existed": bool, "previous": {KEY: value, or null if absent},
         "applied": {KEY: sha256 of what qcc wrote}, "original_sha256": "..." or null}
    claude-settings.json.bak           the original settings file, byte for byte (absent if none)
    .claude-settings-backup.json.lock  held for a whole enable or disable (:func:`locked`)

``applied`` holds hashes, not values, so the access key is stored nowhere but settings.json.

The lock sits next to the record, not next to settings.json: the record is what two ``qcc``
processes would race on (and ``disable`` only learns which settings file to restore by reading
it); Claude Code's directory is not qcc's to litter (it may be a dotfiles checkout, and
``enable`` must see whether it existed before qcc touched it); and Claude Code does not take
qcc's lock anyway, so a lock there would guard nothing more.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from qcc.config.store import LOCK_TIMEOUT, atomic_write
from qcc.errors import QccError
from qcc.paths import state_dir

BACKUP_NAME = "claude-settings-backup.json"
COPY_NAME = "claude-settings.json.bak"
BACKUP_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ClaudeSettingsError(QccError):
    """settings.json or qcc's backup of it cannot be read, parsed or written."""


class NotEnabledError(ClaudeSettingsError):
    """``disable`` found no backup: ``enable`` was not run (or was undone already)."""


def backup_path() -> Path:
    """The backup record ``enable`` writes and ``disable`` reads."""
    return state_dir() / BACKUP_NAME


def copy_path_for(backup: Path) -> Path:
    """The byte-for-byte copy of the original settings file, next to the backup record."""
    return backup.with_name(COPY_NAME)


def lock_path_for(backup: Path) -> Path:
    return backup.with_name(f".{backup.name}.lock")


def shown(path: Path) -> str:
    """``path`` for messages, with the home directory written as ``~``."""
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except (ValueError, RuntimeError):
        return str(path)


@dataclass
class BackupRecord:
    """What the settings file held before qcc first changed it, and what qcc wrote since."""

    settings_path: Path  # absolute: the file disable restores
    existed: bool  # the file existed
    dir_existed: bool  # its directory existed
    env_existed: bool  # it had an "env" object
    previous: dict[str, Any]  # KEY -> its value before qcc, None if it was absent
    applied: dict[str, str]  # KEY -> sha256 of the JSON qcc wrote there
    original_sha256: str | None  # of the original bytes (None: no file)

    def to_bytes(self) -> bytes:
        """The record as version-1 JSON, byte for byte as qcc 0.1 wrote it."""
        doc = {
            "version": BACKUP_VERSION,
            "settings_path": str(self.settings_path),
            "existed": self.existed,
            "dir_existed": self.dir_existed,
            "env_existed": self.env_existed,
            "previous": self.previous,
            "applied": self.applied,
            "original_sha256": self.original_sha256,
        }
        return (json.dumps(doc, indent=2) + "\n").encode()


def parse_record(raw: bytes, path: Path) -> BackupRecord:
    """The record in ``raw`` (read from ``path``), or one :class:`ClaudeSettingsError` line."""

    def damaged(reason: str) -> ClaudeSettingsError:
        return ClaudeSettingsError(
            f"the backup {path} is damaged ({reason}); restore settings.json by hand "
            f"(a copy of the original may be at {copy_path_for(path)}) and delete the backup"
        )

    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise damaged("not JSON") from None
    if not isinstance(doc, dict):
        raise damaged("not a JSON object")
    version = doc.get("version")
    if version != BACKUP_VERSION or isinstance(version, bool):
        raise damaged(f"version {json.dumps(version)}, this qcc reads version {BACKUP_VERSION}")

    def field(name: str, kind: type | tuple[type, ...], what: str) -> Any:
        if name not in doc:
            raise damaged(f'no "{name}"')
        value = doc[name]
        if not isinstance(value, kind):
            raise damaged(f'"{name}" is not {what}')
        return value

    settings = field("settings_path", str, "a path")
    if not settings:
        raise damaged('"settings_path" is empty')
    applied = field("applied", dict, "an object")
    for key, digest in applied.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise damaged(f'"applied.{key}" is not a sha256 hex digest')
    original = field("original_sha256", (str, type(None)), "a sha256 hex digest or null")
    if original is not None and not _SHA256.fullmatch(original):
        raise damaged('"original_sha256" is not a sha256 hex digest or null')
    return BackupRecord(
        settings_path=Path(settings),
        existed=field("existed", bool, "true or false"),
        dir_existed=field("dir_existed", bool, "true or false"),
        env_existed=field("env_existed", bool, "true or false"),
        previous=field("previous", dict, "an object"),
        applied=applied,
        original_sha256=original,
    )


def read_file(path: Path) -> bytes | None:
    """``path``'s bytes, None if it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClaudeSettingsError(
            f"cannot read {shown(path)} ({exc.strerror or exc}); nothing was changed"
        ) from None


def load_record(backup: Path) -> BackupRecord | None:
    """The record at ``backup``, None if there is none."""
    raw = read_file(backup)
    return None if raw is None else parse_record(raw, backup)


def write_private(path: Path, data: bytes) -> None:
    """A file in qcc's state dir: mode 0600 in a 0700 directory."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, data, 0o600)
    except OSError as exc:
        raise ClaudeSettingsError(
            f"cannot write the backup {path} ({exc.strerror or exc}); nothing was changed"
        ) from None


@contextlib.contextmanager
def locked(backup: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the inter-process lock beside ``backup``, as ``config.toml`` edits hold theirs."""
    lock = FileLock(str(lock_path_for(backup)), timeout=timeout)
    try:
        backup.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock.acquire()
    except Timeout:
        raise ClaudeSettingsError(
            f"another qcc process is changing Claude Code's settings (lock "
            f"{lock_path_for(backup)}); try again; nothing was changed"
        ) from None
    except OSError as exc:
        raise ClaudeSettingsError(
            f"cannot write the backup {backup} ({exc.strerror or exc}); nothing was changed"
        ) from None
    try:
        yield
    finally:
        lock.release()
