"""The proxy's edge rules as pure checks: paths, Host/Origin, encoded bodies, the bind rule, and
the event loop's rate-limited report of running out of file descriptors."""

from __future__ import annotations

import asyncio
import errno
import gzip
import json
import logging
import timeit
import zlib

import pytest

from qcc.config.model import Config, ProxySettings
from qcc.config.validate import config_from
from qcc.errors import ConfigValidationError, ProxyError
from qcc.proxy.guard import (
    EdgePolicy,
    Refusal,
    api_target,
    check_bind,
    decoded_view,
    renamed_body,
)
from qcc.proxy.server import LoopErrors

# ---- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/v1/messages", "/v1/messages"),
        ("/v1/messages?beta=true", "/v1/messages?beta=true"),
        ("/v1/models/claude-x%2Bfast?a=%2e%2e", "/v1/models/claude-x%2Bfast?a=%2e%2e"),
        ("/v1/./messages", "/v1/messages"),
        ("/v1/x/../messages", "/v1/messages"),
        ("/v1/x/%2e%2e/messages", "/v1/messages"),
        ("/%76%31/models", "/v1/models"),
        ("/v1/models/.", "/v1/models/"),
        ("/a/../v1/models", "/v1/models"),
        ("/../../v1/models", "/v1/models"),
    ],
)
def test_paths_inside_v1_are_forwarded_normalised(raw: str, expected: str) -> None:
    assert api_target(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "/v1/../admin",
        "/v1/%2e%2e/x",
        "/v1/%2E%2E/%2e%2e/etc/passwd",
        "/v1/..",
        "/v1",
        "/health",
        "/v1x/messages",
        "/v2/messages",
        "/v1/messages/../../admin?x=/v1/",
    ],
)
def test_paths_outside_v1_are_not_forwarded(raw: str) -> None:
    assert api_target(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "http://evil.example/v1/models",
        "*",
        "/v1%2f..%2fadmin",
        "/v1/%2f/../x",
        "/v1/a%5c..%5cb",
        "/v1/a\\..\\b",
        "/v1/a%00b",
        "/v1/a%0d%0aX-Injected:%201",
    ],
)
def test_targets_that_hide_a_separator_are_refused(raw: str) -> None:
    refusal = api_target(raw)
    assert isinstance(refusal, Refusal) and refusal.status == 400


def test_the_usual_path_costs_little() -> None:
    per_call = min(timeit.repeat(lambda: api_target("/v1/messages?beta=true"), number=20000))
    assert per_call / 20000 < 5e-6  # measured ~0.2 us


# ---- Host and Origin ------------------------------------------------------------------------

SOCK = ("127.0.0.1", 43210)


def policy(**proxy: object) -> EdgePolicy:
    settings = config_from({"proxy": proxy}).proxy if proxy else ProxySettings()
    return EdgePolicy(settings, settings.host)


@pytest.mark.parametrize(
    "host", ["127.0.0.1:43210", "localhost:43210", "LOCALHOST:43210", "[::1]:43210", None]
)
def test_own_address_is_accepted(host: str | None) -> None:
    assert policy().host_ok(host, SOCK)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:43210",  # DNS rebinding: the page's own name, resolved to 127.0.0.1
        "127.0.0.1:7860",  # another port than the one the connection arrived on
        "127.0.0.1",
        "localhost.evil.example:43210",
        "",
    ],
)
def test_other_hosts_are_refused(host: str) -> None:
    assert not policy().host_ok(host, SOCK)


def test_allowed_hosts_and_the_arrival_address() -> None:
    p = policy(allowed_hosts=["myhost.lan", "gateway.example:443"])
    assert p.host_ok("myhost.lan:43210", SOCK)
    assert p.host_ok("gateway.example:443", SOCK)
    assert not p.host_ok("gateway.example:43210", SOCK)
    # Bound to 0.0.0.0: a client on the LAN names the address the connection arrived on.
    lan = EdgePolicy(config_from({"proxy": {"access_key": "k" * 20}}).proxy, "0.0.0.0")
    assert lan.host_ok("192.168.1.5:7860", ("192.168.1.5", 7860))
    assert lan.host_ok("[fe80::1]:7860", ("fe80::1", 7860, 0, 2))
    assert not lan.host_ok("192.168.1.6:7860", ("192.168.1.5", 7860))
    port80 = policy()
    assert port80.host_ok("localhost", ("127.0.0.1", 80))


def test_star_switches_the_host_check_off_but_needs_an_access_key() -> None:
    assert policy(allowed_hosts=["*"], access_key="k" * 20).host_ok("anything:1", SOCK)
    with pytest.raises(ConfigValidationError, match=r"proxy.allowed_hosts: .*access_key"):
        policy(allowed_hosts=["*"])


def test_origins() -> None:
    assert policy().origin_ok(None)
    assert not policy().origin_ok("https://evil.example")
    assert not policy().origin_ok("null")
    allowed = policy(allowed_origins=["https://App.example.com/"])
    assert allowed.origin_ok("https://app.example.com")
    assert not allowed.origin_ok("https://app.example.com.evil")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("allowed_hosts", "localhost", "must be a list of strings"),
        ("allowed_hosts", ["http://x"], "proxy.allowed_hosts[0]: 'http://x' is not a host name"),
        ("allowed_origins", ["app.example.com"], "proxy.allowed_origins[0]"),
        ("allowed_origins", ["https://a.example/path"], "is not an origin"),
    ],
)
def test_list_keys_are_validated(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigValidationError) as info:
        config_from({"proxy": {key: value}})
    assert words in str(info.value)


def test_host_check_costs_little() -> None:
    p = policy()
    p.host_ok("127.0.0.1:43210", SOCK)
    per_call = min(timeit.repeat(lambda: p.host_ok("127.0.0.1:43210", SOCK), number=20000))
    assert per_call / 20000 < 5e-6  # measured ~0.15 us


# ---- encoded bodies -------------------------------------------------------------------------

BODY = json.dumps({"model": "claude-a", "stream": True, "messages": []}).encode()
LIMIT = 1 << 20


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b, wbits=-15)),  # raw deflate, as some clients send
        ("identity", lambda b: b),
        ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
    ],
)
def test_readable_encodings_decode(encoding: str, encode: object) -> None:
    assert callable(encode)
    assert decoded_view(encode(BODY), encoding, LIMIT) == BODY


def test_concatenated_gzip_members_decode() -> None:
    assert decoded_view(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", LIMIT) == b"abcd"


@pytest.mark.parametrize(
    ("body", "encoding", "status"),
    [
        (b"not gzip at all", "gzip", 400),
        (gzip.compress(BODY)[:-9], "gzip", 400),  # truncated
        (gzip.compress(BODY) + b"junk", "gzip", 400),
        (b"\x00\x01", "deflate", 400),
        (BODY, "br", 415),
        (BODY, "zstd", 415),
        (BODY, "gzip, compress", 415),
        (gzip.compress(b"x" * (LIMIT + 1)), "gzip", 413),  # a bomb stays bounded
    ],
)
def test_unreadable_bodies_are_refused(body: bytes, encoding: str, status: int) -> None:
    refusal = decoded_view(body, encoding, LIMIT)
    assert isinstance(refusal, Refusal) and refusal.status == status


def test_rename_on_an_encoded_body_re_encodes_it() -> None:
    raw = gzip.compress(BODY)
    headers = {"content-encoding": "gzip"}
    view = decoded_view(raw, "gzip", LIMIT)
    assert isinstance(view, bytes)
    assert renamed_body(raw, view, headers, {"other": "x"}) is raw  # no rename applies
    sent = renamed_body(raw, view, headers, {"claude-a": "claude-a-2025"})
    assert json.loads(gzip.decompress(sent))["model"] == "claude-a-2025"
    assert json.loads(renamed_body(BODY, BODY, {}, {"claude-a": "b"}))["model"] == "b"


# ---- the bind rule --------------------------------------------------------------------------


def test_bind_rule() -> None:
    open_config = Config()
    keyed = config_from({"proxy": {"access_key": "k" * 20}})
    check_bind(open_config, "127.0.0.1")
    check_bind(open_config, "::1", running=True)
    check_bind(keyed, "0.0.0.0", running=True)
    with pytest.raises(ProxyError, match=r"refusing to listen on 0\.0\.0\.0"):
        check_bind(open_config, "0.0.0.0")
    with pytest.raises(ProxyError, match=r"proxy\.access_key: cannot be removed while"):
        check_bind(open_config, "192.168.1.5", running=True)


# ---- running out of file descriptors --------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def emfile_context() -> dict[str, object]:
    return {
        "message": "socket.accept() out of system resource",
        "exception": OSError(errno.EMFILE, "Too many open files"),
    }


def test_out_of_descriptors_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    handler = LoopErrors(interval=60.0, clock=clock)
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.INFO, logger="qcc"):
            for _ in range(500):  # one per failed accept
                handler(loop, emfile_context())
                clock.now += 0.01
            clock.now += 60.0
            handler(loop, emfile_context())
            handler(loop, {"message": "something else", "exception": ValueError("x")})
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "cannot accept connections: Too many open files" in lines[0]
    assert "ulimit -n" in lines[0]
    assert "(499 more since the last report)" in lines[1]
    assert lines[2] == "something else"
