"""Relaying an account's answer to the client, for one attempt of an
:class:`~qcc.proxy.forward.Exchange`.

A plain response is *committed* when its head goes to the client; a stream when its first content
(``content_block_delta``, or ``message_delta``/``message_stop`` for an empty answer) does: until
then ``message_start``, ``content_block_start`` and ``ping`` are held back (:func:`first_events`),
and any failure moves on to the next account, invisibly. After the commit (:func:`relay_stream`,
:func:`relay_body`) a failure ends the stream with an ``event: error`` (a plain body is cut off)
and counts against the account. The usage the answer carried is settled on the account either
way.

Each function is called once per attempt; the chunks are written as they come, with nothing
between the read and the write but the usage watcher.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from qcc.accounts.member import Member
from qcc.net.connection import Response
from qcc.net.errors import UpstreamError
from qcc.proxy import sse
from qcc.proxy.error_answer import error_kind
from qcc.proxy.failed import Failure
from qcc.routing.classify import Outcome

if TYPE_CHECKING:
    from qcc.proxy.forward import Exchange

PRECOMMIT_LIMIT = 1 << 20  # bytes of stream held back at most while waiting for its first content
NETWORK_ERRORS = (UpstreamError, OSError)
_HELD = frozenset({None, "message_start", "content_block_start", "ping"})  # before the commit
_STREAM_ERRORS = {
    "overloaded_error": Outcome.OVERLOADED,
    "rate_limit_error": Outcome.RATE_LIMITED,
    "authentication_error": Outcome.AUTH_FAILED,
    "permission_error": Outcome.AUTH_FAILED,
}


class ClientGone(Exception):
    """The client went away while its response was being relayed."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("client disconnected")
        self.response = response


async def _write(response: web.StreamResponse, chunk: bytes, *, eof: bool = False) -> None:
    try:
        if eof:
            await response.write_eof(chunk)
        else:
            await response.write(chunk)
    except ConnectionResetError:
        raise ClientGone(response) from None


class _Relay(web.StreamResponse):
    """A streamed response whose head goes out with its first body bytes: one send, not two.

    (aiohttp's own ``web.Response`` does the same; if a future aiohttp drops the attribute, the
    head is simply sent on its own again.)
    """

    _send_headers_immediately = False


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a network error (never the request headers)."""
    if isinstance(exc, UpstreamError):
        return exc.describe
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    return type(exc).__name__


async def first_events(
    ex: Exchange, member: Member, upstream: Response, deadline: float
) -> bytes | Failure:
    """Hold the stream back until its first content; fail over on anything before it.

    Events are parsed only until then (and the held bytes are bounded by PRECOMMIT_LIMIT);
    ``message_start`` gives the prompt's usage.
    """
    buf = b""
    pos = 0
    while True:
        chunk = await upstream.read(deadline)
        if not chunk:
            return ex.fail(member, Outcome.STREAM_ERROR, "stream ended before its content")
        buf += chunk
        while (event := sse.next_event(buf, pos)) is not None:
            name, data, pos = event
            if name in _HELD:
                if name == "message_start":
                    ex.usage = sse.usage_numbers(data)
                continue
            if name == "error":
                kind = error_kind(sse.error_type(data)) or "error"
                outcome = _STREAM_ERRORS.get(kind, Outcome.STREAM_ERROR)
                # No cool-down announced: health.rate_limit_default applies.
                return ex.fail(member, outcome, f"stream began with {kind}")
            return buf  # content (or an event qcc does not know): commit
        if len(buf) > PRECOMMIT_LIMIT:
            return buf


# ---- relaying a committed response -------------------------------------------------------


async def relay_stream(
    ex: Exchange,
    member: Member,
    upstream: Response,
    headers: CIMultiDict[str],
    buffered: bytes,
) -> tuple[web.StreamResponse, bool]:
    """Relay a committed stream; True with it if the account broke it off."""
    response = _Relay(status=upstream.status, reason=upstream.reason, headers=headers)
    await response.prepare(ex.request)
    loop = asyncio.get_running_loop()
    ex.first_byte = loop.time()
    watcher = sse.StreamWatcher()
    idle = ex.rt.config.timeouts.stream_idle
    ended_by = ""
    # Whatever has arrived goes out in one write; the head goes with the first one and the
    # end of the body with the last (a short stream can be a single send).
    chunk = buffered + upstream.ready()
    try:
        while True:
            watcher.feed(chunk)
            if upstream.at_eof():
                break
            await _write(response, chunk)
            chunk = await upstream.read(loop.time() + idle)
            if not chunk:
                break
    except TimeoutError:
        ended_by = f"account {member.name} went silent mid-stream"
        chunk = b""
    except NETWORK_ERRORS as exc:
        ended_by = f"account {member.name} dropped the stream ({describe(exc)})"
        chunk = b""
    except BaseException:  # the client left (ClientGone, or the handler was cancelled)
        ex.settle(member, watcher.usage)
        raise
    if not ended_by and not watcher.stopped:
        ended_by = f"account {member.name} ended the stream before message_stop"
    ex.settle(member, watcher.usage)
    if ended_by:
        ex.fail(member, Outcome.STREAM_ERROR, ended_by, committed=True)
        chunk += sse.error_event("api_error", f"qcc: {ended_by}")
    await _write(response, chunk, eof=True)
    return response, bool(ended_by)


async def relay_body(
    ex: Exchange,
    member: Member,
    upstream: Response,
    headers: CIMultiDict[str],
    prefix: bytes = b"",
) -> tuple[web.StreamResponse, bool]:
    """Relay a plain response; True with it if the account broke it off mid-body.
    ``prefix``: the body's first bytes, already read (an error answer's), sent first."""
    tail = sse.BodyTail(headers.get("content-encoding", "identity").lower())
    if upstream.status >= 300:
        tail.readable = False
    first = prefix + upstream.ready() if prefix else upstream.ready()
    loop = asyncio.get_running_loop()
    ex.first_byte = loop.time()
    if upstream.at_eof():
        # The whole body came with the head (the usual small answer): aiohttp sends the
        # head and body in one write once the handler returns it.
        tail.feed(first)
        whole = web.Response(
            status=upstream.status, reason=upstream.reason, headers=headers, body=first
        )
        ex.settle(member, tail.usage())
        return whole, False
    response = _Relay(status=upstream.status, reason=upstream.reason, headers=headers)
    length = upstream.content_length
    if length is not None:
        response.content_length = length
    await response.prepare(ex.request)
    idle = ex.rt.config.timeouts.first_byte
    chunk = first
    try:
        while True:
            tail.feed(chunk)
            if upstream.at_eof():
                break  # the last bytes go out with the end of the body
            if chunk:
                await _write(response, chunk)
            chunk = await upstream.read(loop.time() + idle)
            if not chunk:
                break
    except (TimeoutError, *NETWORK_ERRORS) as exc:
        # Committed: nothing can be replaced now. The client must see a broken body, never
        # a short one that looks complete: a chunked body would get its final chunk from
        # write_eof, so the connection is dropped instead (the SDKs raise a connection
        # error, which they retry).
        reason = f"account {member.name} broke off its response ({describe(exc)})"
        ex.fail(member, Outcome.NETWORK, reason, committed=True)
        ex.settle(member)
        response.force_close()
        transport = ex.request.transport
        if transport is not None:
            transport.abort()
        return response, True
    await _write(response, chunk, eof=True)
    ex.settle(member, tail.usage())
    return response, False
