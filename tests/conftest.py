"""Fixtures every test file can use.

* Every test runs with ``QCC_CONFIG_DIR`` and ``QCC_STATE_DIR`` pointing at fresh temp dirs, so
  no test ever reads or writes the real user config (subprocesses inherit them too).
* ``run_cli("cluster", "list", input=...)`` runs the real :func:`qcc.cli.main.main` in-process
  (error handling included) and returns a :class:`CliResult`.
* ``cli_error("account", "add", ..., words=[...])`` runs a command that must fail cleanly: non-zero
  exit, exactly one ``qcc: ...`` line on stderr naming ``words``, no traceback, and the config
  file byte-identical (or still absent).
* ``qcc_bin`` is the ``qcc`` console script of the interpreter running the tests.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as exactly one JSON document (fails on anything else there)."""
        return json.loads(self.stdout)

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


RunCli = Callable[..., CliResult]


@pytest.fixture(autouse=True)
def isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QCC_CONFIG_DIR", str(tmp_path_factory.mktemp("qcc-config")))
    monkeypatch.setenv("QCC_STATE_DIR", str(tmp_path_factory.mktemp("qcc-state")))
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def config_dir(isolated_dirs: None) -> Path:
    return Path(os.environ["QCC_CONFIG_DIR"])


@pytest.fixture
def config_path(config_dir: Path) -> Path:
    return config_dir / "config.toml"


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """Run ``qcc ARGS...`` in-process through the real entry point; stdin is ``input``."""

    from qcc.cli.main import main  # imported here so a broken CLI fails only CLI tests

    def run(*args: str, input: str | None = None) -> CliResult:
        capsys.readouterr()  # drop anything printed before this run
        monkeypatch.setattr(sys, "stdin", io.StringIO(input or ""))
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main() always exits
            raise AssertionError("main() returned instead of exiting")
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def _snapshot(path: Path) -> bytes | str | None:
    if path.is_dir():
        return "<directory>"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except PermissionError:
        return "<unreadable>"


@pytest.fixture
def cli_error(run_cli: RunCli, config_path: Path) -> RunCli:
    """Run a command that must fail with one clean line; returns the result for more checks."""

    def run(*args: str, words: Sequence[str] = (), input: str | None = None) -> CliResult:
        before = _snapshot(config_path)
        result = run_cli(*args, input=input)
        assert result.exit_code != 0, result
        assert len(result.stderr_lines) == 1, result.stderr
        line = result.stderr_lines[0]
        assert line.startswith("qcc: "), line
        assert "Traceback" not in result.stderr + result.stdout
        for word in words:
            assert word in line, (word, line)
        assert result.stdout == "", result.stdout
        assert _snapshot(config_path) == before, "a failed command changed the config file"
        return result

    return run


@pytest.fixture
def qcc_bin() -> Iterator[Path]:
    path = Path(sys.executable).parent / "qcc"
    if not path.exists():  # pragma: no cover - depends on how the package was installed
        pytest.skip(f"no qcc console script next to {sys.executable}; pip install -e . first")
    yield path
