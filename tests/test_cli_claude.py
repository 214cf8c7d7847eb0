"""``qcc claude env|enable|disable`` through the real entry point, plus one real ``qcc`` process."""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qcc.cli import main

ACCESS_KEY = "qcc-access-SECRETSECRETSECRET-9z8y"
SETTINGS: dict[str, Any] = {
    "model": "opus",
    "env": {"ANTHROPIC_BASE_URL": "https://relay.example", "DISABLE_TELEMETRY": "1"},
    "permissions": {"allow": ["Bash(git diff:*)"], "deny": ["Read(./.env)"]},
    "hooks": {
        "PostToolUse": [
            {"matcher": "Edit|Write", "hooks": [{"type": "command", "command": "ruff format"}]}
        ]
    },
}


@pytest.fixture
def claude_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "claude-config"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(directory))
    return directory


@pytest.fixture
def state_dir() -> Path:
    return Path(os.environ["QCC_STATE_DIR"])


def qcc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main.run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write_config(config_dir: Path, text: str) -> None:
    path = config_dir / "config.toml"
    path.write_text(text)
    path.chmod(0o600)


def write_settings(path: Path, data: Any) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = (json.dumps(data, indent=2) + "\n").encode()
    path.write_bytes(raw)
    return raw


# --- env ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("bash", "export ANTHROPIC_BASE_URL='http://127.0.0.1:7860'\n"
                 "export ANTHROPIC_AUTH_TOKEN='qcc'\n"),
        ("zsh", "export ANTHROPIC_BASE_URL='http://127.0.0.1:7860'\n"
                "export ANTHROPIC_AUTH_TOKEN='qcc'\n"),
        ("sh", "export ANTHROPIC_BASE_URL='http://127.0.0.1:7860'\n"
               "export ANTHROPIC_AUTH_TOKEN='qcc'\n"),
        ("fish", "set -gx ANTHROPIC_BASE_URL 'http://127.0.0.1:7860'\n"
                 "set -gx ANTHROPIC_AUTH_TOKEN 'qcc'\n"),
        ("powershell", '$env:ANTHROPIC_BASE_URL = "http://127.0.0.1:7860"\n'
                       '$env:ANTHROPIC_AUTH_TOKEN = "qcc"\n'),
    ],
)  # fmt: skip
def test_env_per_shell(capsys: pytest.CaptureFixture[str], shell: str, expected: str) -> None:
    code, out, err = qcc(capsys, "claude", "env", "--shell", shell)
    assert (code, out) == (0, expected)
    assert err.startswith("no qcc proxy is running: using proxy.host/proxy.port of "), err


def test_env_default_shell_from_shell_var(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELL", "/usr/local/bin/fish")
    code, out, _ = qcc(capsys, "claude", "env")
    assert code == 0
    assert out.startswith("set -gx ANTHROPIC_BASE_URL 'http://127.0.0.1:7860'\n")


def test_env_uses_config_port_and_access_key(
    capsys: pytest.CaptureFixture[str], config_dir: Path
) -> None:
    write_config(
        config_dir, f'[proxy]\nhost = "0.0.0.0"\nport = 9911\naccess_key = "{ACCESS_KEY}"\n'
    )
    code, out, _ = qcc(capsys, "claude", "env", "--shell", "bash")
    assert (code, out) == (
        0,
        f"export ANTHROPIC_BASE_URL='http://127.0.0.1:9911'\n"
        f"export ANTHROPIC_AUTH_TOKEN='{ACCESS_KEY}'\n",
    )


def test_env_unknown_shell(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = qcc(capsys, "claude", "env", "--shell", "csh")
    assert (code, out) == (2, "")
    assert err == "qcc: error: unknown shell 'csh'; use one of sh, bash, zsh, fish, powershell\n"


def test_env_invalid_config_is_one_line(
    capsys: pytest.CaptureFixture[str], config_dir: Path
) -> None:
    write_config(config_dir, "[proxy\n")
    code, out, err = qcc(capsys, "claude", "env")
    assert code != 0 and out == ""
    assert len(err.splitlines()) == 1 and "invalid TOML" in err


# --- enable / disable --------------------------------------------------------------------------


def test_enable_then_disable_round_trip(
    capsys: pytest.CaptureFixture[str], claude_dir: Path, state_dir: Path, config_dir: Path
) -> None:
    write_config(config_dir, f'[proxy]\nport = 7861\naccess_key = "{ACCESS_KEY}"\n')
    settings = claude_dir / "settings.json"
    original = write_settings(settings, SETTINGS)
    settings.chmod(0o640)

    code, out, err = qcc(capsys, "claude", "enable")
    assert (code, out) == (0, "")
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:7861 (replaced)" in err
    assert "ANTHROPIC_AUTH_TOKEN=qcc-acc…9z8y (added)" in err
    assert ACCESS_KEY not in err
    assert str(state_dir / "claude-settings-backup.json") in err
    assert "qcc claude disable" in err

    data = json.loads(settings.read_text())
    expected = copy.deepcopy(SETTINGS)
    expected["env"]["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:7861"
    expected["env"]["ANTHROPIC_AUTH_TOKEN"] = ACCESS_KEY
    assert data == expected
    assert stat.S_IMODE(settings.stat().st_mode) == 0o640
    assert (state_dir / "claude-settings.json.bak").read_bytes() == original

    code, out, err = qcc(capsys, "claude", "disable")
    assert (code, out) == (0, "")
    assert "restored ANTHROPIC_BASE_URL" in err and "removed ANTHROPIC_AUTH_TOKEN" in err
    assert ACCESS_KEY not in err
    assert settings.read_bytes() == original
    assert stat.S_IMODE(settings.stat().st_mode) == 0o640
    assert not (state_dir / "claude-settings-backup.json").exists()


def test_enable_twice_then_disable(capsys: pytest.CaptureFixture[str], claude_dir: Path) -> None:
    settings = claude_dir / "settings.json"
    original = write_settings(settings, SETTINGS)
    assert qcc(capsys, "claude", "enable")[0] == 0
    code, _, err = qcc(capsys, "claude", "enable")
    assert code == 0
    assert "(unchanged)" in err and "before the first enable" in err
    assert qcc(capsys, "claude", "disable")[0] == 0
    assert settings.read_bytes() == original


def test_enable_in_home_without_claude_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    code, _, err = qcc(capsys, "claude", "enable")
    assert code == 0
    assert 'Created ~/.claude/settings.json "env"' in err
    assert json.loads((home / ".claude" / "settings.json").read_text()) == {
        "env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:7860", "ANTHROPIC_AUTH_TOKEN": "qcc"}
    }
    code, _, err = qcc(capsys, "claude", "disable")
    assert code == 0
    assert "Removed ~/.claude/settings.json" in err
    assert list(home.iterdir()) == []


def test_enable_invalid_json_is_one_line_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], claude_dir: Path, state_dir: Path
) -> None:
    settings = claude_dir / "settings.json"
    claude_dir.mkdir()
    raw = b'{\n  "model": "opus",\n  "env": {"A": "1",}\n}\n'
    settings.write_bytes(raw)
    code, out, err = qcc(capsys, "claude", "enable")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"qcc: error: {settings} is not valid JSON (line 3: ")
    assert err.endswith("fix it or move it away, nothing was changed\n")
    assert settings.read_bytes() == raw
    assert not (state_dir / "claude-settings-backup.json").exists()


def test_enable_json_array_is_an_error(
    capsys: pytest.CaptureFixture[str], claude_dir: Path
) -> None:
    claude_dir.mkdir()
    (claude_dir / "settings.json").write_text("[]\n")
    code, _, err = qcc(capsys, "claude", "enable")
    assert code == 2
    assert "holds a JSON list, not an object" in err and err.count("\n") == 1
    assert (claude_dir / "settings.json").read_text() == "[]\n"


def test_disable_without_enable(capsys: pytest.CaptureFixture[str], claude_dir: Path) -> None:
    code, out, err = qcc(capsys, "claude", "disable")
    assert (code, out) == (2, "")
    assert err == (
        "qcc: error: qcc claude enable was not run (no backup found); nothing to restore\n"
    )


def test_disable_keeps_and_reports_user_edit(
    capsys: pytest.CaptureFixture[str], claude_dir: Path
) -> None:
    settings = claude_dir / "settings.json"
    write_settings(settings, SETTINGS)
    assert qcc(capsys, "claude", "enable")[0] == 0
    data = json.loads(settings.read_text())
    data["env"]["ANTHROPIC_AUTH_TOKEN"] = "my-own-token"
    write_settings(settings, data)

    code, _, err = qcc(capsys, "claude", "disable")
    assert code == 0
    assert "Note: ANTHROPIC_AUTH_TOKEN was changed by hand since enable; left as it is." in err
    assert "my-own-token" not in err
    after = json.loads(settings.read_text())
    assert after["env"] == {**SETTINGS["env"], "ANTHROPIC_AUTH_TOKEN": "my-own-token"}


def test_help_names_env_vars_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("env", "enable", "disable"):
        code, out, _ = qcc(capsys, "claude", command, "--help")
        assert code == 0
        assert "Example:" in out
        assert "QCC_" in out
    _, out, _ = qcc(capsys, "claude", "--help")
    assert "CLAUDE_CONFIG_DIR" in out and "QCC_STATE_DIR" in out


# --- a real process ----------------------------------------------------------------------------


@pytest.fixture
def qcc_on_path(qcc_bin: Path) -> dict[str, str]:
    """An environment whose PATH finds the installed ``qcc`` first."""
    return {**os.environ, "PATH": f"{qcc_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_eval_in_bash(qcc_on_path: dict[str, str], config_dir: Path) -> None:
    write_config(config_dir, '[proxy]\nport = 7999\naccess_key = "it\'s a $secret"\n')
    script = 'eval "$(qcc claude env --shell bash)"; echo "$ANTHROPIC_BASE_URL"; '
    script += 'echo "$ANTHROPIC_AUTH_TOKEN"; printenv ANTHROPIC_BASE_URL'
    done = subprocess.run(
        ["bash", "-c", script], env=qcc_on_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "http://127.0.0.1:7999\nit's a $secret\nhttp://127.0.0.1:7999\n"
    assert done.stderr.startswith("no qcc proxy is running:"), done.stderr
    assert "secret" not in done.stderr


# --- the running proxy's address wins over the config's ------------------------------------------


def write_record(state_dir: Path, host: str, port: int, config_path: Path) -> None:
    """A record of a proxy that runs (this test process's pid is alive)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": os.getpid(),
        "url": f"http://{host}:{port}",
        "host": host,
        "port": port,
        "cluster": "prod",
        "config_path": str(config_path),
        "log_file": None,
        "started_at": 0,
    }
    (state_dir / "proxy.json").write_text(json.dumps(record))


def test_env_points_at_the_running_proxy(
    capsys: pytest.CaptureFixture[str], config_dir: Path, state_dir: Path
) -> None:
    write_config(config_dir, "[proxy]\nport = 7860\n")
    write_record(state_dir, "0.0.0.0", 9123, config_dir / "config.toml")
    code, out, err = qcc(capsys, "claude", "env", "--shell", "bash")
    assert (code, out) == (
        0,
        "export ANTHROPIC_BASE_URL='http://127.0.0.1:9123'\nexport ANTHROPIC_AUTH_TOKEN='qcc'\n",
    )
    assert err == (
        f"using the running qcc proxy (pid {os.getpid()}, cluster 'prod') at "
        "http://127.0.0.1:9123\n"
    )


def test_env_takes_the_key_of_the_config_the_proxy_serves(
    capsys: pytest.CaptureFixture[str], config_dir: Path, state_dir: Path, tmp_path: Path
) -> None:
    write_config(config_dir, "[proxy]\nport = 7860\n")
    other = tmp_path / "other-config"
    other.mkdir()
    write_config(other, f'[proxy]\naccess_key = "{ACCESS_KEY}"\n')
    write_record(state_dir, "127.0.0.1", 9124, other / "config.toml")
    code, out, _ = qcc(capsys, "claude", "env", "--shell", "bash")
    assert code == 0
    assert out.endswith(f"export ANTHROPIC_AUTH_TOKEN='{ACCESS_KEY}'\n")


def test_enable_points_at_the_running_proxy(
    capsys: pytest.CaptureFixture[str], claude_dir: Path, config_dir: Path, state_dir: Path
) -> None:
    write_config(config_dir, "[proxy]\nport = 7860\n")
    write_record(state_dir, "127.0.0.1", 9125, config_dir / "config.toml")
    code, _, err = qcc(capsys, "claude", "enable")
    assert code == 0, err
    assert "Using the running qcc proxy" in err
    env = json.loads((claude_dir / "settings.json").read_text())["env"]
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9125"
