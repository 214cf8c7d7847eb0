"""Which event loop the proxy runs on, and where it says so (issue 13)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from e2e import env_for, free_port, qcc, running_proxy, write_config

from qcc import __version__
from qcc.errors import ProxyError
from qcc.proxy import loops, server

uvloop = pytest.importorskip("uvloop") if sys.platform != "win32" else None


def test_uvloop_by_default_where_installed() -> None:
    assert loops.factory({}) is not None
    assert loops.factory({"QCC_LOOP": "auto"}) is not None
    assert loops.describe({}).startswith("uvloop 0.")


def test_qcc_loop_asyncio_forces_the_stock_loop() -> None:
    assert loops.factory({"QCC_LOOP": "asyncio"}) is None
    assert loops.factory({"QCC_LOOP": " AsyncIO "}) is None
    assert loops.describe({"QCC_LOOP": "asyncio"}) == "asyncio"


def test_windows_keeps_asyncio() -> None:
    assert loops.factory({}, platform="win32") is None


def test_unknown_qcc_loop_is_one_line_error() -> None:
    with pytest.raises(ProxyError, match=r"^QCC_LOOP='trio' is not a loop qcc knows; use asyncio"):
        loops.factory({"QCC_LOOP": "trio"})


@pytest.mark.parametrize(
    ("env", "expected"), [({}, "uvloop"), ({"QCC_LOOP": "asyncio"}, "asyncio")]
)
def test_run_uses_the_chosen_loop(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    monkeypatch.delenv("QCC_LOOP", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    seen: list[str] = []

    async def main() -> None:
        seen.append(loops.running())

    server.run(main)
    assert seen == [expected]


def test_version_names_python_and_loop() -> None:
    result = qcc("--version")
    assert result.returncode == 0
    assert re.fullmatch(
        rf"qcc {__version__} \(Python 3\.\d+\.\d+, uvloop 0\.\d+\.\d+\)\n", result.stdout
    )
    forced = qcc("--version", env=os.environ | {"QCC_LOOP": "asyncio"})
    assert re.fullmatch(rf"qcc {__version__} \(Python 3\.\d+\.\d+, asyncio\)\n", forced.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("forced", ["", "asyncio"])
def test_banner_stats_and_status_name_the_loop(tmp_path: Path, forced: str) -> None:
    env = env_for(tmp_path)
    env["QCC_LOOP"] = forced
    port = free_port()
    account = {"base_url": "http://127.0.0.1:9", "api_key": "sk-ant-api03-LOOPTESTLOOPTEST-zz"}
    write_config(
        tmp_path / "config",
        {
            "default_cluster": "prod",
            "proxy": {"port": port},
            "clusters": {"prod": {"accounts": {"main": account}}},
        },
    )
    expected = forced or "uvloop"
    with running_proxy(env) as (process, _):
        assert process.stdout is not None
        status = qcc("proxy", "status", env=env)
        as_json = qcc("proxy", "status", "--json", env=env)
    assert f"  loop      {expected}\n" in status.stdout
    assert f'"loop": "{expected}"' in as_json.stdout
