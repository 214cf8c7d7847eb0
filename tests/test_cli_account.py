"""``qcc account ...`` in-process: happy paths, the bad-input table, and secrets never shown."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from qcc.config.model import Credential
from qcc.config.store import ConfigStore

RunCli = Callable[..., Any]  # the run_cli / cli_error fixtures of conftest.py

SECRET = "sk-ant-api03-SECRETSECRETSECRET-a1b2"
MASKED = "sk-ant-…a1b2"
URL = "https://api.anthropic.com"

BASE = """\
default_cluster = "prod"

[clusters.prod]
strategy = "weighted"

[clusters.prod.accounts.main]
base_url = "https://api.anthropic.com"
api_key = "sk-ant-api03-SECRETSECRETSECRET-a1b2"
weight = 3

[clusters.cheap]
strategy = "priority"
"""


@pytest.fixture
def base(config_path: Path) -> None:
    config_path.write_text(BASE)
    config_path.chmod(0o600)


def _add(*extra: str) -> list[str]:
    return ["account", "add", "relay", "--cluster", "prod", "--base-url", URL, *extra]


def _account(config_path: Path, name: str, cluster: str = "prod") -> Any:
    return ConfigStore(config_path).load().cluster(cluster).account(name)


# --- happy paths ------------------------------------------------------------------------------


@pytest.mark.usefixtures("base")
@pytest.mark.parametrize(
    ("option", "kind", "value"),
    [
        ("--api-key", "api_key", "sk-ant-api03-OTHEROTHER-9999"),
        ("--auth-token", "auth_token", "token-abcdefghijklmnop"),
        ("--api-key-env", "api_key_env", "RELAY_KEY"),
        ("--auth-token-env", "auth_token_env", "RELAY_TOKEN"),
    ],
)
def test_add_each_credential_kind(
    run_cli: RunCli,
    config_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    kind: str,
    value: str,
) -> None:
    monkeypatch.setenv("RELAY_KEY", "sk-ant-api03-FROMENVFROMENV-5555")
    monkeypatch.setenv("RELAY_TOKEN", "token-from-env-abcdefgh")
    result = run_cli(*_add(option, value))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    masked = Credential(kind, value).masked()
    assert result.stderr == f"Added account 'relay' to cluster 'prod' ({kind} {masked}).\n"
    account = _account(config_path, "relay")
    assert account.credential == Credential(kind, value)
    assert (account.weight, account.priority, account.enabled) == (1, 0, True)


@pytest.mark.usefixtures("base")
def test_add_with_all_options(run_cli: RunCli, config_path: Path) -> None:
    args = _add("--api-key-env", "K", "--weight", "0", "-p", "2", "-m", "a=b", "--model", "c = d")
    assert run_cli(*args).exit_code == 0
    account = _account(config_path, "relay")
    assert (account.weight, account.priority) == (0, 2)
    assert dict(account.models) == {"a": "b", "c": "d"}


@pytest.mark.usefixtures("base")
def test_add_uses_the_default_cluster(run_cli: RunCli, config_path: Path) -> None:
    result = run_cli("account", "add", "relay", "--base-url", URL, "--api-key-env", "K")
    assert result.exit_code == 0
    assert _account(config_path, "relay", "prod")


@pytest.mark.usefixtures("base")
def test_add_prompts_for_a_hidden_key_on_a_terminal(
    run_cli: RunCli, config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, bool]] = []

    def fake_prompt(text: str, hide_input: bool = False, **_: object) -> str:
        asked.append((text, hide_input))
        return "sk-ant-api03-TYPEDTYPEDTYPED-7777"

    monkeypatch.setattr("qcc.cli.render.stdin_is_tty", lambda: True)
    monkeypatch.setattr(typer, "prompt", fake_prompt)
    result = run_cli("account", "add", "typed", "--cluster", "cheap", "--base-url", URL)
    assert result.exit_code == 0, result.stderr
    assert asked == [("API key for account 'typed'", True)]
    assert "TYPEDTYPEDTYPED" not in result.stderr + result.stdout
    credential = _account(config_path, "typed", "cheap").credential
    assert credential == Credential("api_key", "sk-ant-api03-TYPEDTYPEDTYPED-7777")


@pytest.mark.usefixtures("base")
def test_list_table(run_cli: RunCli) -> None:
    assert run_cli(*_add("--auth-token-env", "TOK", "-m", "x=y")).exit_code == 0
    result = run_cli("account", "list")
    assert (result.exit_code, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    header = lines[0].split()
    for column in ("cluster", "name", "base_url", "credential", "weight", "priority", "enabled"):
        assert column in header
    main = next(line for line in lines if " main " in line)
    relay = next(line for line in lines if " relay " in line)
    assert "prod" in main and URL in main and MASKED in main and " 3 " in main
    assert "$TOK" in relay and "x→y" in relay and "yes" in relay


@pytest.mark.usefixtures("base")
def test_list_json_and_cluster_filter(run_cli: RunCli) -> None:
    assert run_cli(
        *_add("--api-key-env", "K")[:4], "cheap", "--base-url", URL, "--api-key-env", "K"
    )
    result = run_cli("account", "list", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    accounts = result.json()["accounts"]
    assert [(a["cluster"], a["name"]) for a in accounts] == [("prod", "main"), ("cheap", "relay")]
    assert accounts[0] == {
        "name": "main",
        "cluster": "prod",
        "base_url": URL,
        "credential": {"kind": "api_key", "value": MASKED, "source": "inline"},
        "weight": 3,
        "priority": 0,
        "enabled": True,
        "models": {},
        "probe": "auto",
    }
    only = run_cli("account", "list", "--cluster", "cheap", "--json").json()["accounts"]
    assert [a["name"] for a in only] == ["relay"]


@pytest.mark.usefixtures("base")
def test_list_empty(run_cli: RunCli) -> None:
    result = run_cli("account", "list", "-c", "cheap")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "qcc account add" in result.stderr
    assert run_cli("account", "list", "-c", "cheap", "--json").json() == {"accounts": []}


def test_list_without_config(run_cli: RunCli, config_path: Path) -> None:
    assert run_cli("account", "list", "--json").json() == {"accounts": []}
    assert not config_path.exists()


@pytest.mark.usefixtures("base")
def test_disable_enable_remove(run_cli: RunCli, config_path: Path) -> None:
    result = run_cli("account", "disable", "main", "--cluster", "prod")
    assert (result.exit_code, result.stderr) == (
        0,
        "Account 'main' in cluster 'prod' is disabled.\n",
    )
    assert not _account(config_path, "main").enabled
    assert run_cli("account", "enable", "main").exit_code == 0  # default cluster
    assert _account(config_path, "main").enabled
    result = run_cli("account", "remove", "main", "-c", "prod")
    assert (result.exit_code, result.stderr) == (0, "Removed account 'main' from cluster 'prod'.\n")
    assert ConfigStore(config_path).load().cluster("prod").accounts == ()


@pytest.mark.parametrize("command", ["add", "list", "remove", "enable", "disable"])
def test_help_has_an_example(run_cli: RunCli, command: str) -> None:
    result = run_cli("account", command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    assert f"qcc account {command}" in result.stdout
    assert "QCC_CONFIG_DIR" in result.stdout


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("base")
def test_secret_never_shown(run_cli: RunCli) -> None:
    added = run_cli(*_add("--api-key", "sk-ant-api03-RELAYRELAYRELAY-c3d4"))
    outputs = [added]
    for args in (
        ["account", "list"],
        ["account", "list", "--json"],
        ["account", "list", "--cluster", "prod", "--json"],
        ["cluster", "show", "prod"],
        ["cluster", "show", "prod", "--json"],
        ["cluster", "list"],
        ["cluster", "list", "--json"],
        ["account", "disable", "main"],
        ["account", "add", "main", "--base-url", URL, "--api-key", SECRET],  # duplicate
    ):
        outputs.append(run_cli(*args))
    everything = "".join(r.stdout + r.stderr for r in outputs)
    for secret in (SECRET, "sk-ant-api03-RELAYRELAYRELAY-c3d4", "SECRETSECRET", "RELAYRELAY"):
        assert secret not in everything
    assert MASKED in outputs[1].stdout and MASKED in outputs[2].stdout
    assert "sk-ant-…c3d4" in outputs[1].stdout and "sk-ant-…c3d4" in added.stderr


# --- bad input: one line, non-zero, config untouched -----------------------------------------

NEEDS = "needs a credential: pass one of --api-key, --auth-token, --api-key-env or --auth-token-env"


def _new(name: str = "x", cluster: str = "prod", url: str = URL, *extra: str) -> list[str]:
    return ["account", "add", name, "-c", cluster, "-u", url, *extra]


BAD_INPUT = [
    (_new("x", "nope", URL, "--api-key-env", "K"), ["no cluster named 'nope'"]),
    (["account", "remove", "x", "-c", "prod"], ["no account 'x' in cluster 'prod'"]),
    (["account", "enable", "x", "-c", "prod"], ["no account 'x' in cluster 'prod'"]),
    (["account", "disable", "main", "-c", "nope"], ["no cluster named 'nope'"]),
    (["account", "list", "--cluster", "nope"], ["no cluster named 'nope'"]),
    (
        _new("main", "prod", URL, "--api-key-env", "K"),
        ["account 'main' already exists in cluster 'prod'"],
    ),
    (_new("main"), ["account 'main' already exists in cluster 'prod'"]),
    (_new("x", "prod", "ftp://x", "--api-key-env", "K"), ["--base-url: must be an http(s) URL"]),
    (_new("x", "prod", "not a url", "--api-key-env", "K"), ["--base-url: must be an http(s)"]),
    (_add(), [f"account 'relay' {NEEDS}"]),
    (_add("--api-key", "k1", "--auth-token", "t1"), ["both --api-key and --auth-token"]),
    (
        _add("--api-key-env", "A", "--auth-token-env", "B", "--api-key", "k"),
        ["both --api-key, --api-key-env and --auth-token-env; pass exactly one credential"],
    ),
    (_add("--api-key-env", "1-BAD"), ["--api-key-env: '1-BAD' is not an environment variable"]),
    (_add("--api-key", ""), ["--api-key: must not be empty"]),
    (_add("--api-key", " sk-padded "), ["--api-key: starts or ends with whitespace"]),
    (_add("--api-key-env", "K", "--weight", "-1"), ["--weight: must be an integer >= 0, got -1"]),
    (_add("--api-key-env", "K", "--weight=-1"), ["--weight: must be an integer >= 0, got -1"]),
    (_add("--api-key-env", "K", "-w", "lots"), ["--weight: must be an integer >= 0, got lots"]),
    (_add("--api-key-env", "K", "--priority", "-2"), ["--priority: must be an integer >= 0"]),
    (_add("--api-key-env", "K", "--model", "claude"), ["--model: expected FROM=TO", "'claude'"]),
    (_add("--api-key-env", "K", "--model", "=b"), ["--model: expected FROM=TO"]),
    (_add("--api-key-env", "K", "-m", "a=b", "-m", "a=c"), ["--model: 'a' is renamed twice"]),
    (_new("bad.name", "prod", URL, "--api-key-env", "K"), ["'bad.name' is not a valid name"]),
    (
        ["account", "add", "x", "-c", "prod", "--api-key-env", "K"],
        ["Missing option '--base-url'", "see 'qcc account add --help'"],
    ),
    (_new("x", "prod", URL, "--weight"), ["--weight", "requires an argument"]),
    (["account", "rename", "x"], ["No such command 'rename'"]),
]


@pytest.mark.usefixtures("base")
@pytest.mark.parametrize(("args", "words"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input(cli_error: RunCli, args: list[str], words: list[str]) -> None:
    result = cli_error(*args, words=words)
    assert SECRET not in result.stderr


def test_no_cluster_at_all(cli_error: RunCli) -> None:
    cli_error("account", "add", "x", "-u", URL, "--api-key-env", "K", words=["no cluster is"])
    cli_error("account", "remove", "x", words=["no cluster is configured"])


def test_no_default_cluster(cli_error: RunCli, config_path: Path) -> None:
    config_path.write_text("[clusters.a]\n[clusters.b]\n")
    cli_error("account", "enable", "x", words=["no default cluster; pass --cluster NAME"])


COMMANDS = [
    ["account", "list"],
    ["account", "list", "--json"],
    _add("--api-key-env", "K"),
    ["account", "remove", "main", "-c", "prod"],
    ["account", "enable", "main", "-c", "prod"],
    ["account", "disable", "main", "-c", "prod"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_broken_toml(cli_error: RunCli, config_path: Path, args: list[str]) -> None:
    config_path.write_text(BASE + "[clusters.prod.accounts.x\n")
    cli_error(*args, words=[str(config_path), "invalid TOML"])


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_invalid_config(cli_error: RunCli, config_path: Path, args: list[str]) -> None:
    config_path.write_text(BASE.replace("weight = 3", "weight = -3"))
    cli_error(*args, words=["clusters.prod.accounts.main.weight: must be an integer >= 0"])


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_config_path_is_a_directory(cli_error: RunCli, config_path: Path, args: list[str]) -> None:
    config_path.mkdir()
    cli_error(*args, words=["cannot read config file"])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_unreadable_config(cli_error: RunCli, config_path: Path, args: list[str]) -> None:
    config_path.write_text(BASE)
    config_path.chmod(0)
    try:
        cli_error(*args, words=["cannot read config file", "Permission denied"])
    finally:
        config_path.chmod(0o600)
