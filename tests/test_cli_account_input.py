"""``qcc account add`` with input a new user gets wrong: one located line, never the secret."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qcc.config.store import ConfigStore

RunCli = Callable[..., Any]

KEY = "sk-ant-api03-PASTEDPASTEDPASTED-a1b2"
URL = "https://api.anthropic.com"
BASE = '[clusters.prod]\nstrategy = "weighted"\n'
CR_HINT = "ends with a carriage return — was it read from a file with Windows line endings?"


@pytest.fixture(autouse=True)
def base(config_path: Path) -> None:
    config_path.write_text(BASE)
    config_path.chmod(0o600)


def _add(*extra: str, url: str = URL, name: str = "relay") -> list[str]:
    return ["account", "add", name, "--cluster", "prod", "--base-url", url, *extra]


def _undecodable(text: bytes) -> str:
    """What Python puts in argv for bytes that are not UTF-8."""
    return os.fsdecode(text)


BAD = [
    # a key pasted where a variable name goes
    pytest.param(
        _add("--api-key-env", KEY),
        "--api-key-env: that looks like a key, not a variable name; pass the variable's name, "
        "e.g. ANTHROPIC_API_KEY, or use --api-key",
        id="key-in-api-key-env",
    ),
    pytest.param(
        _add("--auth-token-env", "abcdefghijklmnopqrstuvwxyz0123456789ABCD/+="),
        "--auth-token-env: that looks like a key, not a variable name; pass the variable's "
        "name, e.g. ANTHROPIC_API_KEY, or use --auth-token",
        id="token-in-auth-token-env",
    ),
    pytest.param(
        _add("--api-key-env", "sk_live_abcdefghijklmnopqrstuvwxyz0123"),
        "--api-key-env: that looks like a key, not a variable name",
        id="key-shaped-valid-name-that-is-unset",
    ),
    pytest.param(_add("--api-key-env", "K", name=KEY), "NAME: that looks like a key", id="name"),
    # inline credentials that cannot be a header value
    pytest.param(_add("--api-key", KEY + "\r"), f"--api-key: {CR_HINT}", id="cr"),
    pytest.param(_add("--auth-token", KEY + "\r\n"), f"--auth-token: {CR_HINT}", id="crlf"),
    pytest.param(
        _add("--api-key", KEY[:9] + "\nX: y" + KEY[9:]),
        "--api-key: contains a control character",
        id="lf-inside",
    ),
    pytest.param(
        _add("--api-key", KEY[:9] + "\x00" + KEY[9:]),
        "--api-key: contains a control character",
        id="nul",
    ),
    pytest.param(
        _add("--api-key", KEY[:9] + "\u2014" + KEY[9:]),
        "--api-key: contains a non-ASCII character",
        id="em-dash",
    ),
    pytest.param(
        _add("--api-key", _undecodable(b"sk-ant-api03-PASTEDPASTED\xff\xfePASTED")),
        "--api-key: is not valid UTF-8 text",
        id="not-utf8-key",
    ),
    pytest.param(
        _add("--api-key-env", "K", url=_undecodable(b"https://r\xe9lay.example.com")),
        "--base-url: is not valid UTF-8 text",
        id="not-utf8-url",
    ),
    pytest.param(
        _add("--api-key-env", "K", "--model", _undecodable(b"a\xff=b")),
        "--model: is not valid UTF-8 text",
        id="not-utf8-model",
    ),
    pytest.param(
        _add("--api-key-env", "K", "--model", KEY),
        "--model: expected FROM=TO such as claude-sonnet-4-5=claude-sonnet-4-5-20250929, "
        "got a value that looks like a key (not shown)",
        id="key-in-model",
    ),
    # base URLs
    pytest.param(
        _add("--api-key-env", "K", url="https://api.anthropic.com/v1"),
        "--base-url: drop the trailing /v1: qcc adds the request path, which starts with /v1",
        id="v1",
    ),
    pytest.param(
        _add("--api-key-env", "K", url="https://relay.example.com/anthropic/v1/"),
        "--base-url: drop the trailing /v1",
        id="v1-slash",
    ),
    pytest.param(
        _add("--api-key-env", "K", url="https://relay.example.com:99999"),
        "--base-url: the port must be a number from 1 to 65535",
        id="port-high",
    ),
    pytest.param(
        _add("--api-key-env", "K", url="https://relay.example.com:0"),
        "--base-url: the port must be a number from 1 to 65535",
        id="port-zero",
    ),
    pytest.param(
        _add("--api-key-env", "K", url=f"https://user:{KEY}@relay.example.com"),
        "--base-url: must not contain a user name or password; credentials go in api_key or "
        "auth_token",
        id="userinfo",
    ),
    pytest.param(
        _add("--api-key-env", "K", url="https://relay.exa\nmple.com"),
        "--base-url: must not contain spaces, control characters",
        id="newline-in-url",
    ),
    pytest.param(
        _add("--api-key-env", "K", url="http://[::1"),
        "--base-url: must be an http(s) URL",
        id="bad-ipv6",
    ),
]


@pytest.mark.parametrize(("args", "expected"), BAD)
def test_bad_input_is_one_located_line_without_the_secret(
    cli_error: RunCli, args: list[str], expected: str
) -> None:
    result = cli_error(*args, words=[expected])
    assert result.stderr.startswith(f"qcc: error: {expected}")
    assert "PASTED" not in result.stdout + result.stderr
    assert "internal error" not in result.stderr


def test_a_key_shaped_name_that_is_set_is_a_variable_name(
    run_cli: RunCli, config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "sk_live_abcdefghijklmnopqrstuvwxyz0123"
    monkeypatch.setenv(name, "sk-ant-api03-VALUEVALUE-0000")
    result = run_cli(*_add("--api-key-env", name))
    assert (result.exit_code, result.stdout) == (0, "")
    assert "warning" not in result.stderr


def test_unset_env_variable_warns_but_adds(
    run_cli: RunCli, config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QCC_UNSET_KEY", raising=False)
    result = run_cli(*_add("--api-key-env", "QCC_UNSET_KEY"))
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr_lines == [
        "Added account 'relay' to cluster 'prod' (api_key_env $QCC_UNSET_KEY).",
        "warning: QCC_UNSET_KEY is not set in this shell; the proxy reads it when it starts",
    ]
    account = ConfigStore(config_path).load().cluster("prod").account("relay")
    assert account.credential.value == "QCC_UNSET_KEY"


def test_env_variable_with_a_bad_value_warns_without_it(
    run_cli: RunCli, config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QCC_CRLF_KEY", KEY + "\r")
    result = run_cli(*_add("--auth-token-env", "QCC_CRLF_KEY"))
    assert result.exit_code == 0
    assert result.stderr_lines[1] == (
        f"warning: credential from $QCC_CRLF_KEY {CR_HINT} remove the trailing \\r; "
        "the proxy will refuse it"
    )
    assert "PASTED" not in result.stderr


def test_set_env_variable_does_not_warn(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCC_GOOD_KEY", KEY)
    result = run_cli(*_add("--api-key-env", "QCC_GOOD_KEY"))
    assert result.exit_code == 0
    assert len(result.stderr_lines) == 1 and "warning" not in result.stderr


def test_prompted_key_is_checked_too(cli_error: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    monkeypatch.setattr("qcc.cli.render.stdin_is_tty", lambda: True)
    monkeypatch.setattr(typer, "prompt", lambda *a, **k: KEY + "\r")
    result = cli_error(*_add(), words=[CR_HINT])
    assert "PASTED" not in result.stderr


def test_usage_errors_never_print_a_key(cli_error: RunCli) -> None:
    """Click's own messages quote what was typed; the key shape is masked before printing."""
    args = _add("--api-key-env", "K")
    result = cli_error(*args, KEY, words=["Got unexpected extra argument"])
    assert "PASTED" not in result.stderr
