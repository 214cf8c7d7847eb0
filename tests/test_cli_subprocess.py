"""The installed ``qcc`` console script and ``python -m qcc``, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qcc import __version__

COMMANDS = [
    [],
    ["cluster"],
    ["cluster", "add"],
    ["cluster", "list"],
    ["cluster", "show"],
    ["cluster", "remove"],
    ["cluster", "default"],
    ["account"],
    ["account", "add"],
    ["account", "list"],
    ["account", "remove"],
    ["account", "enable"],
    ["account", "disable"],
]


def _run(*cmd: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in cmd],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


def test_version(qcc_bin: Path) -> None:
    result = _run(qcc_bin, "--version")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"qcc {__version__} (Python ")


def test_python_dash_m(qcc_bin: Path) -> None:
    result = _run(sys.executable, "-m", "qcc", "--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"qcc {__version__} (Python ")


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "qcc")
def test_help(qcc_bin: Path, command: list[str]) -> None:
    result = _run(qcc_bin, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"Usage: {' '.join(['qcc', *command])} ")
    if len(command) != 1:  # groups list their commands; the root and the commands show examples
        assert "Example:" in result.stdout
        assert "QCC_CONFIG_DIR" in result.stdout


@pytest.mark.slow
def test_add_list_remove_flow(qcc_bin: Path, tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    qcc = [qcc_bin, "--config-dir", config_dir]
    secret = "sk-ant-api03-SECRETSECRETSECRET-a1b2"
    steps = [
        ["cluster", "add", "prod", "--strategy", "priority"],
        ["account", "add", "main", "--cluster", "prod", "--base-url", "https://api.anthropic.com",
         "--api-key", secret, "--weight", "3"],
        ["account", "add", "relay", "--cluster", "prod", "--base-url", "https://relay.example.com",
         "--auth-token-env", "RELAY_TOKEN", "--model", "claude-sonnet-4-5=sonnet"],
        ["account", "disable", "relay", "--cluster", "prod"],
    ]  # fmt: skip
    for step in steps:
        result = _run(*qcc, *step)
        assert result.returncode == 0, result.stderr
        assert secret not in result.stdout + result.stderr
    assert (config_dir / "config.toml").stat().st_mode & 0o777 == 0o600

    listed = _run(*qcc, "account", "list", "--json")
    assert (listed.returncode, listed.stderr) == (0, "")
    accounts = json.loads(listed.stdout)["accounts"]
    assert [(a["name"], a["enabled"]) for a in accounts] == [("main", True), ("relay", False)]
    assert accounts[0]["credential"]["value"] == "sk-ant-…a1b2"
    table = _run(*qcc, "account", "list")
    assert "sk-ant-…a1b2" in table.stdout and secret not in table.stdout

    assert _run(*qcc, "account", "remove", "relay", "--cluster", "prod").returncode == 0
    assert _run(*qcc, "cluster", "remove", "prod").returncode == 0  # stdin is not a terminal
    assert json.loads(_run(*qcc, "cluster", "list", "--json").stdout)["clusters"] == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["cluster", "show", "nope"], "no cluster named 'nope'"),
        (["account", "add", "x", "--base-url", "https://a.b"], "no cluster is configured"),
        (["account", "list", "--bogus"], "No such option: --bogus"),
    ],
)
def test_error_is_one_line_without_traceback(
    qcc_bin: Path, config_path: Path, args: list[str], words: str
) -> None:
    result = _run(qcc_bin, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("qcc: error: ")
    assert words in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert not config_path.exists()


def test_missing_credential_without_terminal(qcc_bin: Path, config_path: Path) -> None:
    config_path.write_text("[clusters.prod]\n")
    result = _run(qcc_bin, "account", "add", "x", "-c", "prod", "-u", "https://a.b", stdin="")
    assert result.returncode == 2
    assert result.stderr == (
        "qcc: error: account 'x' needs a credential: pass one of --api-key, --auth-token, "
        "--api-key-env or --auth-token-env\n"
    )
    assert config_path.read_text() == "[clusters.prod]\n"
