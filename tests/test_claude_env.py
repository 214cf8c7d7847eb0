"""claude_env: the variables that point Claude Code at the proxy, and the shell lines."""

from __future__ import annotations

import pytest

from qcc import claude_env as ce
from qcc.config.model import Config, ProxySettings
from qcc.errors import QccError

ACCESS_KEY = "qcc-access-SECRETSECRETSECRET-9z8y"
ENV = {ce.BASE_URL_KEY: "http://127.0.0.1:7860", ce.TOKEN_KEY: "qcc"}


def config(host: str = "127.0.0.1", port: int = 7860, key: str | None = None) -> Config:
    return Config(proxy=ProxySettings(host=host, port=port, access_key=key))


# --- proxy_env ---------------------------------------------------------------------------------


def test_proxy_env_defaults_to_placeholder_token() -> None:
    assert ce.proxy_env(Config()) == {
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:7860",
        "ANTHROPIC_AUTH_TOKEN": "qcc",
    }


def test_proxy_env_uses_access_key_as_auth_token_never_api_key() -> None:
    env = ce.proxy_env(config(port=9000, key=ACCESS_KEY))
    assert env == {
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9000",
        "ANTHROPIC_AUTH_TOKEN": ACCESS_KEY,
    }
    assert "ANTHROPIC_API_KEY" not in env


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:7860"),
        ("::", "http://[::1]:7860"),
        ("::1", "http://[::1]:7860"),
        ("localhost", "http://localhost:7860"),
        ("192.168.1.5", "http://192.168.1.5:7860"),
    ],
)
def test_proxy_env_url_from_host(host: str, url: str) -> None:
    assert ce.proxy_env(config(host=host))["ANTHROPIC_BASE_URL"] == url


def test_proxy_env_explicit_url() -> None:
    env = ce.proxy_env(Config(), url="http://127.0.0.1:5555/")
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:5555"


def test_display_value_masks_secrets_only() -> None:
    assert ce.display_value(ce.TOKEN_KEY, ACCESS_KEY) == "qcc-acc…9z8y"
    assert ce.display_value(ce.TOKEN_KEY, "qcc") == "qcc"
    assert ce.display_value(ce.BASE_URL_KEY, "http://x:1") == "http://x:1"


# --- shell lines -------------------------------------------------------------------------------


def test_shell_lines_posix() -> None:
    for shell in ("sh", "bash", "zsh"):
        assert ce.shell_lines(ENV, shell) == (
            "export ANTHROPIC_BASE_URL='http://127.0.0.1:7860'\nexport ANTHROPIC_AUTH_TOKEN='qcc'\n"
        )


def test_shell_lines_fish_and_powershell() -> None:
    assert ce.shell_lines(ENV, "fish") == (
        "set -gx ANTHROPIC_BASE_URL 'http://127.0.0.1:7860'\nset -gx ANTHROPIC_AUTH_TOKEN 'qcc'\n"
    )
    assert ce.shell_lines(ENV, "powershell") == (
        '$env:ANTHROPIC_BASE_URL = "http://127.0.0.1:7860"\n$env:ANTHROPIC_AUTH_TOKEN = "qcc"\n'
    )


def test_shell_lines_quote_hostile_values() -> None:
    env = {"K": 'it\'s $HOME `x` "q" \\ ;rm'}
    assert ce.shell_lines(env, "bash") == "export K='it'\"'\"'s $HOME `x` \"q\" \\ ;rm'\n"
    assert ce.shell_lines(env, "fish") == "set -gx K 'it\\'s $HOME `x` \"q\" \\\\ ;rm'\n"
    assert ce.shell_lines(env, "powershell") == '$env:K = "it\'s `$HOME ``x`` `"q`" \\ ;rm"\n'


def test_shell_lines_unknown_shell() -> None:
    with pytest.raises(QccError, match=r"unknown shell 'csh'; use one of sh, bash, zsh"):
        ce.shell_lines(ENV, "csh")


@pytest.mark.parametrize(
    ("shell_var", "expected"),
    [
        ("/bin/bash", "bash"),
        ("/usr/bin/zsh", "zsh"),
        ("/opt/homebrew/bin/fish", "fish"),
        ("/usr/bin/pwsh", "powershell"),
        ("/bin/dash", "sh"),
        ("/bin/tcsh", "sh"),
    ],
)
def test_detect_shell(shell_var: str, expected: str) -> None:
    assert ce.detect_shell({"SHELL": shell_var}) == expected
