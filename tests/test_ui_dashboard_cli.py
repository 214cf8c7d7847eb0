"""``qcc dashboard``: prints the running proxy's /ui/ URL and opens it in the browser."""

from __future__ import annotations

import os
import time
from pathlib import Path

from e2e import qcc

from qcc.proxy.record import ProxyRecord


def _env(tmp_path: Path, browser: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)  # no graphical browser is found by accident
    env["BROWSER"] = browser
    return env


def _record() -> str:
    url = "http://127.0.0.1:47861"
    ProxyRecord(
        os.getpid(), url, "127.0.0.1", 47861, "prod", "/x/config.toml", None, time.time()
    ).save()
    return url


def test_dashboard_opens_the_url_in_the_browser(tmp_path: Path) -> None:
    url = _record()
    seen = tmp_path / "opened"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf %s "$1" > {seen}\n')
    script.chmod(0o755)
    result = qcc("dashboard", env=_env(tmp_path, str(script)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{url}/ui/\n"
    assert seen.read_text() == f"{url}/ui/"


def test_dashboard_without_a_browser_prints_only_the_url(tmp_path: Path) -> None:
    url = _record()
    result = qcc("dashboard", env=_env(tmp_path, "false"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{url}/ui/\n"
    assert result.stderr == ""


def test_dashboard_without_a_proxy_is_one_line(tmp_path: Path) -> None:
    result = qcc("dashboard", env=_env(tmp_path, "false"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("qcc: ") and len(result.stderr.splitlines()) == 1
    assert "qcc proxy start" in result.stderr
