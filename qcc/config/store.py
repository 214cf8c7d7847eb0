"""Reading and writing ``config.toml`` without ever losing or corrupting it.

* Reads validate the whole file (:func:`qcc.config.validate.config_from`).
* Writes hold an inter-process file lock for the whole read-modify-write, so two ``qcc``
  processes never lose each other's updates.
* Writes are atomic: a temp file in the same directory, fsync, ``os.replace``, fsync of the
  directory. A process killed mid-write leaves the old file or the new one, never a mix.
* Edits go through tomlkit, so comments, layout and keys the CLI does not manage survive.
* The file is created with mode 0600 (it holds secrets) in a 0700 directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
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

LOCK_TIMEOUT = 30.0


def parse(text: str, path: Path) -> Config:
    """Parse and validate config text; errors name the file only for TOML syntax problems."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix the file by hand") from None
    return config_from(data)


def atomic_write(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same dir, fsync, rename).

    The file ends up with ``mode`` (0600 by default: most of what qcc writes holds secrets).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(raw)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


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
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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
