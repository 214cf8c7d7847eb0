"""Config and CLI for fetched credentials (issue 15): located errors, secrets never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import RunCli

from qcc.config.model import Credential
from qcc.config.store import parse
from qcc.errors import ConfigValidationError, CredentialError

PATH = Path("/cfg/config.toml")
LOC = "clusters.prod.accounts.main"
ACCOUNT = f'[{LOC}]\nbase_url = "https://api.anthropic.com"\n'
OAUTH = f'[{LOC}.oauth]\ntoken_url = "https://sso.example.com/token"\nclient_id = "qcc"\n'
CLIENT_SECRET = "cs-SUPERSECRETCLIENTSECRET-9999"
REFRESH = "rt-SUPERSECRETREFRESHTOKEN-8888"

INVALID = [
    pytest.param(
        ACCOUNT + 'api_key = "k"\napi_key_command = "op read x"\n',
        f"{LOC}: has both api_key and api_key_command; keep exactly one credential",
        id="two-credentials",
    ),
    pytest.param(
        ACCOUNT + 'api_key_command = "echo k"\n' + OAUTH,
        f"{LOC}: has both api_key_command and oauth; keep exactly one credential",
        id="command-and-oauth",
    ),
    pytest.param(
        ACCOUNT + 'api_key_command = ""\n',
        f"{LOC}.api_key_command: must be a non-empty string",
        id="empty-command",
    ),
    pytest.param(
        ACCOUNT + 'api_key_command = "echo k"\ncredential_ttl = 0\n',
        f"{LOC}.credential_ttl: must be a number of seconds > 0",
        id="ttl-zero",
    ),
    pytest.param(
        ACCOUNT + 'api_key = "k"\ncredential_ttl = 60\n',
        f"{LOC}.credential_ttl: applies only to api_key_command or auth_token_command",
        id="ttl-without-command",
    ),
    pytest.param(
        ACCOUNT + f'[{LOC}.oauth]\nclient_id = "qcc"\n',
        f"{LOC}.oauth.token_url: is missing",
        id="oauth-no-url",
    ),
    pytest.param(
        ACCOUNT + OAUTH.replace("https://sso.example.com/token", "sso.example.com"),
        f"{LOC}.oauth.token_url: must be an http(s) URL, e.g. https://sso.example.com/token",
        id="oauth-bad-url",
    ),
    pytest.param(
        ACCOUNT + OAUTH + 'client_secret = "a"\nclient_secret_env = "B"\n',
        f"{LOC}.oauth: has both client_secret and client_secret_env; keep exactly one",
        id="oauth-two-secrets",
    ),
    pytest.param(
        ACCOUNT + OAUTH + 'refresh_token_env = "not a name"\n',
        f"{LOC}.oauth.refresh_token_env: must be the name of an environment variable, "
        "e.g. MY_API_KEY",
        id="oauth-env-name",
    ),
    pytest.param(
        ACCOUNT + OAUTH + 'header = "cookie"\n',
        f"{LOC}.oauth.header: must be one of: authorization, x-api-key",
        id="oauth-header",
    ),
    pytest.param(
        ACCOUNT + OAUTH + 'secret = "x"\n',
        f"{LOC}.oauth.secret: unknown key; expected one of: token_url, client_id, "
        "client_secret, client_secret_env, refresh_token, refresh_token_env, scope, header",
        id="oauth-unknown-key",
    ),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_credential_config_gives_exact_message(text: str, message: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        parse(text, PATH)
    assert str(caught.value) == message


def test_sources_parse_with_their_settings() -> None:
    text = (
        ACCOUNT
        + 'auth_token_command = "pass show anthropic/token"\ncredential_ttl = 60\n'
        + "[clusters.prod.accounts.gw]\nbase_url = 'https://gw.example.com'\n"
        + OAUTH.replace(f"{LOC}.oauth", "clusters.prod.accounts.gw.oauth")
        + f'client_secret = "{CLIENT_SECRET}"\nrefresh_token = "{REFRESH}"\nscope = "llm"\n'
    )
    cluster = parse(text, PATH).cluster("prod")
    main, gw = cluster.account("main").credential, cluster.account("gw").credential
    assert (main.kind, main.ttl, main.source, main.header_name) == (
        "auth_token_command",
        60.0,
        "command",
        "authorization",
    )
    assert main.masked() == "$(pass …)"
    assert gw.source == "oauth" and gw.masked() == "oauth sso.example.com"
    assert gw.oauth is not None and gw.oauth.scope == "llm"
    assert CLIENT_SECRET not in repr(gw) and REFRESH not in repr(gw)
    with pytest.raises(CredentialError, match="fetched when it is used"):
        main.header()


def test_default_ttl_is_five_minutes() -> None:
    credential = parse(ACCOUNT + 'api_key_command = "op read x"\n', PATH)
    assert credential.cluster("prod").account("main").credential.ttl == 300.0


def test_source_names() -> None:
    assert Credential("api_key", "sk-ant-xxxxxxxxxxxxxxxxxxxx").source == "inline"
    assert Credential("auth_token_env", "TOKEN").source == "env:TOKEN"
    assert Credential("api_key_command", "/usr/bin/security find-generic-password -w").masked() == (
        "$(security …)"
    )
    hidden = Credential("api_key_command", "VAULT_TOKEN=hvs.SECRETSECRET vault kv get -field=k x")
    assert hidden.masked() == "$(vault …)"
    assert Credential("api_key_command", "A=1 B=2").masked() == "$(…)"


def test_cli_add_command_and_list_masks_oauth_secrets(run_cli: RunCli, config_path: Path) -> None:
    assert run_cli("cluster", "add", "prod").exit_code == 0
    added = run_cli(
        "account",
        "add",
        "vault",
        "--cluster",
        "prod",
        "--base-url",
        "https://api.anthropic.com",
        "--api-key-command",
        "vault kv get -field=key secret/anthropic",
    )
    assert added.exit_code == 0, added
    assert 'api_key_command = "vault kv get -field=key secret/anthropic"' in config_path.read_text()
    with config_path.open("a") as out:
        out.write(
            "\n[clusters.prod.accounts.gw]\nbase_url = 'https://gw.example.com'\n"
            + OAUTH.replace(f"{LOC}.oauth", "clusters.prod.accounts.gw.oauth")
            + f'client_secret = "{CLIENT_SECRET}"\nrefresh_token = "{REFRESH}"\n'
        )
    listed = run_cli("account", "list", "--json")
    assert listed.exit_code == 0, listed
    credentials = {a["name"]: a["credential"] for a in listed.json()["accounts"]}
    assert credentials["vault"] == {
        "kind": "api_key_command",
        "value": "$(vault …)",
        "source": "command",
    }
    assert credentials["gw"] == {
        "kind": "oauth",
        "value": "oauth sso.example.com",
        "source": "oauth",
    }
    table = run_cli("account", "list")
    for out in (listed.stdout, table.stdout, json.dumps(listed.json())):
        assert CLIENT_SECRET not in out and REFRESH not in out


def test_cli_refuses_two_sources(cli_error: RunCli, run_cli: RunCli) -> None:
    assert run_cli("cluster", "add", "prod").exit_code == 0
    cli_error(
        "account",
        "add",
        "x",
        "--base-url",
        "https://api.anthropic.com",
        "--api-key-env",
        "KEY",
        "--auth-token-command",
        "pass show x",
        words=["--api-key-env and --auth-token-command"],
    )
    cli_error(
        "account",
        "add",
        "x",
        "--base-url",
        "https://api.anthropic.com",
        "--api-key-command",
        "  ",
        words=["--api-key-command: must be a shell command"],
    )


def test_account_show_names_the_source_and_never_a_secret(
    run_cli: RunCli, config_path: Path
) -> None:
    config_path.write_text(
        ACCOUNT.replace("main]", "main]\nauth_token_command = 'pass show x'\ncredential_ttl = 90")
        + "[clusters.prod.accounts.gw]\nbase_url = 'https://gw.example.com'\n"
        + OAUTH.replace(f"{LOC}.oauth", "clusters.prod.accounts.gw.oauth")
        + f'client_secret = "{CLIENT_SECRET}"\nrefresh_token_env = "GW_REFRESH"\nscope = "llm"\n'
    )
    gw = run_cli("account", "show", "gw", "--json")
    assert gw.exit_code == 0, gw
    credential = gw.json()["credential"]
    assert credential["source"] == "oauth"
    assert credential["oauth"] == {
        "token_url": "https://sso.example.com/token",
        "client_id": "qcc",
        "client_secret": "set",
        "refresh_token": "$GW_REFRESH",
        "scope": "llm",
        "header": "authorization",
    }
    assert gw.json()["live"] is None  # no proxy runs
    text = run_cli("account", "show", "gw").stdout
    assert "source    oauth: oauth sso.example.com" in text
    assert CLIENT_SECRET not in gw.stdout + text
    main = run_cli("account", "show", "main").stdout
    assert "source    command: $(pass …)" in main and "ttl       90s" in main
