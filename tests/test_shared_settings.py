"""``[shared]`` in config.toml, ``QCC_REDIS_URL``, the password kept out of sight, and nothing of
Redis loaded when sharing is off."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qcc.config.model import SharedSettings
from qcc.config.validate import config_from
from qcc.errors import ConfigValidationError, ProxyError
from qcc.shared.settings import URL_ENV, shown, target


def test_shared_table_loads() -> None:
    config = config_from(
        {"shared": {"redis_url": "redis://127.0.0.1:6379/0", "redis_password_env": "REDIS_PW"}}
    )
    assert config.shared == SharedSettings("redis://127.0.0.1:6379/0", "REDIS_PW")
    assert config_from({}).shared == SharedSettings()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"redis_url": "http://x"}, "shared.redis_url: must start with redis://, rediss://"),
        ({"redis_url": ""}, "shared.redis_url: must be a non-empty string"),
        ({"url": "redis://x"}, "shared.url: unknown key; expected one of: redis_url, "),
        ({"redis_password_env": 3}, "shared.redis_password_env: must be a non-empty string"),
    ],
)
def test_shared_table_errors_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        config_from({"shared": table})
    assert str(caught.value).startswith(message)


def test_off_unless_configured_and_the_env_var_wins() -> None:
    assert target(SharedSettings(), {}) is None
    configured = SharedSettings("redis://config:6379/0")
    got = target(configured, {})
    assert got is not None and got.url == "redis://config:6379/0"
    got = target(configured, {URL_ENV: "rediss://env:6380/1"})
    assert got is not None and got.url == "rediss://env:6380/1"
    with pytest.raises(ProxyError, match=f"{URL_ENV} must start with redis://"):
        target(SharedSettings(), {URL_ENV: "localhost:6379"})


def test_the_password_comes_from_its_env_var_and_is_never_shown() -> None:
    settings = SharedSettings("redis://cache:6379/0", "TEAM_REDIS_PW")
    got = target(settings, {"TEAM_REDIS_PW": "hunter2-secret"})
    assert got is not None and got.password == "hunter2-secret"
    assert "hunter2" not in repr(got) and "hunter2" not in got.shown
    with pytest.raises(ProxyError) as caught:
        target(settings, {})
    assert str(caught.value) == (
        "shared.redis_password_env names TEAM_REDIS_PW, which is not set; "
        "export it before starting qcc"
    )
    assert shown("redis://:pw-in-url@cache:6379/0") == "redis://***@cache:6379/0"
    assert shown("redis://cache:6379/0") == "redis://cache:6379/0"
    assert shown("rediss://cache:6380/0?password=pw-in-query") == "rediss://cache:6380/0"
    assert "pw-in-url" not in repr(SharedSettings("redis://:pw-in-url@cache:6379/0"))


def test_without_shared_redis_is_never_imported() -> None:
    code = (
        "import sys, qcc.proxy.server, qcc.proxy.app, qcc.cli.main;"
        "print('redis' in sys.modules, 'qcc.shared.sync' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_qcc_health_names_the_live_instances() -> None:
    from qcc.cli.health import shared_line

    assert shared_line({"accounts": []}) is None
    doc = {
        "shared": {
            "state": "ok",
            "redis": "redis://***@cache:6379/0",
            "instance": "gw1:7:ab12",
            "instances": [{"id": "gw1:7:ab12", "seen_s_ago": 0.1}, {"id": "gw2:9:cd34"}],
        }
    }
    assert shared_line(doc) == (
        "shared via redis://***@cache:6379/0: ok; 2 live instance(s): "
        "gw1:7:ab12 (this one), gw2:9:cd34"
    )
