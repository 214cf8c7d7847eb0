"""Run an account's credential helper (``api_key_command`` / ``auth_token_command``).

The command runs through the user's shell (so pipes work) without a terminal: stdin is
``/dev/null`` and it gets a session of its own, so a helper that wants to prompt fails instead of
hanging, and a timeout kills it together with everything it started. Its stdout, minus one final
line break, is the secret; it is checked like any credential and never appears in an error: a
failure names the exit status and the first line of stderr, scrubbed of anything secret-shaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from qcc.config.model import check_header_value
from qcc.errors import CredentialError
from qcc.redact import scrub

COMMAND_TIMEOUT = 30.0
_STDERR_SHOWN = 200  # characters of stderr's first line in an error


async def run_command(command: str, timeout: float = COMMAND_TIMEOUT) -> str:  # noqa: ASYNC109
    """The secret ``command`` prints; :class:`CredentialError` when it fails, times out or
    prints nothing usable. Bounded by ``timeout`` (the process group is killed after it)."""
    proc = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        await _kill(proc)
        raise CredentialError(
            f"credential command did not finish within {timeout:g}s; run it by hand to see why"
        ) from None
    except BaseException:  # cancelled: the command must not outlive its caller
        await _kill(proc)
        raise
    text = out.decode("utf-8", errors="surrogateescape")
    if proc.returncode != 0:
        raise CredentialError(
            f"credential command exited with status {proc.returncode}{_stderr(err, text)}"
        )
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise CredentialError(f"credential command printed nothing{_stderr(err, text)}")
    check_header_value(text, "output of the credential command")
    return text


def _stderr(err: bytes, stdout: str) -> str:
    """``: <first line of stderr>``, scrubbed of the output and of anything key-shaped."""
    for line in err.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            shown = scrub(line.strip(), [stdout.strip()])[:_STDERR_SHOWN]
            return f": {shown}"
    return " (nothing on stderr)"


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == pid
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await proc.wait()
