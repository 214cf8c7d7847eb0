"""Merge the proxy's variables into Claude Code's ``settings.json``, and undo exactly that.

Claude Code reads the ``"env"`` object of its ``settings.json`` (in ``$CLAUDE_CONFIG_DIR``, else
``~/.claude``). :func:`enable` merges only qcc's keys (:func:`qcc.claude_env.proxy_env`) into it
after recording what was there (:mod:`qcc.claude_backup`); :func:`disable` puts exactly that back
and leaves everything else alone. Each runs as one transaction under the backup's file lock, so
two ``qcc`` processes cannot interleave their read-modify-writes.

The settings file is rewritten as ``json.dumps`` with the file's own indentation (2 spaces for a
new file) and trailing newline; other formatting (spacing inside a line, escapes) may change.
:func:`disable` writes the original bytes back when the result equals the original content.

Nothing here prints; the CLI (:mod:`qcc.cli.claude`) renders the results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qcc.claude_backup import (
    BACKUP_NAME,
    BackupRecord,
    ClaudeSettingsError,
    NotEnabledError,
    backup_path,
    copy_path_for,
    load_record,
    locked,
    parse_record,
    read_file,
    shown,
    write_private,
)
from qcc.claude_env import (
    BASE_URL_KEY,
    PLACEHOLDER_TOKEN,
    SHELLS,
    TOKEN_KEY,
    display_value,
    proxy_env,
    shell_lines,
)
from qcc.config.store import LOCK_TIMEOUT, atomic_write

# The CLI reaches all it needs through this module (``cs.proxy_env``, ``cs.backup_path``...).
__all__ = [
    "BACKUP_NAME",
    "BASE_URL_KEY",
    "SHELLS",
    "TOKEN_KEY",
    "Change",
    "ClaudeSettingsError",
    "DisableResult",
    "EnableResult",
    "NotEnabledError",
    "backup_path",
    "copy_path_for",
    "disable",
    "enable",
    "proxy_env",
    "settings_path",
    "shell_lines",
    "shown",
]

NEW_FILE_MODE = 0o644


def settings_path(environ: Mapping[str, str] | None = None) -> Path:
    """Claude Code's user settings: ``$CLAUDE_CONFIG_DIR/settings.json``, else ``~/.claude/``."""
    env = os.environ if environ is None else environ
    base = env.get("CLAUDE_CONFIG_DIR")
    directory = Path(base).expanduser() if base else Path.home() / ".claude"
    return directory / "settings.json"


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What happened to one key of ``env``; ``value`` is already masked for display."""

    key: str
    action: str  # enable: added | replaced | unchanged; disable: restored | removed
    value: str | None = None


@dataclass(frozen=True)
class EnableResult:
    settings_path: Path
    created: bool  # the file did not exist
    first: bool  # False when enable was active already (the backup kept the pre-qcc values)
    changes: tuple[Change, ...]
    backup_path: Path
    copy_path: Path | None  # None when there was no original file to copy
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DisableResult:
    settings_path: Path
    changes: tuple[Change, ...]
    deleted: bool  # the file was removed: it did not exist before enable
    notes: tuple[str, ...] = ()


# --- file helpers ----------------------------------------------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _same(a: Any, b: Any) -> bool:
    """Deep equality that also tells ``true`` from ``1`` and respects key order."""
    return json.dumps(a) == json.dumps(b)


def _write_settings(path: Path, data: bytes) -> None:
    """Write through a symlink (dotfile managers) and keep the file's mode."""
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data, mode)
    except OSError as exc:
        raise ClaudeSettingsError(
            f"cannot write {shown(path)} ({exc.strerror or exc}); nothing was changed"
        ) from None


def _parse(raw: bytes, path: Path) -> dict[str, Any]:
    """The settings file as a JSON object, or a one-line error naming what is wrong."""
    where = shown(path)
    try:
        text = raw.decode("utf-8-sig")
        data = json.loads(text) if text.strip() else {}  # an empty file is an empty object
    except UnicodeDecodeError:
        raise ClaudeSettingsError(
            f"{where} is not UTF-8 text; fix it or move it away, nothing was changed"
        ) from None
    except json.JSONDecodeError as exc:
        raise ClaudeSettingsError(
            f"{where} is not valid JSON (line {exc.lineno}: {exc.msg}); "
            "fix it or move it away, nothing was changed"
        ) from None
    if not isinstance(data, dict):
        raise ClaudeSettingsError(
            f"{where} holds a JSON {type(data).__name__ if data is not None else 'null'}, "
            "not an object; fix it or move it away, nothing was changed"
        )
    env = data.get("env")
    if env is not None and not isinstance(env, dict):
        raise ClaudeSettingsError(
            f'"env" in {where} is not a JSON object; fix it or move it away, nothing was changed'
        )
    return data


def _render(data: dict[str, Any], like: bytes | None) -> bytes:
    """``data`` as JSON with the indentation and final newline of ``like`` (2 spaces, newline)."""
    indent: str | int = 2
    newline = True
    if like is not None:
        text = like.decode("utf-8-sig")
        match = re.search(r"\n([ \t]+)\S", text)
        if match:
            indent = match.group(1)
        newline = text.endswith("\n") or not text.strip()
    out = json.dumps(data, indent=indent, ensure_ascii=False)
    return (out + "\n" if newline else out).encode("utf-8")


def _same_file(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


def _conflict_notes(data: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """Settings that would send a different credential than the access key qcc set."""
    if env.get(TOKEN_KEY, PLACEHOLDER_TOKEN) == PLACEHOLDER_TOKEN:
        return []
    notes = []
    settings_env = data.get("env") or {}
    if "ANTHROPIC_API_KEY" in settings_env:
        notes.append(
            'settings.json "env" also sets ANTHROPIC_API_KEY; Claude Code sends it as x-api-key '
            "and the proxy checks that before the access key: remove it if requests get 401"
        )
    if "apiKeyHelper" in data:
        notes.append(
            'settings.json sets "apiKeyHelper"; Claude Code may send its output instead of the '
            "access key: remove it if requests get 401"
        )
    return notes


# --- enable / disable ------------------------------------------------------------------------


def enable(
    settings: Path, env: Mapping[str, str], backup: Path, *, lock_timeout: float = LOCK_TIMEOUT
) -> EnableResult:
    """Merge ``env`` into the ``"env"`` object of ``settings``, recording what was there first.

    Only the keys of ``env`` change; every other key, its order and its value stay. Running it
    again keeps the first run's record of the pre-qcc values, so :func:`disable` still restores
    those. Raises :class:`ClaudeSettingsError` (and changes nothing) when the file is not a
    JSON object, or when another qcc process holds the lock for ``lock_timeout`` seconds.
    """
    with locked(backup, lock_timeout):
        return _enable(settings, env, backup)


def _enable(settings: Path, env: Mapping[str, str], backup: Path) -> EnableResult:
    copy = copy_path_for(backup)
    original = read_file(settings)
    data = _parse(original, settings) if original is not None else {}
    current_env: dict[str, Any] = data.get("env") or {}
    old_record = read_file(backup)
    record = None if old_record is None else parse_record(old_record, backup)
    first = record is None
    notes: list[str] = []
    if record is None:
        record = BackupRecord(
            settings_path=settings.absolute(),
            existed=original is not None,
            dir_existed=settings.parent.is_dir(),
            env_existed="env" in data,
            previous={},
            applied={},
            original_sha256=None if original is None else hashlib.sha256(original).hexdigest(),
        )
    elif not _same_file(record.settings_path, settings):
        raise ClaudeSettingsError(
            f"qcc claude enable is active for {shown(record.settings_path)} already; "
            "run 'qcc claude disable' first"
        )
    for key in env:
        if key not in record.previous:
            record.previous[key] = current_env.get(key)
        elif key in record.applied and _digest(current_env.get(key)) != record.applied[key]:
            notes.append(f"{key} was changed by hand since the last enable; replaced it")

    changes: list[Change] = []
    merged = dict(current_env)
    for key, value in env.items():
        if key not in merged:
            action = "added"
        elif _same(merged[key], value):
            action = "unchanged"
        else:
            action = "replaced"
        merged[key] = value
        record.applied[key] = _digest(value)
        changes.append(Change(key, action, display_value(key, value)))
    changed = original is None or "env" not in data or any(c.action != "unchanged" for c in changes)
    data["env"] = merged  # replaces the value in place: "env" keeps its position

    if first and original is not None:
        write_private(copy, original)
    elif first:
        with contextlib.suppress(FileNotFoundError):
            copy.unlink()  # a copy from an older enable/disable round would mislead
    write_private(backup, record.to_bytes())
    if changed:
        try:
            _write_settings(settings, _render(data, original))
        except ClaudeSettingsError:  # leave no record of a change that did not happen
            with contextlib.suppress(OSError):
                if old_record is None:
                    backup.unlink()
                else:
                    atomic_write(backup, old_record, 0o600)
            raise
    notes.extend(_conflict_notes(data, env))
    return EnableResult(
        settings_path=settings,
        created=original is None,
        first=first,
        changes=tuple(changes),
        backup_path=backup,
        copy_path=copy if copy.exists() else None,
        notes=tuple(notes),
    )


def disable(settings: Path, backup: Path, *, lock_timeout: float = LOCK_TIMEOUT) -> DisableResult:
    """Put back what :func:`enable` replaced, then delete the backup record.

    A key qcc set is restored to its value from before (or removed if it was absent), unless
    it was changed by hand since: then it is left as it is and a note says so. ``"env"`` goes
    away if qcc created it and it is empty; the file goes away if qcc created it and nothing
    is left. The file recorded by ``enable`` is the one restored, whatever ``settings`` says.
    """
    with locked(backup, lock_timeout):
        return _disable(settings, backup)


def _disable(settings: Path, backup: Path) -> DisableResult:
    record = load_record(backup)
    if record is None:
        raise NotEnabledError("qcc claude enable was not run (no backup found); nothing to restore")
    path = record.settings_path
    notes: list[str] = []
    if not _same_file(path, settings):
        notes.append(f"restored {shown(path)}, the file enable changed (not {shown(settings)})")
    raw = read_file(path)
    if raw is None:
        notes.append(f"{shown(path)} no longer exists; nothing to restore")
        backup.unlink()
        return DisableResult(path, (), deleted=False, notes=tuple(notes))
    data = _parse(raw, path)
    env: dict[str, Any] | None = data.get("env")
    changes: list[Change] = []
    for key, before in record.previous.items():
        now = env.get(key) if env is not None else None
        if key not in record.applied or _digest(now) != record.applied[key]:
            state = "removed" if env is None or key not in env else "changed"
            notes.append(f"{key} was {state} by hand since enable; left as it is")
            continue
        assert env is not None  # the key qcc wrote is still there
        if before is None:
            del env[key]
            changes.append(Change(key, "removed"))
        else:
            env[key] = before
            changes.append(Change(key, "restored", display_value(key, before)))
    modified = bool(changes)
    if env is not None and not env and not record.env_existed:
        del data["env"]
        modified = True

    deleted = False
    if not record.existed and not data:
        try:
            path.unlink()
        except OSError as exc:
            raise ClaudeSettingsError(
                f"cannot remove {shown(path)} ({exc.strerror or exc}); nothing was restored"
            ) from None
        deleted = True
        if not record.dir_existed:
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only if empty: Claude Code may have put files there
    elif modified:
        _write_settings(path, _restored_bytes(data, raw, record, copy_path_for(backup)))
    backup.unlink()
    return DisableResult(path, tuple(changes), deleted=deleted, notes=tuple(notes))


def _restored_bytes(
    data: dict[str, Any], current: bytes, record: BackupRecord, copy: Path
) -> bytes:
    """The original bytes when ``data`` is the original content, else ``data`` as JSON."""
    original = read_file(copy) if record.original_sha256 else None
    if original is not None and hashlib.sha256(original).hexdigest() == record.original_sha256:
        with contextlib.suppress(ClaudeSettingsError):  # it parsed when enable read it
            if _same(_parse(original, copy), data):
                return original
    return _render(data, current)
