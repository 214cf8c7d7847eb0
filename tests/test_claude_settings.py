"""claude_settings: a settings.json edit that undoes exactly, under a lock, from a typed record."""

from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from qcc import claude_settings as cs
from qcc.config.model import Config, ProxySettings

ACCESS_KEY = "qcc-access-SECRETSECRETSECRET-9z8y"
ENV = {cs.BASE_URL_KEY: "http://127.0.0.1:7860", cs.TOKEN_KEY: "qcc"}

# A settings file as Claude Code users have them: hooks, permissions, nested lists, other env.
SETTINGS: dict[str, Any] = {
    "$schema": "https://json.schemastore.org/claude-code-settings.json",
    "model": "opus",
    "env": {"BASH_DEFAULT_TIMEOUT_MS": "60000", "DISABLE_TELEMETRY": "1"},
    "permissions": {
        "allow": ["Bash(npm run test:*)", "Read(~/.zshrc)"],
        "deny": ["Read(./.env)", "Read(./secrets/**)"],
        "additionalDirectories": ["../docs/"],
    },
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "echo 'hi' \"there\""}]}
        ]
    },
    "statusLine": {"type": "command", "command": "~/.claude/statusline.sh", "padding": 0},
    "includeCoAuthoredBy": False,
    "cleanupPeriodDays": 30,
    "feedbackSurveyState": {"lastShownTime": 1754000000000.0},
    "unicode": "héllo ✓",
}


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    return tmp_path / "claude" / "settings.json"


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    return tmp_path / "state" / cs.BACKUP_NAME


def write(path: Path, data: Any) -> bytes:
    """Write ``data`` the way Claude Code does (2-space indent) plus a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()
    path.write_bytes(raw)
    return raw


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def config(host: str = "127.0.0.1", port: int = 7860, key: str | None = None) -> Config:
    return Config(proxy=ProxySettings(host=host, port=port, access_key=key))


# --- where the files are -------------------------------------------------------------------------


def test_settings_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cs.settings_path({"CLAUDE_CONFIG_DIR": str(tmp_path)}) == tmp_path / "settings.json"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cs.settings_path({}) == tmp_path / ".claude" / "settings.json"
    assert cs.shown(tmp_path / ".claude" / "settings.json") == "~/.claude/settings.json"


def test_backup_path_is_in_state_dir() -> None:
    assert cs.backup_path() == Path(os.environ["QCC_STATE_DIR"]) / "claude-settings-backup.json"


# --- enable / disable --------------------------------------------------------------------------


def test_enable_merges_only_our_keys_and_disable_restores_bytes(
    settings: Path, backup: Path
) -> None:
    original = write(settings, SETTINGS)
    result = cs.enable(settings, ENV, backup)

    after = read(settings)
    expected = copy.deepcopy(SETTINGS)
    expected["env"].update(ENV)
    assert after == expected
    assert list(after) == list(SETTINGS)  # key order kept
    assert list(after["env"]) == [*SETTINGS["env"], *ENV]
    assert [(c.key, c.action) for c in result.changes] == [
        (cs.BASE_URL_KEY, "added"),
        (cs.TOKEN_KEY, "added"),
    ]
    assert result.first and not result.created
    assert result.copy_path is not None and result.copy_path.read_bytes() == original
    record = read(backup)
    assert record["settings_path"] == str(settings)
    assert (record["existed"], record["env_existed"]) == (True, True)
    assert record["previous"] == {cs.BASE_URL_KEY: None, cs.TOKEN_KEY: None}

    result2 = cs.disable(settings, backup)
    assert settings.read_bytes() == original
    assert [(c.key, c.action) for c in result2.changes] == [
        (cs.BASE_URL_KEY, "removed"),
        (cs.TOKEN_KEY, "removed"),
    ]
    assert result2.notes == ()
    assert not backup.exists()


def test_disable_restores_previous_value_exactly(settings: Path, backup: Path) -> None:
    data = {"env": {cs.BASE_URL_KEY: "https://relay.example/api", "X": "1"}, "model": "sonnet"}
    original = write(settings, data)
    cs.enable(settings, ENV, backup)
    assert read(settings)["env"] == {**ENV, "X": "1"} | {cs.BASE_URL_KEY: ENV[cs.BASE_URL_KEY]}
    assert list(read(settings)["env"]) == [cs.BASE_URL_KEY, "X", cs.TOKEN_KEY]
    assert read(backup)["previous"][cs.BASE_URL_KEY] == "https://relay.example/api"

    result = cs.disable(settings, backup)
    assert settings.read_bytes() == original
    assert ("ANTHROPIC_BASE_URL", "restored") in [(c.key, c.action) for c in result.changes]


def test_other_formatting_restores_content(settings: Path, backup: Path) -> None:
    """A 4-space file keeps its indent; a one-line file round-trips to the same content."""
    settings.parent.mkdir(parents=True)
    settings.write_text('{\n    "model": "opus",\n    "env": {\n        "A": "1"\n    }\n}\n')
    cs.enable(settings, ENV, backup)
    assert settings.read_text().startswith('{\n    "model": "opus",\n    "env": {\n        "A"')
    settings.write_text(settings.read_text().replace('"opus"', '"haiku"'))  # user edit meanwhile
    cs.disable(settings, backup)
    assert (
        settings.read_text()
        == '{\n    "model": "haiku",\n    "env": {\n        "A": "1"\n    }\n}\n'
    )

    settings.write_text('{"model":"opus","env":{"A":"1"}}')
    cs.enable(settings, ENV, backup)
    assert read(settings) == {"model": "opus", "env": {"A": "1", **ENV}}
    cs.disable(settings, backup)
    assert settings.read_text() == '{"model":"opus","env":{"A":"1"}}'  # the original bytes


def test_missing_file_is_created_and_removed(settings: Path, backup: Path) -> None:
    settings.parent.mkdir()
    result = cs.enable(settings, ENV, backup)
    assert result.created and result.copy_path is None
    assert read(settings) == {"env": ENV}
    assert settings.read_text().endswith("}\n")
    assert stat.S_IMODE(settings.stat().st_mode) == 0o644

    result2 = cs.disable(settings, backup)
    assert result2.deleted
    assert not settings.exists()
    assert settings.parent.is_dir()  # the directory was there before


def test_missing_dir_is_created_and_removed(settings: Path, backup: Path) -> None:
    assert not settings.parent.exists()
    cs.enable(settings, ENV, backup)
    assert read(settings) == {"env": ENV}
    cs.disable(settings, backup)
    assert not settings.parent.exists()


def test_created_dir_with_other_files_stays(settings: Path, backup: Path) -> None:
    cs.enable(settings, ENV, backup)
    (settings.parent / "projects").mkdir()  # Claude Code ran meanwhile
    cs.disable(settings, backup)
    assert not settings.exists()
    assert (settings.parent / "projects").is_dir()


def test_created_file_with_user_additions_is_kept(settings: Path, backup: Path) -> None:
    cs.enable(settings, ENV, backup)
    data = read(settings)
    data["model"] = "opus"
    write(settings, data)
    result = cs.disable(settings, backup)
    assert not result.deleted
    assert read(settings) == {"model": "opus"}


def test_env_created_by_enable_is_removed(settings: Path, backup: Path) -> None:
    original = write(settings, {"model": "opus", "permissions": {"allow": []}})
    cs.enable(settings, ENV, backup)
    assert list(read(settings)) == ["model", "permissions", "env"]
    assert read(backup)["env_existed"] is False
    cs.disable(settings, backup)
    assert settings.read_bytes() == original


def test_empty_env_that_existed_stays(settings: Path, backup: Path) -> None:
    original = write(settings, {"env": {}, "model": "opus"})
    cs.enable(settings, ENV, backup)
    cs.disable(settings, backup)
    assert settings.read_bytes() == original


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{\n  "model": "opus",\n  "env": {\n', r"is not valid JSON \(line 4: "),
        ('{\n  "a": 1,\n  "b": 2\n  "c": 3\n}\n', r"is not valid JSON \(line 4: Expecting ','"),
        ("[1, 2]\n", r"holds a JSON list, not an object"),
        ('"text"', r"holds a JSON str, not an object"),
        ('{"env": ["A=1"]}', r'"env" in .* is not a JSON object'),
        (b"\xff\xfe{}", r"is not UTF-8 text"),
    ],
)
def test_unusable_file_is_left_alone(
    settings: Path, backup: Path, content: str | bytes, message: str
) -> None:
    settings.parent.mkdir()
    raw = content.encode() if isinstance(content, str) else content
    settings.write_bytes(raw)
    with pytest.raises(cs.ClaudeSettingsError, match=message) as info:
        cs.enable(settings, ENV, backup)
    text = str(info.value)
    assert "\n" not in text
    assert text.endswith("fix it or move it away, nothing was changed")
    assert settings.read_bytes() == raw
    assert not backup.exists()
    assert not cs.copy_path_for(backup).exists()


def test_empty_file_counts_as_empty_object(settings: Path, backup: Path) -> None:
    settings.parent.mkdir()
    settings.write_bytes(b"")
    cs.enable(settings, ENV, backup)
    assert read(settings) == {"env": ENV}
    cs.disable(settings, backup)
    assert settings.read_bytes() == b""


def test_enable_twice_keeps_pre_qcc_values(settings: Path, backup: Path) -> None:
    data = copy.deepcopy(SETTINGS)
    data["env"][cs.BASE_URL_KEY] = "https://relay"
    original = write(settings, data)
    cs.enable(settings, ENV, backup)
    second_env = cs.proxy_env(config(port=9999, key=ACCESS_KEY))
    result = cs.enable(settings, second_env, backup)
    assert not result.first
    assert read(settings)["env"][cs.TOKEN_KEY] == ACCESS_KEY
    assert [c.action for c in result.changes] == ["replaced", "replaced"]
    assert read(backup)["previous"] == {cs.BASE_URL_KEY: "https://relay", cs.TOKEN_KEY: None}
    assert cs.copy_path_for(backup).read_bytes() == original
    inode = settings.stat().st_ino
    cs.enable(settings, second_env, backup)  # no change: the file is not rewritten
    assert settings.stat().st_ino == inode

    cs.disable(settings, backup)
    assert settings.read_bytes() == original


def test_access_key_is_stored_only_in_settings(settings: Path, backup: Path) -> None:
    write(settings, {})
    result = cs.enable(settings, {**ENV, cs.TOKEN_KEY: ACCESS_KEY}, backup)
    assert ACCESS_KEY in settings.read_text()
    assert ACCESS_KEY not in backup.read_text()
    assert ACCESS_KEY not in repr(result)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(cs.copy_path_for(backup).stat().st_mode) == 0o600


def test_disable_without_enable(settings: Path, backup: Path) -> None:
    original = write(settings, SETTINGS)
    with pytest.raises(cs.NotEnabledError) as info:
        cs.disable(settings, backup)
    assert str(info.value) == "qcc claude enable was not run (no backup found); nothing to restore"
    assert settings.read_bytes() == original


def test_disable_twice_fails_the_second_time(settings: Path, backup: Path) -> None:
    write(settings, SETTINGS)
    cs.enable(settings, ENV, backup)
    cs.disable(settings, backup)
    with pytest.raises(cs.NotEnabledError):
        cs.disable(settings, backup)


def test_user_edit_of_our_key_is_kept_and_reported(settings: Path, backup: Path) -> None:
    write(settings, {"env": {cs.TOKEN_KEY: "users-old-token", "A": "1"}})
    cs.enable(settings, ENV, backup)
    data = read(settings)
    data["env"][cs.BASE_URL_KEY] = "https://my-relay.example"
    write(settings, data)

    result = cs.disable(settings, backup)
    assert read(settings) == {
        "env": {
            cs.TOKEN_KEY: "users-old-token",
            "A": "1",
            cs.BASE_URL_KEY: "https://my-relay.example",
        }
    }
    assert result.notes == ("ANTHROPIC_BASE_URL was changed by hand since enable; left as it is",)
    assert [(c.key, c.action) for c in result.changes] == [(cs.TOKEN_KEY, "restored")]
    assert "users-old-token" not in repr(result.notes)


def test_user_removal_of_our_key_is_reported(settings: Path, backup: Path) -> None:
    write(settings, {"env": {"A": "1"}})
    cs.enable(settings, ENV, backup)
    data = read(settings)
    del data["env"][cs.TOKEN_KEY]
    write(settings, data)
    result = cs.disable(settings, backup)
    assert read(settings) == {"env": {"A": "1"}}
    assert result.notes == ("ANTHROPIC_AUTH_TOKEN was removed by hand since enable; left as it is",)


def test_file_mode_is_preserved(settings: Path, backup: Path) -> None:
    write(settings, SETTINGS)
    settings.chmod(0o600)
    cs.enable(settings, ENV, backup)
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    settings.chmod(0o640)
    cs.disable(settings, backup)
    assert stat.S_IMODE(settings.stat().st_mode) == 0o640


def test_symlinked_settings_stay_a_symlink(tmp_path: Path, settings: Path, backup: Path) -> None:
    target = tmp_path / "dotfiles" / "claude-settings.json"
    original = write(target, SETTINGS)
    settings.parent.mkdir()
    settings.symlink_to(target)
    cs.enable(settings, ENV, backup)
    assert settings.is_symlink()
    assert read(target)["env"][cs.BASE_URL_KEY] == ENV[cs.BASE_URL_KEY]
    cs.disable(settings, backup)
    assert settings.is_symlink()
    assert target.read_bytes() == original


def test_enable_for_another_file_while_active_fails(tmp_path: Path, backup: Path) -> None:
    first, second = tmp_path / "a" / "settings.json", tmp_path / "b" / "settings.json"
    cs.enable(first, ENV, backup)
    with pytest.raises(cs.ClaudeSettingsError, match=r"active for .*a/settings.json already"):
        cs.enable(second, ENV, backup)
    assert not second.exists()
    result = cs.disable(second, backup)  # restores the file enable changed
    assert result.settings_path == first and not first.exists()
    assert "the file enable changed" in result.notes[0]


def test_damaged_backup_is_reported(settings: Path, backup: Path) -> None:
    write(settings, SETTINGS)
    backup.parent.mkdir(parents=True)
    backup.write_text("{not json")
    with pytest.raises(cs.ClaudeSettingsError, match=r"backup .* is damaged"):
        cs.disable(settings, backup)
    with pytest.raises(cs.ClaudeSettingsError, match=r"backup .* is damaged"):
        cs.enable(settings, ENV, backup)


def test_settings_deleted_after_enable(settings: Path, backup: Path) -> None:
    write(settings, SETTINGS)
    cs.enable(settings, ENV, backup)
    settings.unlink()
    result = cs.disable(settings, backup)
    assert not settings.exists()
    assert "no longer exists" in result.notes[0]
    assert not backup.exists()


def test_conflicting_credentials_are_noted(settings: Path, backup: Path) -> None:
    write(settings, {"env": {"ANTHROPIC_API_KEY": "sk-ant-real"}, "apiKeyHelper": "~/bin/key"})
    result = cs.enable(settings, {**ENV, cs.TOKEN_KEY: ACCESS_KEY}, backup)
    assert any("ANTHROPIC_API_KEY" in note for note in result.notes)
    assert any("apiKeyHelper" in note for note in result.notes)
    assert read(settings)["env"]["ANTHROPIC_API_KEY"] == "sk-ant-real"  # not ours to touch


def test_failed_write_leaves_no_backup_record(
    settings: Path, backup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = write(settings, SETTINGS)
    real = cs.atomic_write

    def failing(path: Path, data: bytes, mode: int) -> None:
        if path.name == "settings.json":
            raise PermissionError(13, "Permission denied")
        real(path, data, mode)

    monkeypatch.setattr(cs, "atomic_write", failing)
    with pytest.raises(cs.ClaudeSettingsError, match=r"cannot write .*Permission denied.*nothing"):
        cs.enable(settings, ENV, backup)
    assert settings.read_bytes() == original
    assert not backup.exists()

    monkeypatch.setattr(cs, "atomic_write", real)
    cs.enable(settings, ENV, backup)
    record = backup.read_bytes()
    monkeypatch.setattr(cs, "atomic_write", failing)
    with pytest.raises(cs.ClaudeSettingsError):
        cs.enable(settings, {**ENV, cs.TOKEN_KEY: ACCESS_KEY}, backup)
    assert backup.read_bytes() == record  # the first enable's record still describes the file


# --- the backup record: qcc 0.1's format, read strictly, under a lock ------------------------

ORIGINAL_01 = (
    b'{\n    "model": "opus",\n    "env": {"ANTHROPIC_BASE_URL": "https://relay", "A": "1"}\n}\n'
)
ENABLED_01 = (
    b'{\n    "model": "opus",\n    "env": {\n        "ANTHROPIC_BASE_URL": "http://127.0.0.1:7860",'
    b'\n        "A": "1",\n        "ANTHROPIC_AUTH_TOKEN": "qcc"\n    }\n}\n'
)


def record_01(settings: Path) -> str:
    """What qcc 0.1's ``enable`` wrote for ORIGINAL_01 and ENV (captured from that code)."""
    return """{
  "version": 1,
  "settings_path": "@PATH@",
  "existed": true,
  "dir_existed": true,
  "env_existed": true,
  "previous": {
    "ANTHROPIC_BASE_URL": "https://relay",
    "ANTHROPIC_AUTH_TOKEN": null
  },
  "applied": {
    "ANTHROPIC_BASE_URL": "eebdc588919d24f8e430f458f27d5ee5f631f98e3b28abd6960e5ebc1b32b692",
    "ANTHROPIC_AUTH_TOKEN": "b2036569e22b806e617e5e508226d0c48e95d05c75f5681805db240d99f419f6"
  },
  "original_sha256": "71302b34f35f19c5fbedf0f1cd87250881c622828821ced291745588ab72dc50"
}
""".replace('"@PATH@"', json.dumps(str(settings.absolute())))


def test_backup_written_by_qcc_0_1_restores(settings: Path, backup: Path) -> None:
    settings.parent.mkdir()
    settings.write_bytes(ENABLED_01)
    backup.parent.mkdir()
    backup.write_text(record_01(settings))
    cs.copy_path_for(backup).write_bytes(ORIGINAL_01)
    result = cs.disable(settings, backup)
    assert settings.read_bytes() == ORIGINAL_01
    assert [(c.key, c.action) for c in result.changes] == [
        (cs.BASE_URL_KEY, "restored"),
        (cs.TOKEN_KEY, "removed"),
    ]
    assert not backup.exists()


def test_enable_writes_the_0_1_record_byte_for_byte(settings: Path, backup: Path) -> None:
    settings.parent.mkdir()
    settings.write_bytes(ORIGINAL_01)
    cs.enable(settings, ENV, backup)
    assert settings.read_bytes() == ENABLED_01
    assert backup.read_text() == record_01(settings)


def _without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda doc: doc | {"version": 2}, "version 2, this qcc reads version 1"),
        (lambda doc: _without(doc, "version"), "version null, this qcc reads version 1"),
        (lambda doc: doc | {"version": True}, "version true, this qcc reads version 1"),
        (lambda doc: [doc], "not a JSON object"),
        (lambda doc: _without(doc, "existed"), 'no "existed"'),
        (lambda doc: doc | {"dir_existed": "yes"}, '"dir_existed" is not true or false'),
        (lambda doc: doc | {"env_existed": 1}, '"env_existed" is not true or false'),
        (lambda doc: doc | {"settings_path": ""}, '"settings_path" is empty'),
        (lambda doc: doc | {"settings_path": None}, '"settings_path" is not a path'),
        (lambda doc: doc | {"previous": []}, '"previous" is not an object'),
        (lambda doc: _without(doc, "applied"), 'no "applied"'),
        (lambda doc: doc | {"applied": {"K": "abc"}}, '"applied.K" is not a sha256 hex digest'),
        (lambda doc: doc | {"original_sha256": 5}, '"original_sha256" is not a sha256 hex'),
    ],
)
def test_malformed_record_is_one_clear_error(
    settings: Path, backup: Path, change: Any, reason: str
) -> None:
    settings.parent.mkdir()
    settings.write_bytes(ENABLED_01)
    backup.parent.mkdir()
    raw = json.dumps(change(json.loads(record_01(settings))), indent=2).encode()
    backup.write_bytes(raw)
    for attempt in (lambda: cs.disable(settings, backup), lambda: cs.enable(settings, ENV, backup)):
        with pytest.raises(cs.ClaudeSettingsError) as info:
            attempt()
        text = str(info.value)
        assert "\n" not in text
        assert f"the backup {backup} is damaged ({reason}" in text
        assert text.endswith(
            "restore settings.json by hand (a copy of the original may be at "
            f"{cs.copy_path_for(backup)}) and delete the backup"
        )
        assert settings.read_bytes() == ENABLED_01
        assert backup.read_bytes() == raw


def test_enable_and_disable_take_the_lock_beside_the_backup(settings: Path, backup: Path) -> None:
    original = write(settings, SETTINGS)
    backup.parent.mkdir(parents=True)
    other = FileLock(str(backup.parent / f".{backup.name}.lock"))  # another qcc process
    busy = r"another qcc process is changing Claude Code's settings \(lock .*\); try again"
    with other, pytest.raises(cs.ClaudeSettingsError, match=busy):
        cs.enable(settings, ENV, backup, lock_timeout=0.05)
    assert settings.read_bytes() == original
    assert not backup.exists()

    cs.enable(settings, ENV, backup)
    enabled = settings.read_bytes()
    with other, pytest.raises(cs.ClaudeSettingsError, match=busy):
        cs.disable(settings, backup, lock_timeout=0.05)
    assert settings.read_bytes() == enabled
    assert backup.exists()
    cs.disable(settings, backup)
    assert settings.read_bytes() == original
    assert not (settings.parent / f".{backup.name}.lock").exists()  # nothing left in ~/.claude
