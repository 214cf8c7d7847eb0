"""Credentials are header values: refused with a located, value-free error wherever they come from.

Inline keys at ``account add`` and at load, ``*_env`` values when the proxy resolves them (the
account becomes ``auth_failed``, never a 500), and ``qcc health check`` (a result, not a crash).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from proxyharness import MakeHarness, harness_factory

from qcc.config.model import Credential, check_header_value, header_value_problem
from qcc.config.store import parse
from qcc.errors import ConfigValidationError, CredentialError
from qcc.health.state import State

RunCli = Callable[..., Any]

KEY = "sk-ant-api03-HEADERHEADERHEADER-a1b2"
CR_HINT = "ends with a carriage return — was it read from a file with Windows line endings?"
CONTROL = "contains a control character"
BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "x"}],
}

BAD_VALUES = [
    pytest.param(KEY + "\r", CR_HINT, id="trailing-cr"),
    pytest.param(KEY + "\r\n", CR_HINT, id="trailing-crlf"),
    pytest.param(KEY + "\n", "ends with a line break", id="trailing-lf"),
    pytest.param(KEY + " ", "starts or ends with whitespace", id="trailing-space"),
    pytest.param("\t" + KEY, "starts or ends with whitespace", id="leading-tab"),
    pytest.param(KEY[:10] + "\r\nX-Injected: 1" + KEY[10:], CONTROL, id="crlf-inside"),
    pytest.param(KEY[:10] + "\n" + KEY[10:], CONTROL, id="lf-inside"),
    pytest.param(KEY[:10] + "\x00" + KEY[10:], CONTROL, id="nul"),
    pytest.param(KEY[:10] + "\x7f" + KEY[10:], CONTROL, id="del"),
    pytest.param(KEY[:10] + "\x1b" + KEY[10:], CONTROL, id="escape"),
    pytest.param(KEY[:10] + "\u2019" + KEY[10:], "contains a non-ASCII character", id="quote"),
    pytest.param(KEY[:10] + "\u00a0" + KEY[10:], "contains a non-ASCII character", id="nbsp"),
    pytest.param(KEY[:10] + "\udcff" + KEY[10:], "is not valid UTF-8 text", id="not-utf8"),
]


@pytest.mark.parametrize(("value", "problem"), BAD_VALUES)
def test_bad_header_values_are_named_without_the_value(value: str, problem: str) -> None:
    found = header_value_problem(value)
    assert found is not None and found.startswith(problem)
    with pytest.raises(CredentialError) as caught:
        check_header_value(value, "credential from $VAR")
    assert str(caught.value).startswith(f"credential from $VAR {problem}")
    assert "HEADERHEADER" not in str(caught.value)


@pytest.mark.parametrize("value", [KEY, "a\tb", "token.with/odd+chars=", "x"])
def test_good_header_values_pass(value: str) -> None:
    assert header_value_problem(value) is None


# --- at load time: a located config error --------------------------------------------------------


def _toml_string(value: str) -> str:
    escaped = "".join(
        c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else f"\\u{ord(c):04x}" for c in value
    )
    return f'"{escaped}"'


@pytest.mark.parametrize("kind", ["api_key", "auth_token"])
@pytest.mark.parametrize(("value", "problem"), [p for p in BAD_VALUES if p.id not in ("not-utf8",)])
def test_inline_credential_is_a_located_error_at_load(kind: str, value: str, problem: str) -> None:
    text = (
        '[clusters.prod.accounts.main]\nbase_url = "https://api.anthropic.com"\n'
        f"{kind} = {_toml_string(value)}\n"
    )
    with pytest.raises(ConfigValidationError) as caught:
        parse(text, Path("/cfg/config.toml"))
    assert str(caught.value).startswith(f"clusters.prod.accounts.main.{kind}: {problem}")
    assert "HEADERHEADER" not in str(caught.value)


def test_env_name_that_is_a_key_is_not_quoted_at_load() -> None:
    text = (
        '[clusters.prod.accounts.main]\nbase_url = "https://api.anthropic.com"\n'
        f'api_key_env = "{KEY}"\n'
    )
    with pytest.raises(ConfigValidationError) as caught:
        parse(text, Path("/cfg/config.toml"))
    assert str(caught.value) == (
        "clusters.prod.accounts.main.api_key_env: that looks like a key, not a variable name; "
        "put a key in api_key instead"
    )


# --- from the environment: the account is auth_failed with the reason ----------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (KEY + "\r", f"credential from $QCC_TEST_KEY {CR_HINT}"),
        (
            KEY[:10] + "\x00" + KEY[10:],
            "credential from $QCC_TEST_KEY contains a control character",
        ),
        (KEY[:10] + "\r\nX: y" + KEY[10:], f"credential from $QCC_TEST_KEY {CONTROL}"),
    ],
    ids=["trailing-cr", "nul", "crlf-inside"],
)
def test_env_credential_is_refused_by_name(value: str, reason: str) -> None:
    for kind in ("api_key_env", "auth_token_env"):
        with pytest.raises(CredentialError) as caught:
            Credential(kind, "QCC_TEST_KEY").header({"QCC_TEST_KEY": value})
        assert str(caught.value).startswith(reason)
        assert "HEADERHEADER" not in str(caught.value)


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


async def test_proxy_marks_a_bad_env_credential_auth_failed_and_serves_from_another(
    make: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QCC_TEST_KEY", KEY[:10] + "\r\nX-Injected: yes\r\n" + KEY[10:])
    h = await make("bad", "good", accounts={"bad": {"api_key_env": "QCC_TEST_KEY"}})
    bad = h.member("bad")
    assert bad.health.state is State.AUTH_FAILED
    assert bad.health.reason.startswith("credential from $QCC_TEST_KEY contains a control")
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 200
    assert h.upstreams["bad"].requests == []
    stats = await (await h.client.get("/accounts/stats")).text()
    assert "credential from $QCC_TEST_KEY contains a control character" in stats
    assert "HEADERHEADER" not in stats + await resp.text()


async def test_proxy_with_only_a_bad_env_credential_answers_503_not_500(
    make: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QCC_TEST_KEY", KEY + "\r")
    h = await make("only", accounts={"only": {"auth_token_env": "QCC_TEST_KEY"}})
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 503
    body = await resp.json()
    assert body["type"] == "error"
    assert "HEADERHEADER" not in await resp.text()
    assert h.upstreams["only"].requests == []
    assert (await h.client.get("/health")).status == 503


def test_health_check_reports_a_bad_env_credential(
    run_cli: RunCli, config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QCC_TEST_KEY", KEY + "\r")
    config_path.write_text(
        '[clusters.prod.accounts.main]\nbase_url = "http://127.0.0.1:9"\n'
        'api_key_env = "QCC_TEST_KEY"\n'
    )
    result = run_cli("health", "check", "--json")
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    text = result.stdout + result.stderr
    assert "credential from $QCC_TEST_KEY ends with a carriage return" in text
    assert "HEADERHEADER" not in text
