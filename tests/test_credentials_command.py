"""Credential helper commands (issue 15): run without a terminal, bounded, never leaking stdout;
a :class:`CredentialSource` caches the value for its TTL and refreshes it in one flight."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path

import pytest

from qcc.config.model import Credential
from qcc.credentials.command import run_command
from qcc.credentials.keeper import source_for
from qcc.credentials.source import CredentialSource, FetchError, RefreshResult
from qcc.errors import CredentialError
from qcc.routing.classify import Outcome

SECRET = "sk-ant-api03-COMMANDSECRETCOMMANDSECRET-c0c0"


def script(tmp_path: Path, body: str, name: str = "helper.sh") -> str:
    """A shell script that counts its runs in ``runs`` and then runs ``body``; its command."""
    path = tmp_path / name
    path.write_text(f'#!/bin/sh\necho run >> "{tmp_path}/runs"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return f"sh {path}"


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that never comes, in a container, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat_file = Path(f"/proc/{pid}/stat")
    if stat_file.exists():
        with contextlib.suppress(OSError):
            return stat_file.read_text().rpartition(")")[2].split()[0] != "Z"
    return True


# ---- running the command ------------------------------------------------------------------


async def test_output_minus_one_final_newline_is_the_secret(tmp_path: Path) -> None:
    assert await run_command(script(tmp_path, f"echo {SECRET}")) == SECRET
    assert await run_command(script(tmp_path, f"printf '{SECRET}'")) == SECRET  # no newline


async def test_crlf_output_is_stripped_once(tmp_path: Path) -> None:
    assert await run_command(script(tmp_path, f"printf '{SECRET}\\r\\n'")) == SECRET
    with pytest.raises(CredentialError, match="line break") as caught:
        await run_command(script(tmp_path, f"printf '{SECRET}\\n\\n'"))  # only one is removed
    assert SECRET not in str(caught.value)


async def test_pipes_work_through_the_shell(tmp_path: Path) -> None:
    assert await run_command(f"echo 'x {SECRET} y' | cut -d' ' -f2") == SECRET


async def test_nonzero_exit_names_status_and_first_stderr_line_never_stdout(
    tmp_path: Path,
) -> None:
    body = (
        f"echo {SECRET}\n"
        "echo 'op: not signed in (token sk-ant-api03-LEAKEDLEAKEDLEAKED-0000)' >&2\n"
        "echo 'second line' >&2\nexit 3"
    )
    with pytest.raises(CredentialError) as caught:
        await run_command(script(tmp_path, body))
    message = str(caught.value)
    assert "exited with status 3" in message
    assert "op: not signed in" in message
    assert "second line" not in message
    assert SECRET not in message
    assert "LEAKED" not in message  # scrubbed: shaped like a key


async def test_empty_output_fails(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="printed nothing"):
        await run_command(script(tmp_path, "true"))
    with pytest.raises(CredentialError, match="printed nothing"):
        await run_command(script(tmp_path, "echo"))


async def test_no_terminal_stdin_is_devnull(tmp_path: Path) -> None:
    # A helper that would prompt reads end-of-file at once instead of hanging.
    body = "read answer || answer=eof\necho $answer"
    assert await run_command(script(tmp_path, body), timeout=5) == "eof"


async def test_timeout_kills_the_command_and_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    body = f"sleep 30 &\necho $! > {pid_file}\nwait"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(CredentialError, match=r"did not finish within 0\.3s"):
        await run_command(script(tmp_path, body), timeout=0.3)
    assert loop.time() - started < 2
    child = int(pid_file.read_text())
    for _ in range(100):  # the kill is sent; the child goes within a moment
        if not alive(child):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the command's child outlived the timeout")


# ---- the source: TTL, single flight -------------------------------------------------------


def command_source(tmp_path: Path, body: str, ttl: float, clock: Clock) -> CredentialSource:
    credential = Credential("api_key_command", script(tmp_path, body), ttl=ttl)
    source = source_for(credential, "c", "a", clock=clock)
    assert source is not None
    return source


async def test_value_is_cached_for_its_ttl(tmp_path: Path) -> None:
    clock = Clock()
    source = command_source(tmp_path, f"echo {SECRET}", 300, clock)
    assert await source.fresh(clock.now, 5) == ("x-api-key", SECRET)
    clock.now += 299
    assert await source.fresh(clock.now, 5) == ("x-api-key", SECRET)
    assert runs(tmp_path) == 1
    assert not source.due(clock.now - 60)  # before 80% of its life: nothing to do
    assert source.due(clock.now)  # the background refreshes it before it expires
    clock.now += 1
    assert source.current(clock.now) is None  # stale
    await source.fresh(clock.now, 5)
    assert runs(tmp_path) == 2


async def test_auth_token_command_is_sent_as_bearer(tmp_path: Path) -> None:
    credential = Credential("auth_token_command", script(tmp_path, "echo tok-123456789"))
    source = source_for(credential, "c", "a")
    assert source is not None
    assert await source.fresh(0, 5) == ("authorization", "Bearer tok-123456789")


async def test_fifty_concurrent_refetches_run_the_command_once(tmp_path: Path) -> None:
    clock = Clock()
    key = tmp_path / "key"
    key.write_text("old-key-0000000000\n")
    source = command_source(tmp_path, f"sleep 0.1\ncat {key}", 300, clock)
    used = await source.fresh(clock.now, 5)
    key.write_text("new-key-1111111111\n")
    got = await asyncio.gather(*(source.refetch(used, clock.now, 5) for _ in range(50)))
    assert set(got) == {("x-api-key", "new-key-1111111111")}
    assert runs(tmp_path) == 2  # the first fetch, and one for all fifty
    # A request refused with the old value after the refetch gets the new one, no new run.
    assert await source.refetch(used, clock.now, 5) == ("x-api-key", "new-key-1111111111")
    assert runs(tmp_path) == 2


async def test_failed_refresh_is_reported_once_and_not_run_again_at_once(tmp_path: Path) -> None:
    clock = Clock()
    source = command_source(tmp_path, "echo 'vault: permission denied' >&2\nexit 2", 300, clock)
    seen: list[RefreshResult] = []
    source.listener = seen.append
    results = await asyncio.gather(
        *(source.fresh(clock.now, 5) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, FetchError) for r in results)
    assert len(seen) == 1 and seen[0].error is not None
    assert seen[0].error.outcome is Outcome.AUTH_FAILED
    assert "status 2: vault: permission denied" in str(seen[0].error)
    with pytest.raises(FetchError):  # within the backoff: the same error, no new run
        await source.fresh(clock.now, 5)
    assert runs(tmp_path) == 1
    clock.now = source.retry_at
    with pytest.raises(FetchError):
        await source.fresh(clock.now, 5)
    assert runs(tmp_path) == 2
    assert source.last_result().startswith("failed: credential command exited with status 2")


async def test_no_deadlock_when_a_refresh_is_asked_for_while_one_is_awaited(
    tmp_path: Path,
) -> None:
    """The tool qcc grew from re-entered its own asyncio.Lock here: a 401 refetch (and a
    listener asking for a refresh) arriving while a TTL refresh is being awaited."""
    clock = Clock()
    gate = tmp_path / "gate"
    source = command_source(
        tmp_path, f"while [ ! -e {gate} ]; do sleep 0.01; done\necho {SECRET}", 300, clock
    )
    inner: list[asyncio.Task[tuple[str, str]]] = []

    def listener(result: RefreshResult) -> None:
        # Runs inside the refresh: asking for another must not await the one running.
        inner.append(source.refresh())

    source.listener = listener
    async with asyncio.timeout(5):
        waiting = asyncio.ensure_future(source.fresh(clock.now, 5))
        await asyncio.sleep(0.05)
        refetching = asyncio.ensure_future(source.refetch(("x-api-key", "old"), clock.now, 5))
        again = asyncio.ensure_future(source.fresh(clock.now, 5))
        await asyncio.sleep(0.05)
        gate.write_text("open")
        assert await waiting == await refetching == await again == ("x-api-key", SECRET)
        source.listener = None
        assert await inner[0] == ("x-api-key", SECRET)  # the listener's own: a new run
    assert runs(tmp_path) == 2


async def test_a_waiter_that_gives_up_does_not_cancel_the_refresh(tmp_path: Path) -> None:
    clock = Clock()
    source = command_source(tmp_path, f"sleep 0.3\necho {SECRET}", 300, clock)
    with pytest.raises(TimeoutError):
        await source.fresh(clock.now, 0.05)
    assert source.refreshing
    assert await source.fresh(clock.now, 5) == ("x-api-key", SECRET)
    assert runs(tmp_path) == 1
