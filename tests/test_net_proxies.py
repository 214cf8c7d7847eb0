"""Choosing an account's outbound proxy (pure), and the ``proxy``/``ca_file``/``max_connections``
keys in config.toml and ``qcc account add --proxy``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qcc.config.store import ConfigStore, parse
from qcc.errors import ConfigValidationError
from qcc.net.proxies import ProxyURL, bypassed, choose, is_loopback

# ---- parsing and display ---------------------------------------------------------------------


def test_parse_and_mask() -> None:
    proxy = ProxyURL.parse("http://alice:p%40ss@proxy.corp:3128")
    assert (proxy.scheme, proxy.host, proxy.port) == ("http", "proxy.corp", 3128)
    assert (proxy.username, proxy.password) == ("alice", "p@ss")
    assert proxy.masked() == str(proxy) == "http://alice:***@proxy.corp:3128"
    assert "p@ss" not in repr(proxy)
    assert proxy.basic_auth() == "Basic YWxpY2U6cEBzcw=="
    assert ProxyURL.parse("socks5h://[::1]").masked() == "socks5h://[::1]:1080"
    assert ProxyURL.parse("HTTP://h").port == 3128
    assert ProxyURL.parse("socks5://u@h:1").masked() == "socks5://u@h:1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("https://u:secretpw@h:1", "proxy scheme 'https' is not supported"),
        ("proxy.corp:3128", "is not supported; use http://, socks5:// or socks5h://"),
        ("http://u:secretpw@:3128", "proxy URL needs a host"),
        ("http://u:secretpw@h:99999", "proxy port must be a number"),
        ("http://u:secretpw@h:port", "proxy port must be a number"),
        ("http://u:secretpw@h:1/path", "with no path"),
    ],
)
def test_parse_errors_never_show_the_password(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="proxy") as caught:
        ProxyURL.parse(text)
    assert message in str(caught.value)
    assert "secretpw" not in str(caught.value)


# ---- choosing --------------------------------------------------------------------------------

ENV = {"HTTPS_PROXY": "http://env-https:1", "HTTP_PROXY": "http://env-http:2"}


def host_of(setting: str | None, scheme: str, host: str, env: dict[str, str]) -> str | None:
    proxy, _ = choose(setting, scheme, host, env)
    return None if proxy is None else proxy.host


def test_the_account_setting_wins_over_the_environment() -> None:
    assert host_of("socks5://mine:9", "https", "api.example", ENV) == "mine"
    assert host_of("none", "https", "api.example", ENV) is None
    assert host_of(" None ", "https", "api.example", ENV) is None
    # An explicit proxy applies even to loopback (the user asked for it).
    assert host_of("http://mine:9", "http", "127.0.0.1", ENV) == "mine"


def test_environment_by_scheme_lower_case_first_then_all_proxy() -> None:
    assert host_of(None, "https", "api.example", ENV) == "env-https"
    assert host_of(None, "http", "api.example", ENV) == "env-http"
    assert host_of(None, "https", "a.example", {"HTTP_PROXY": "http://x:1"}) is None
    both = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1"}
    assert host_of(None, "https", "a.example", both) == "lower"
    assert host_of(None, "https", "a.example", {"ALL_PROXY": "socks5h://all:1"}) == "all"
    assert host_of(None, "https", "a.example", {}) is None
    bare, _ = choose(None, "https", "a.example", {"https_proxy": " proxy.corp:8080 "})
    assert bare is not None and bare.masked() == "http://proxy.corp:8080"


@pytest.mark.parametrize("host", ["localhost", "api.localhost", "127.0.0.1", "127.9.9.9", "::1"])
def test_loopback_never_goes_through_an_environment_proxy(host: str) -> None:
    assert is_loopback(host)
    assert host_of(None, "https", host, {"ALL_PROXY": "http://p:1"}) is None


def test_a_bad_environment_value_names_the_variable_not_the_password() -> None:
    with pytest.raises(ValueError, match=r"^\$HTTPS_PROXY: proxy scheme 'ftp'") as caught:
        choose(None, "https", "a.example", {"https_proxy": "ftp://u:secretpw@h:1"})
    assert "secretpw" not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "no_proxy", "skip"),
    [
        ("api.example.com", "api.example.com", True),
        ("api.example.com", "example.com", True),
        ("api.example.com", ".example.com", True),
        ("api.example.com", "*.example.com", True),
        ("example.com", ".example.com", True),
        ("badexample.com", "example.com", False),
        ("api.example.com", "other.com, EXAMPLE.COM", True),
        ("api.example.com", "*", True),
        ("api.example.com", "example.com:443", True),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("10.1.2.3", "10.1.2.3", True),
        ("2001:db8::1", "2001:db8::/32", True),
        ("2001:db8::1", "[2001:db8::1]", True),
        ("api.example.com", "10.0.0.0/8", False),
        ("api.example.com", "", False),
        ("api.example.com", " , ", False),
        ("api.example.com", "not/a-cidr", False),
    ],
)
def test_no_proxy_forms(host: str, no_proxy: str, skip: bool) -> None:
    assert bypassed(host, no_proxy) is skip
    env = {"https_proxy": "http://p:1", "no_proxy": no_proxy}
    assert (host_of(None, "https", host, env) is None) is skip


# ---- config.toml and the CLI -----------------------------------------------------------------

ACCOUNT = '[clusters.prod.accounts.main]\nbase_url = "https://api.anthropic.com"\napi_key = "k"\n'
LOC = "clusters.prod.accounts.main"


def test_config_keys_and_defaults() -> None:
    path = Path("/cfg/config.toml")
    account = parse(ACCOUNT, path).cluster("prod").account("main")
    assert (account.proxy, account.ca_file, account.max_connections) == (None, None, 100)
    text = ACCOUNT + 'proxy = "http://u:pw@p:3128"\nca_file = "~/ca.pem"\nmax_connections = 4\n'
    account = parse(text, path).cluster("prod").account("main")
    assert account.proxy == "http://u:pw@p:3128"
    assert account.ca_file == str(Path("~/ca.pem").expanduser())
    assert account.max_connections == 4
    assert "pw" not in repr(account)
    assert parse(ACCOUNT + 'proxy = "NONE"\n', path).cluster("prod").account("main").proxy == (
        "none"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('proxy = "ftp://u:secretpw@p:1"', f"{LOC}.proxy: proxy scheme 'ftp' is not supported"),
        ('proxy = "http://u:secretpw@:1"', f"{LOC}.proxy: proxy URL needs a host"),
        ('proxy = "http://u:secretpw@p:x"', f"{LOC}.proxy: proxy port must be a number"),
        ("proxy = 3128", f"{LOC}.proxy: must be a proxy URL such as"),
        ("max_connections = 0", f"{LOC}.max_connections: must be an integer >= 1"),
        ('ca_file = ""', f"{LOC}.ca_file: must be a non-empty string"),
    ],
)
def test_config_errors_are_located(line: str, message: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        parse(ACCOUNT + line + "\n", Path("/cfg/config.toml"))
    assert str(caught.value).startswith(message)
    assert "secretpw" not in str(caught.value)


CLI_BASE = 'default_cluster = "prod"\n\n[clusters.prod]\nstrategy = "priority"\n'


def test_account_add_proxy(run_cli: Callable[..., object], config_path: Path) -> None:
    config_path.write_text(CLI_BASE)
    url = "https://api.anthropic.com"
    proxy = "socks5h://u:pw@127.0.0.1:1080"
    args = ["account", "add", "a", "-u", url, "--api-key-env", "K", "--proxy", proxy]
    result = run_cli(*args)
    assert getattr(result, "exit_code", None) == 0
    account = ConfigStore(config_path).load().cluster("prod").account("a")
    assert account.proxy == proxy


def test_account_add_bad_proxy(cli_error: Callable[..., object], config_path: Path) -> None:
    config_path.write_text(CLI_BASE)
    url = "https://api.anthropic.com"
    cli_error(
        *["account", "add", "a", "-u", url, "--api-key-env", "K", "--proxy", "ftp://u:pw@h"],
        words=["--proxy: proxy scheme 'ftp' is not supported"],
    )


async def test_the_admin_client_never_sends_loopback_through_a_proxy(
    aiohttp_server: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from aiohttp import web

    from qcc.proxy.record import fetch_json

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    server = await aiohttp_server(app)  # type: ignore[misc]
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("no_proxy", "")
    url = f"http://127.0.0.1:{server.port}/health"
    assert await asyncio.to_thread(fetch_json, url) == (200, {"status": "ok"})
