"""``qcc cluster ...`` and the root command (global options, one-line errors), in-process."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from qcc import __version__
from qcc.config.store import ConfigStore

RunCli = Callable[..., Any]  # the run_cli / cli_error fixtures of conftest.py


TWO_CLUSTERS = """\
default_cluster = "prod"

[clusters.prod]
strategy = "weighted"
sticky = true

[clusters.prod.accounts.main]
base_url = "https://a.example.com"
api_key_env = "KEY"

[clusters.prod.accounts.spare]
base_url = "https://a.example.com"
api_key_env = "KEY"
enabled = false

[clusters.cheap]
strategy = "priority"
sticky = false
"""


@pytest.fixture
def two_clusters(config_path: Path) -> None:
    config_path.write_text(TWO_CLUSTERS)
    config_path.chmod(0o600)


# --- root command -----------------------------------------------------------------------------


def test_version(run_cli: RunCli) -> None:
    result = run_cli("--version")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith(f"qcc {__version__} (Python ")


def test_no_arguments_prints_help(run_cli: RunCli) -> None:
    result = run_cli()
    assert result.exit_code == 0
    assert "Usage: qcc" in result.stdout
    assert "cluster" in result.stdout and "account" in result.stdout
    assert "QCC_CONFIG_DIR" in result.stdout


def test_group_without_command_prints_its_help(run_cli: RunCli) -> None:
    result = run_cli("cluster")
    assert result.exit_code == 0
    assert "Usage: qcc cluster" in result.stdout


@pytest.mark.parametrize("command", ["add", "list", "show", "remove", "default"])
def test_help_has_an_example(run_cli: RunCli, command: str) -> None:
    result = run_cli("cluster", command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    assert f"qcc cluster {command}" in result.stdout
    assert "QCC_CONFIG_DIR" in result.stdout


def test_config_dir_option_wins_over_env(
    run_cli: RunCli, tmp_path: Path, config_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    assert run_cli("--config-dir", str(other), "cluster", "add", "prod").exit_code == 0
    assert (other / "config.toml").exists()
    assert not config_path.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["frobnicate"], ["No such command 'frobnicate'", "see 'qcc --help'"]),
        (["cluster", "add"], ["Missing argument 'NAME'", "see 'qcc cluster add --help'"]),
        (["cluster", "list", "--colour"], ["No such option", "--colour"]),
        (["cluster", "add", "x", "--strategy"], ["--strategy", "requires an argument"]),
    ],
    ids=["unknown-command", "missing-argument", "unknown-option", "option-without-value"],
)
def test_usage_errors_are_one_line(cli_error: RunCli, args: list[str], words: list[str]) -> None:
    assert cli_error(*args, words=["qcc: error:", *words]).exit_code == 2


def test_unexpected_exception_is_one_line(
    cli_error: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: ConfigStore) -> None:
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(ConfigStore, "load", boom)
    result = cli_error(
        "cluster", "list", words=["qcc: internal error: ValueError: boom second line"]
    )
    assert result.exit_code == 70


def test_ctrl_c_is_one_line(cli_error: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: ConfigStore) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ConfigStore, "load", interrupted)
    assert cli_error("cluster", "list", words=["qcc: interrupted"]).exit_code == 130


# --- happy paths ------------------------------------------------------------------------------


def test_add_first_cluster_becomes_default(run_cli: RunCli, config_path: Path) -> None:
    result = run_cli("cluster", "add", "prod")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "Added cluster 'prod'" in result.stderr and "default" in result.stderr
    result = run_cli("cluster", "add", "cheap", "-s", "round-robin", "--no-sticky")
    assert result.exit_code == 0
    assert "default" not in result.stderr
    config = ConfigStore(config_path).load()
    assert config.default_cluster == "prod"
    cheap = config.cluster("cheap")
    assert (cheap.strategy, cheap.sticky) == ("round-robin", False)


@pytest.mark.usefixtures("two_clusters")
def test_list_table(run_cli: RunCli) -> None:
    result = run_cli("cluster", "list")
    assert result.exit_code == 0
    assert result.stderr == ""
    prod = next(line for line in result.stdout.splitlines() if " prod " in line)
    cheap = next(line for line in result.stdout.splitlines() if " cheap " in line)
    assert "*" in prod and "weighted" in prod and "yes" in prod and "1/2 enabled" in prod
    assert "*" not in cheap and "priority" in cheap and "no" in cheap and "0/0" in cheap


@pytest.mark.usefixtures("two_clusters")
def test_list_json(run_cli: RunCli) -> None:
    result = run_cli("cluster", "list", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.json() == {
        "default_cluster": "prod",
        "clusters": [
            {
                "name": "prod",
                "strategy": "weighted",
                "sticky": True,
                "default": True,
                "accounts": {"total": 2, "enabled": 1},
            },
            {
                "name": "cheap",
                "strategy": "priority",
                "sticky": False,
                "default": False,
                "accounts": {"total": 0, "enabled": 0},
            },
        ],
    }


def test_list_empty(run_cli: RunCli) -> None:
    result = run_cli("cluster", "list")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "qcc cluster add NAME" in result.stderr
    assert run_cli("cluster", "list", "--json").json() == {"default_cluster": None, "clusters": []}


@pytest.mark.usefixtures("two_clusters")
def test_show(run_cli: RunCli) -> None:
    result = run_cli("cluster", "show", "prod")
    assert (result.exit_code, result.stderr) == (0, "")
    assert "cluster prod (default)" in result.stdout
    assert "strategy: weighted, sticky: yes" in result.stdout
    assert "main" in result.stdout and "spare" in result.stdout and "$KEY" in result.stdout
    data = run_cli("cluster", "show", "prod", "--json").json()
    assert (data["name"], data["default"]) == ("prod", True)
    assert [a["name"] for a in data["accounts"]] == ["main", "spare"]
    assert data["accounts"][1]["enabled"] is False
    assert data["accounts"][0]["credential"] == {
        "kind": "api_key_env",
        "value": "$KEY",
        "source": "env:KEY",
    }


@pytest.mark.usefixtures("two_clusters")
def test_show_empty_cluster(run_cli: RunCli) -> None:
    result = run_cli("cluster", "show", "cheap")
    assert result.exit_code == 0
    assert "cluster cheap" in result.stdout and "(default)" not in result.stdout
    assert "qcc account add" in result.stderr
    assert run_cli("cluster", "show", "cheap", "--json").json()["accounts"] == []


@pytest.mark.usefixtures("two_clusters")
def test_default(run_cli: RunCli, config_path: Path) -> None:
    result = run_cli("cluster", "default", "cheap")
    assert result.exit_code == 0
    assert "'cheap'" in result.stderr
    assert ConfigStore(config_path).load().default_cluster == "cheap"


@pytest.mark.usefixtures("two_clusters")
def test_remove_without_terminal_does_not_ask(run_cli: RunCli, config_path: Path) -> None:
    result = run_cli("cluster", "remove", "prod")
    assert result.exit_code == 0
    assert "Removed cluster 'prod' and its 2 account(s)" in result.stderr
    assert "no default cluster now" in result.stderr
    config = ConfigStore(config_path).load()
    assert list(config.clusters) == ["cheap"]
    assert config.default_cluster is None


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qcc.cli.render.stdin_is_tty", lambda: True)


@pytest.mark.usefixtures("two_clusters", "terminal")
@pytest.mark.parametrize(("answer", "removed"), [("y\n", True), ("n\n", False), ("\n", False)])
def test_remove_on_terminal_asks(
    run_cli: RunCli, config_path: Path, answer: str, removed: bool
) -> None:
    result = run_cli("cluster", "remove", "prod", input=answer)
    assert "Remove cluster 'prod' and its 2 account(s)?" in result.stderr
    assert result.exit_code == (0 if removed else 1)
    assert ("prod" in ConfigStore(config_path).load().clusters) is not removed


@pytest.mark.usefixtures("two_clusters", "terminal")
def test_remove_yes_and_empty_cluster_do_not_ask(run_cli: RunCli, config_path: Path) -> None:
    result = run_cli("cluster", "remove", "cheap")  # no accounts: nothing to confirm
    assert result.exit_code == 0 and "?" not in result.stderr
    result = run_cli("cluster", "remove", "prod", "-y")
    assert result.exit_code == 0 and "?" not in result.stderr
    assert ConfigStore(config_path).load().clusters == {}


@pytest.mark.usefixtures("two_clusters", "terminal")
def test_ctrl_c_at_the_prompt(
    cli_error: RunCli, monkeypatch: pytest.MonkeyPatch, config_path: Path
) -> None:
    def abort(*args: object, **kwargs: object) -> bool:
        raise typer.Abort()

    monkeypatch.setattr(typer, "confirm", abort)
    assert cli_error("cluster", "remove", "prod", words=["qcc: interrupted"]).exit_code == 130


# --- bad input: one line, non-zero, config untouched -----------------------------------------


@pytest.mark.usefixtures("two_clusters")
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["cluster", "show", "nope"], ["no cluster named 'nope'"]),
        (["cluster", "remove", "nope", "-y"], ["no cluster named 'nope'"]),
        (["cluster", "default", "nope"], ["no cluster named 'nope'"]),
        (["cluster", "add", "prod"], ["cluster 'prod' already exists"]),
        (["cluster", "add", "x", "--strategy", "fastest"], ["--strategy", "'fastest'", "weighted"]),
        (["cluster", "add", "bad name"], ["'bad name' is not a valid name"]),
        (["cluster", "add", "-x"], ["No such option: -x"]),
    ],
    ids=[
        "show-unknown",
        "remove-unknown",
        "default-unknown",
        "duplicate",
        "strategy",
        "name",
        "dash",
    ],
)
def test_bad_input(cli_error: RunCli, args: list[str], words: list[str]) -> None:
    cli_error(*args, words=words)


BROKEN_TOML = 'default_cluster = "prod"\n[clusters.prod\n'
INVALID_CONFIG = '[clusters.prod]\nstrategy = "fastest"\n'
COMMANDS = [
    ["cluster", "list"],
    ["cluster", "list", "--json"],
    ["cluster", "show", "prod"],
    ["cluster", "add", "new"],
    ["cluster", "remove", "prod"],
    ["cluster", "default", "prod"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_broken_toml(cli_error: RunCli, config_path: Path, args: list[str]) -> None:
    config_path.write_text(BROKEN_TOML)
    cli_error(*args, words=[str(config_path), "invalid TOML"])


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_invalid_config(cli_error: RunCli, config_path: Path, args: list[str]) -> None:
    config_path.write_text(INVALID_CONFIG)
    cli_error(*args, words=["clusters.prod.strategy: must be one of"])


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_config_path_is_a_directory(cli_error: RunCli, config_path: Path, args: list[str]) -> None:
    config_path.mkdir()
    cli_error(*args, words=[str(config_path), "cannot read config file"])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_unreadable_config(cli_error: RunCli, config_path: Path, args: list[str]) -> None:
    config_path.write_text("[clusters.prod]\n")
    config_path.chmod(0)
    try:
        cli_error(*args, words=[str(config_path), "cannot read config file", "Permission denied"])
    finally:
        config_path.chmod(0o600)


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_permission_denied(
    cli_error: RunCli, config_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """The chmod test above is skipped as root; simulate EACCES so root runs it too."""
    config_path.write_text("[clusters.prod]\n")
    real_read_text = Path.read_text

    def read_text(self: Path, *a: Any, **kw: Any) -> str:
        if self == config_path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", read_text)
    cli_error(*args, words=[f"{config_path}: cannot read config file (Permission denied)"])
