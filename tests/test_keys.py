"""Member keys in the config and the CLI: made once, stored only as a salted hash, validated."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
import tomlkit
from conftest import RunCli

from qcc.config import keys
from qcc.config.store import ConfigStore
from qcc.config.validate import config_from
from qcc.errors import ConfigValidationError


def test_new_key_is_random_prefixed_and_url_safe() -> None:
    made = {keys.new_key() for _ in range(50)}
    assert len(made) == 50
    for key in made:
        assert key.startswith("qcc-") and len(key) == 4 + 43
        assert all(c.isalnum() or c in "-_" for c in key)


def test_stored_form_is_a_salted_sha256_that_matches_only_its_key() -> None:
    key = keys.new_key()
    stored = keys.stored_form(key)
    assert key not in stored
    parsed = keys.parse_stored(stored)
    assert parsed is not None
    salt, digest = parsed
    assert len(salt) == 16 and digest == hashlib.sha256(salt + key.encode()).digest()
    assert keys.matches(key, salt, digest)
    assert not keys.matches(key + "x", salt, digest)
    assert not keys.matches(keys.new_key(), salt, digest)
    # a new salt each time: one key stored twice gives two different hashes
    assert keys.stored_form(key) != stored


def data_with_key(body: object) -> dict[str, object]:
    return {"clusters": {"team": {"keys": {"alice": body}}}}


def test_member_key_loads_with_its_limits() -> None:
    stored = keys.stored_form("qcc-something")
    config = config_from(
        data_with_key({"hash": stored, "rpm": 30, "budget_daily_usd": 5, "enabled": False})
    )
    (key,) = config.clusters["team"].keys
    assert (key.name, key.rpm, key.budget_daily_usd, key.enabled) == ("alice", 30, 5.0, False)
    assert key.salt.hex() not in repr(key)
    assert key.digest.hex() not in repr(key)


@pytest.mark.parametrize(
    ("body", "location", "words"),
    [
        ({}, "clusters.team.keys.alice.hash", "is missing; create member keys with 'qcc key add"),
        ({"hash": "nope"}, "clusters.team.keys.alice.hash", "must be the hash 'qcc key add' wrote"),
        ({"hash": "qcc-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}, "", "looks like a key"),
        ({"hash": keys.stored_form("k"), "rpm": 0}, "clusters.team.keys.alice.rpm", ">= 1"),
        (
            {"hash": keys.stored_form("k"), "budget_daily_usd": -1},
            "clusters.team.keys.alice.budget_daily_usd",
            "> 0",
        ),
        (
            {"hash": keys.stored_form("k"), "enabled": "yes"},
            "clusters.team.keys.alice.enabled",
            "true or false",
        ),
        ({"hash": keys.stored_form("k"), "key": "x"}, "clusters.team.keys.alice.key", "unknown"),
    ],
)
def test_member_key_errors_are_located_and_never_quote_the_value(
    body: dict[str, object], location: str, words: str
) -> None:
    with pytest.raises(ConfigValidationError) as info:
        config_from(data_with_key(body))
    message = str(info.value)
    assert message.startswith(location or "clusters.team.keys.alice.hash")
    assert words in message
    if "hash" in body and isinstance(body["hash"], str) and not body["hash"].startswith("sha"):
        assert body["hash"] not in message


def test_bad_member_name_is_located() -> None:
    with pytest.raises(ConfigValidationError, match=r"^clusters\.team\.keys\.a b: 'a b' is not"):
        config_from({"clusters": {"team": {"keys": {"a b": {"hash": keys.stored_form("k")}}}}})


# ---- CLI ------------------------------------------------------------------------------------


@pytest.fixture
def team(run_cli: RunCli) -> None:
    assert run_cli("cluster", "add", "team").exit_code == 0


def test_key_add_prints_the_key_once_and_stores_only_its_hash(
    run_cli: RunCli, team: None, config_path: Path
) -> None:
    result = run_cli("key", "add", "alice", "--rpm", "60", "--budget-daily-usd", "2.5")
    assert result.exit_code == 0, result.stderr
    key = result.stdout.strip()
    assert result.stdout == key + "\n" and key.startswith("qcc-")
    assert "only this once" in result.stderr and key not in result.stderr
    text = config_path.read_text()
    assert key not in text
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    table = tomlkit.parse(text)["clusters"]["team"]["keys"]["alice"]  # type: ignore[index]
    assert table["rpm"] == 60 and table["budget_daily_usd"] == 2.5 and table["enabled"] is True
    (member,) = ConfigStore(config_path).load().clusters["team"].keys
    assert keys.matches(key, member.salt, member.digest)


def test_key_list_shows_state_and_limits_never_a_hash(
    run_cli: RunCli, team: None, config_path: Path
) -> None:
    alice = run_cli("key", "add", "alice", "--rpm", "60").stdout.strip()
    run_cli("key", "add", "bob", "--budget-daily-usd", "3")
    assert run_cli("key", "disable", "bob").exit_code == 0
    listed = run_cli("key", "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert any("alice" in line and "enabled" in line and "60" in line for line in lines)
    assert any("bob" in line and "disabled" in line and "$3" in line for line in lines)
    doc = run_cli("key", "list", "--json").json()
    assert doc["keys"][0] == {
        "cluster": "team",
        "name": "alice",
        "enabled": True,
        "rpm": 60,
        "budget_daily_usd": None,
        "spend_today_usd": 0.0,
    }
    everything = listed.stdout + listed.stderr + run_cli("key", "list", "--json").stdout
    assert alice not in everything and "sha256" not in everything
    assert run_cli("key", "enable", "bob").exit_code == 0
    assert run_cli("key", "list", "--json").json()["keys"][1]["enabled"] is True


def test_key_remove_drops_the_table_with_the_last_key(
    run_cli: RunCli, team: None, config_path: Path
) -> None:
    run_cli("key", "add", "alice")
    assert run_cli("key", "remove", "alice").exit_code == 0
    assert "keys" not in config_path.read_text()
    assert ConfigStore(config_path).load().clusters["team"].keys == ()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("key", "add", "alice"), ["already exists", "qcc key remove alice"]),
        (("key", "add", "bad name"), ["key name: 'bad name' is not a valid name"]),
        (("key", "add", "x", "--rpm", "0"), ["--rpm: must be an integer >= 1"]),
        (("key", "add", "x", "--budget-daily-usd", "0"), ["--budget-daily-usd", "> 0"]),
        (("key", "add", "x", "--cluster", "nope"), ["no cluster named 'nope'"]),
        (("key", "remove", "zed"), ["no member key 'zed'", "qcc key list --cluster team"]),
        (("key", "disable", "zed"), ["no member key 'zed'"]),
    ],
)
def test_key_errors_are_one_line_and_leave_config_unchanged(
    run_cli: RunCli, cli_error: RunCli, team: None, args: tuple[str, ...], words: list[str]
) -> None:
    run_cli("key", "add", "alice")
    cli_error(*args, words=words)
