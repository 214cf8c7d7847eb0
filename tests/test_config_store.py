"""ConfigStore: round trips, file mode, comment-preserving edits, locking and atomic writes."""

from __future__ import annotations

import os
import random
import re
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qcc.config import ops
from qcc.config.model import Credential
from qcc.config.store import ConfigStore, atomic_write
from qcc.errors import ConfigError, NotFoundError

KEY = Credential("api_key", "sk-ant-api03-SECRETSECRETSECRET-a1b2")


def test_missing_file_is_empty_config(config_path: Path) -> None:
    store = ConfigStore(config_path)
    assert store.load().clusters == {}
    assert not config_path.exists()


def test_round_trip(config_path: Path) -> None:
    store = ConfigStore(config_path)
    with store.edit() as doc:
        ops.add_cluster(doc, "prod", strategy="priority", sticky=False)
    with store.edit() as doc:
        ops.add_account(
            doc, "prod", "main", "https://api.anthropic.com/", KEY, weight=3, priority=1,
            models={"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"},
        )  # fmt: skip
    config = store.load()
    assert config.default_cluster == "prod"
    prod = config.cluster("prod")
    assert (prod.strategy, prod.sticky) == ("priority", False)
    main = prod.account("main")
    assert main.base_url == "https://api.anthropic.com"
    assert main.credential == KEY
    assert (main.weight, main.priority, main.enabled) == (3, 1, True)
    assert dict(main.models) == {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}

    with store.edit() as doc:
        ops.set_account_enabled(doc, "prod", "main", False)
    assert not store.load().cluster("prod").account("main").enabled
    with store.edit() as doc:
        ops.remove_account(doc, "prod", "main")
        ops.remove_cluster(doc, "prod")
    assert store.load().clusters == {}
    assert store.load().default_cluster is None


def test_add_cluster_then_account_in_one_edit(config_path: Path) -> None:
    with ConfigStore(config_path).edit() as doc:
        ops.add_cluster(doc, "prod")
        ops.add_account(doc, "prod", "main", "https://api.anthropic.com", KEY)
    assert ConfigStore(config_path).load().cluster("prod").account("main")


def test_file_and_directory_modes(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "config.toml"
    with ConfigStore(path).edit() as doc:
        ops.add_cluster(doc, "prod")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_missing_parents_are_created_private(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "config.toml"
    old_umask = os.umask(0o022)
    try:
        atomic_write(path, "x = 1\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    return proc.pid


def _no_tmpfile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)


def _link_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)


WRITE_PATHS = {"default": lambda _: None, "no-O_TMPFILE": _no_tmpfile, "no-linkat": _link_refused}


@pytest.mark.parametrize("platform", list(WRITE_PATHS))
def test_temp_files_of_killed_writers_are_removed_on_the_next_write(
    config_path: Path, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    """A writer killed between writing its temp file and renaming it leaves secrets behind."""
    WRITE_PATHS[platform](monkeypatch)
    secret = b'api_key = "sk-ant-api03-LEFTOVERLEFTOVER-0000"\n'
    directory = config_path.parent
    dead = directory / f".config.toml.{_dead_pid()}.0badcafe.tmp"  # this version's name
    legacy = directory / ".config.toml.k3j_x9q2.tmp"  # 0.1's mkstemp name, an hour old
    fresh_legacy = directory / ".config.toml.abcd1234.tmp"  # maybe a 0.1 writer at work now
    live = directory / f".config.toml.{os.getpid()}.12345678.tmp"  # a writer at work now
    other = directory / f".usage-prod.json.{_dead_pid()}.0badcafe.tmp"  # another file's
    for leftover in (dead, legacy, fresh_legacy, live, other):
        leftover.write_bytes(secret)
    hour_ago = time.time() - 3600
    os.utime(legacy, (hour_ago, hour_ago))

    atomic_write(config_path, "[clusters.prod]\n")

    left = sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))
    assert left == sorted([fresh_legacy.name, live.name, other.name])
    assert config_path.read_text() == "[clusters.prod]\n"


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="Linux O_TMPFILE")
def test_data_is_never_in_a_named_temp_file_while_it_is_written(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed at any moment while writing, the writer leaves nothing: the file has no name yet."""
    seen: list[list[str]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # the data file, not the directory
            seen.append([p.name for p in config_path.parent.iterdir()])
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic_write(config_path, 'api_key = "sk-ant-api03-INFLIGHT-0000"\n' * 1000)
    assert seen and all(not any(n.endswith(".tmp") for n in names) for names in seen), seen
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_existing_loose_mode_is_tightened(config_path: Path) -> None:
    config_path.write_text("[clusters.prod]\n")
    config_path.chmod(0o644)
    with ConfigStore(config_path).edit() as doc:
        ops.add_account(doc, "prod", "main", "https://api.anthropic.com", KEY)
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


HAND_WRITTEN = """\
# My qcc config -- keep this comment
default_cluster = "prod"

[health]
failure_threshold = 5  # tuned by hand
ejection_base = 15

[clusters.prod]
strategy = "priority"  # failover order

[clusters.prod.accounts.old]
base_url = "https://api.anthropic.com"
api_key_env = "OLD_KEY"
probe = "models"
"""


def test_edit_keeps_comments_and_hand_written_keys(config_path: Path) -> None:
    config_path.write_text(HAND_WRITTEN)
    with ConfigStore(config_path).edit() as doc:
        ops.add_account(doc, "prod", "new", "https://relay.example.com", KEY)
    text = config_path.read_text()
    assert text.startswith(HAND_WRITTEN)
    assert "[clusters.prod.accounts.new]" in text
    config = ConfigStore(config_path).load()
    assert config.health.failure_threshold == 5
    assert config.cluster("prod").account("old").probe == "models"


def test_failing_edit_leaves_file_byte_identical(config_path: Path) -> None:
    config_path.write_text(HAND_WRITTEN)
    before = config_path.read_bytes()
    store = ConfigStore(config_path)
    with pytest.raises(RuntimeError), store.edit() as doc:
        ops.add_cluster(doc, "dev")
        raise RuntimeError("boom")
    with pytest.raises(NotFoundError), store.edit() as doc:
        ops.add_cluster(doc, "dev2")
        ops.remove_account(doc, "prod", "missing")
    assert config_path.read_bytes() == before
    assert sorted(p.name for p in config_path.parent.iterdir() if "tmp" in p.name) == []


def test_edit_that_breaks_validation_is_not_written(config_path: Path) -> None:
    config_path.write_text(HAND_WRITTEN)
    before = config_path.read_bytes()
    broken = pytest.raises(ConfigError, match=r"^proxy\.port: must be an integer")
    with broken, ConfigStore(config_path).edit() as doc:
        doc["proxy"] = {"port": 0}
    assert config_path.read_bytes() == before


def test_edit_refuses_a_broken_file(config_path: Path) -> None:
    config_path.write_text("default_cluster = \n")
    with pytest.raises(ConfigError, match="invalid TOML"), ConfigStore(config_path).edit():
        pass  # pragma: no cover - never reached
    assert config_path.read_text() == "default_cluster = \n"


def test_unreadable_path_is_a_config_error(config_path: Path) -> None:
    config_path.mkdir()
    with pytest.raises(ConfigError, match=r"cannot read config file \(Is a directory\)"):
        ConfigStore(config_path).load()


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code), *args]


ADD_MANY = """
    import sys
    from pathlib import Path
    from qcc.config import ops
    from qcc.config.model import Credential
    from qcc.config.store import ConfigStore, atomic_write

    store = ConfigStore(Path(sys.argv[1]))
    prefix = sys.argv[2]
    for i in range(20):
        with store.edit() as doc:
            ops.add_account(doc, "prod", f"{prefix}{i}", "https://api.anthropic.com",
                            Credential("api_key_env", "KEY"))
"""


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(config_path: Path) -> None:
    config_path.write_text("[clusters.prod]\n")
    procs = [
        subprocess.Popen(_python(ADD_MANY, str(config_path), prefix), stderr=subprocess.PIPE)
        for prefix in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
    accounts = ConfigStore(config_path).load().cluster("prod").accounts
    assert len(accounts) == 40
    assert {a.name for a in accounts} == {f"{p}{i}" for p in "ab" for i in range(20)}


WRITE_FOREVER = """
    import sys
    from pathlib import Path
    from qcc.config.store import atomic_write

    path, body = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
    print("ready", flush=True)
    generation = 0
    while True:
        generation += 1
        atomic_write(path, f"# generation {generation}\\n" + body)
"""

HOLD_LOCK = """
    import sys, time
    from pathlib import Path
    from qcc.config.store import ConfigStore, atomic_write

    with ConfigStore(Path(sys.argv[1])).edit():
        print("locked", flush=True)
        time.sleep(60)
"""


def _big_body() -> str:
    """~2 MB: long enough that a kill often lands inside the write itself."""
    padding = ("# " + "x" * 98 + "\n") * 20_000
    accounts = "".join(
        f'\n[clusters.big.accounts.a{i}]\nbase_url = "https://relay{i}.example.com"\n'
        f'api_key_env = "KEY_{i}"\n'
        for i in range(50)
    )
    return padding + 'default_cluster = "big"\n\n[clusters.big]\n' + accounts


def _spawn(code: str, *args: str, ready: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(_python(code, *args), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == ready + "\n"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.mark.slow
def test_sigkill_mid_write_never_corrupts(config_path: Path, tmp_path: Path) -> None:
    body = _big_body()
    body_file = tmp_path / "body.toml"
    body_file.write_text(body)
    config_path.write_text("# generation 0\n" + body)
    rng = random.Random(1234)
    generations = set()
    deadline = time.monotonic() + 2.5
    for _ in range(6):
        if time.monotonic() > deadline:
            break
        proc = _spawn(WRITE_FOREVER, str(config_path), str(body_file), ready="ready")
        time.sleep(rng.uniform(0.02, 0.15))
        _kill(proc)

        text = config_path.read_text()
        head, _, rest = text.partition("\n")
        assert rest == body, "the file is a mix of two writes"  # old or new, never partial
        assert re.fullmatch(r"# generation \d+", head)
        generations.add(head)
        config = ConfigStore(config_path).load()  # a stray temp file is never read as config
        assert len(config.cluster("big").accounts) == 50
        assert stat.S_IMODE(os.stat(config_path).st_mode) == 0o600
        for leftover in config_path.parent.iterdir():
            assert leftover.name == "config.toml" or (
                leftover.name.startswith(".config.toml.") and leftover.name.endswith(".tmp")
            ), leftover
    assert len(generations) >= 2  # the writers really were writing when killed
    atomic_write(config_path, "# after\n" + body)  # the next write sweeps the killed ones' files
    assert sorted(p.name for p in config_path.parent.iterdir()) == ["config.toml"]


@pytest.mark.slow
def test_lock_of_a_killed_process_is_released(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("qcc.config.store.LOCK_TIMEOUT", 5.0)
    config_path.write_text("[clusters.prod]\n")
    holder = _spawn(HOLD_LOCK, str(config_path), ready="locked")
    _kill(holder)
    with ConfigStore(config_path).edit() as doc:
        ops.add_account(doc, "prod", "after", "https://api.anthropic.com", KEY)
    assert ConfigStore(config_path).load().cluster("prod").account("after")


def test_lock_timeout_is_a_one_line_error(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("qcc.config.store.LOCK_TIMEOUT", 0.05)
    config_path.write_text("[clusters.prod]\n")
    locked = pytest.raises(ConfigError, match="another qcc process holds the config lock")
    with ConfigStore(config_path).edit(), locked, ConfigStore(config_path).edit():
        pass  # pragma: no cover - never reached
