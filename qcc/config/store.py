"""Reading and writing ``config.toml`` without ever losing or corrupting it.

* Reads validate the whole file (:func:`qcc.config.validate.config_from`).
* Writes hold an inter-process file lock for the whole read-modify-write, so two ``qcc``
  processes never lose each other's updates.
* Writes are atomic: a temp file in the same directory, fsync, ``os.replace``, fsync of the
  directory. A process killed mid-write leaves the old file or the new one, never a mix, and
  no temp file holding secrets survives it (see :func:`atomic_write`).
* Edits go through tomlkit, so comments, layout and keys the CLI does not manage survive.
* The file is created with mode 0600 (it holds secrets) in a 0700 directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import tomlkit
from filelock import FileLock, Timeout
from tomlkit.exceptions import TOMLKitError
from tomlkit.toml_document import TOMLDocument

from qcc.config.model import Config
from qcc.config.validate import config_from
from qcc.errors import ConfigError
from qcc.paths import private_dir

LOCK_TIMEOUT = 30.0


def parse(text: str, path: Path) -> Config:
    """Parse and validate config text; errors name the file only for TOML syntax problems."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix the file by hand") from None
    return config_from(data)


TMP_STALE_AFTER = 60.0  # seconds: no writer takes this long, so an older temp file is an orphan


def atomic_write(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same dir, fsync, rename).

    The file ends up with ``mode`` (0600 by default: most of what qcc writes holds secrets).
    No temp file outlives a writer that is killed: the data is written to an unnamed file
    (Linux ``O_TMPFILE``) that gets a name only for the instant before the rename; elsewhere,
    and for that instant, temp files carry the writer's pid and the next write removes those
    of dead writers (and any older than ``TMP_STALE_AFTER``).
    """
    private_dir(path.parent)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    _remove_stale_temps(path, time.time())
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY) if _HAS_DIR_FD else None
    try:
        try:
            if not _write_unnamed(path.parent, tmp, raw, mode, dir_fd):
                _write_named(tmp, raw, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if dir_fd is not None:
            os.fsync(dir_fd)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


_HAS_DIR_FD = hasattr(os, "O_DIRECTORY") and os.link in os.supports_dir_fd


def _write_all(fd: int, raw: bytes, mode: int) -> None:
    view = memoryview(raw)
    while view:
        view = view[os.write(fd, view) :]
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
    os.fsync(fd)


def _write_unnamed(directory: Path, tmp: Path, raw: bytes, mode: int, dir_fd: int | None) -> bool:
    """Write into a nameless file (gone if we die) and name it ``tmp`` once complete.

    False where that is unsupported (no ``O_TMPFILE``, no ``/proc``, a filesystem without it),
    before anything is written under a name.
    """
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or dir_fd is None or not os.path.isdir("/proc/self/fd"):
        return False
    try:
        fd = os.open(directory, flag | os.O_WRONLY, mode)
    except OSError:  # EOPNOTSUPP, EISDIR, EINVAL: not on this filesystem
        return False
    try:
        _write_all(fd, raw, mode)
        try:  # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N gives the file a name
            os.link(f"/proc/self/fd/{fd}", tmp.name, dst_dir_fd=dir_fd)
        except OSError:  # e.g. a hardened /proc: fall back to a named temp file
            return False
        return True
    finally:
        os.close(fd)


def _write_named(tmp: Path, raw: bytes, mode: int) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        _write_all(fd, raw, mode)
    finally:
        os.close(fd)
    if not hasattr(os, "fchmod"):  # pragma: no cover - Windows
        os.chmod(tmp, mode)


def _remove_stale_temps(path: Path, now: float) -> None:
    """Delete ``.NAME.*.tmp`` files left by writers of ``path`` that were killed."""
    prefix = f".{path.name}."
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix) : -len(".tmp")].partition(".")[0]
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if age < TMP_STALE_AFTER and not (pid.isdigit() and not _alive(int(pid))):
            continue  # possibly a writer at work right now
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def _alive(pid: int) -> bool:
    if os.name != "posix":  # pragma: no cover - os.kill(pid, 0) terminates on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


class ConfigStore:
    """The one owner of the config file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path.parent / f".{path.name}.lock"), timeout=LOCK_TIMEOUT)

    def read_text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"{self.path}: cannot read config file ({reason})") from None

    def load(self) -> Config:
        """The validated config; an absent file is an empty config."""
        return parse(self.read_text(), self.path)

    @contextlib.contextmanager
    def edit(self) -> Iterator[TOMLDocument]:
        """Lock, yield the document for changes, validate the result, write it atomically.

        If the body raises, or the result does not validate, nothing is written.
        """
        try:
            private_dir(self.path.parent)
            self._lock.acquire()
        except Timeout:
            raise ConfigError(
                f"{self.path}: another qcc process holds the config lock; try again"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{self.path.parent}: cannot write ({exc.strerror})") from None
        try:
            before = self.read_text()
            parse(before, self.path)  # refuse to build on a broken file
            try:
                doc = tomlkit.parse(before)
            except TOMLKitError as exc:  # pragma: no cover - tomllib accepted it
                raise ConfigError(f"{self.path}: invalid TOML ({exc})") from None
            yield doc
            after = tomlkit.dumps(doc)
            if not after.isascii():
                try:
                    after.encode("utf-8")
                except UnicodeEncodeError:  # surrogate-escaped argv that slipped through
                    raise ConfigError(
                        f"{self.path}: a new value is not valid UTF-8 text; nothing was written"
                    ) from None
            parse(after, self.path)
            if after != before or not self.path.exists():
                try:
                    atomic_write(self.path, after)
                except OSError as exc:
                    raise ConfigError(f"{self.path}: cannot write ({exc.strerror})") from None
        finally:
            self._lock.release()
