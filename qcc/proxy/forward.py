"""Forwarding one client request: select account → build its request → send → relay or fail over.

The order is the lesson of the tools before qcc: every per-account setting (credential, model
rename, base URL) is read from the account *selected for this attempt*.

A response is *committed* when its first byte goes to the client. Before that, any failure moves
on to the next account; after it, a failure ends the stream with an ``event: error``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from qcc.net.client import render_head
from qcc.net.connection import Response
from qcc.net.errors import ConnectTimeout, UpstreamError
from qcc.proxy import sse
from qcc.proxy.admin import unauthorized
from qcc.proxy.messages import (
    downstream_headers,
    error_body,
    rename_model,
    upstream_headers,
    wants_stream,
)
from qcc.proxy.pool import Member
from qcc.proxy.runtime import RUNTIME_KEY, Runtime
from qcc.routing.classify import Outcome, classify_status, cooldown_seconds, fails_over
from qcc.routing.sticky import session_key

log = logging.getLogger("qcc.proxy")

PRECOMMIT_LIMIT = 1 << 20  # bytes of stream held back at most while waiting for message_start
_NETWORK_ERRORS = (UpstreamError, OSError)


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


@dataclass(slots=True)
class Failure:
    """One attempt that failed over."""

    account: str
    outcome: Outcome
    reason: str
    status: int | None = None


@dataclass(slots=True)
class Done:
    """One attempt that answered the client (success, or a client error passed through)."""

    account: str
    response: web.StreamResponse
    status: int
    ttfb: float | None
    usage: dict[str, int]


class Exchange:
    """The life of one client request across one or more attempts."""

    def __init__(self, runtime: Runtime, request: web.Request, body: bytes) -> None:
        self.rt = runtime
        self.request = request
        self.body = body
        self.stream = request.method == "POST" and wants_stream(body)
        self.failures: list[Failure] = []
        self.rid = f"{runtime.requests:06x}"

    async def run(self) -> web.StreamResponse:
        rt, loop = self.rt, asyncio.get_running_loop()
        pool = rt.pool
        started = loop.time()
        session = session_key(self.request.headers, self.body) if pool.cluster.sticky else None
        rt.budget.record_request(started)
        tried: set[str] = set()
        budget_exhausted = False
        result: Done | None = None
        while True:
            now = loop.time()
            member = pool.select(tried, now, session)
            if member is None:
                break
            if tried and not rt.budget.try_spend(now):
                budget_exhausted = True
                break
            tried.add(member.name)
            try:
                outcome = await self.attempt(member)
            except ClientGone as gone:
                log.info("client went away mid-response; upstream request cancelled")
                return gone.response
            if isinstance(outcome, Done):
                pool.remember_session(session, member, loop.time())
                result = outcome
                break
            self.failures.append(outcome)
        duration = loop.time() - started
        if result is None:
            response = await self.all_failed(budget_exhausted)
            self.log(None, response.status, None, duration, {})
            return response
        self.log(result.account, result.status, result.ttfb, duration, result.usage)
        return result.response

    # ---- one attempt ---------------------------------------------------------------------

    async def attempt(self, member: Member) -> Done | Failure:
        rt, loop = self.rt, asyncio.get_running_loop()
        assert member.header is not None
        account = member.account
        client = rt.client
        origin = client.route(account)
        data = rename_model(self.body, account.models) if account.models else self.body
        method = self.request.method
        head = render_head(
            method,
            origin.prefix + self.request.raw_path,
            origin.host_header,
            upstream_headers(self.request.headers, member.header, identity=self.stream),
            len(data),
        )
        timeouts = rt.config.timeouts
        # A stream must show its first event within stream_first_byte; a plain response its
        # head within first_byte (the whole generation happens before it).
        head_limit = timeouts.stream_first_byte if self.stream else timeouts.first_byte
        started = loop.time()
        deadline = started + head_limit
        rt.pool.begin(member, started)
        upstream: Response | None = None
        try:
            upstream = await client.request(
                origin, method, head, data, connect_timeout=timeouts.connect, deadline=deadline
            )
            ttfb = loop.time() - started
            outcome = classify_status(upstream.status)
            if fails_over(outcome):
                return await self._failed_status(member, upstream, outcome)
            headers = downstream_headers(upstream.pairs)
            ctype = headers.get("content-type", "")
            if outcome is Outcome.SUCCESS and ctype.startswith("text/event-stream"):
                first = await self._first_events(member, upstream, deadline)
                if isinstance(first, Failure):
                    return first
                buffered, usage = first
                ttfb = loop.time() - started
                rt.pool.record_success(member, loop.time(), ttfb)
                response = await self._relay_stream(member, upstream, headers, buffered, usage)
                return Done(member.name, response, upstream.status, ttfb, usage)
            if outcome is Outcome.SUCCESS:
                rt.pool.record_success(member, loop.time(), ttfb)
            else:
                rt.pool.record_client_error(member, loop.time(), ttfb)
            body_response, usage = await self._relay_body(member, upstream, headers)
            return Done(member.name, body_response, upstream.status, ttfb, usage)
        except TimeoutError as exc:
            if isinstance(exc, ConnectTimeout):
                reason = str(exc)  # names the limit, and the proxy or busy slots if those
            else:
                what = "first event" if self.stream else "response"
                reason = f"no {what} within {head_limit:g}s"
            return self._fail(member, Outcome.TIMEOUT, reason)
        except _NETWORK_ERRORS as exc:
            return self._fail(member, Outcome.NETWORK, _describe(exc))
        finally:
            rt.pool.end(member)
            if upstream is not None:
                upstream.release() if upstream.at_eof() else upstream.close()

    def _fail(
        self,
        member: Member,
        outcome: Outcome,
        reason: str,
        status: int | None = None,
        cooldown: float | None = None,
    ) -> Failure:
        now = asyncio.get_running_loop().time()
        self.rt.pool.record_failure(member, outcome, reason, now, time.time(), cooldown)
        log.warning("account %s failed (%s): %s; failing over", member.name, outcome, reason)
        return Failure(member.name, outcome, reason, status)

    async def _failed_status(self, member: Member, upstream: Response, outcome: Outcome) -> Failure:
        detail = ""
        try:
            raw = await upstream.read(asyncio.get_running_loop().time() + 2.0)
            error = sse.parse_data(raw[:2048]).get("error")
            if isinstance(error, dict):
                detail = str(error.get("message", ""))[:200]
        except (TimeoutError, *_NETWORK_ERRORS):
            pass
        reason = f"HTTP {upstream.status}" + (f" {detail}" if detail else "")
        cooldown = None
        if outcome is Outcome.RATE_LIMITED:
            cooldown = cooldown_seconds(upstream.headers, time.time(), default=30.0)
        return self._fail(member, outcome, reason, upstream.status, cooldown)

    async def _first_events(
        self, member: Member, upstream: Response, deadline: float
    ) -> tuple[bytes, dict[str, int]] | Failure:
        """Read until the event that carries the message; fail over on anything before it."""
        buf = b""
        pos = 0
        while True:
            chunk = await upstream.read(deadline)
            if not chunk:
                return self._fail(member, Outcome.STREAM_ERROR, "stream ended before any event")
            buf += chunk
            while (event := sse.next_event(buf, pos)) is not None:
                name, data, pos = event
                if name is None or name == "ping":
                    continue
                if name == "error":
                    kind = sse.error_type(data) or "error"
                    outcome = {
                        "overloaded_error": Outcome.OVERLOADED,
                        "rate_limit_error": Outcome.RATE_LIMITED,
                        "authentication_error": Outcome.AUTH_FAILED,
                        "permission_error": Outcome.AUTH_FAILED,
                    }.get(kind, Outcome.STREAM_ERROR)
                    cooldown = 30.0 if outcome is Outcome.RATE_LIMITED else None
                    return self._fail(
                        member, outcome, f"stream began with {kind}", cooldown=cooldown
                    )
                usage = sse.usage_numbers(data) if name == "message_start" else {}
                return buf, usage
            if len(buf) > PRECOMMIT_LIMIT:
                return buf, {}

    # ---- relaying a committed response ---------------------------------------------------

    async def _relay_stream(
        self,
        member: Member,
        upstream: Response,
        headers: CIMultiDict[str],
        buffered: bytes,
        usage: dict[str, int],
    ) -> web.StreamResponse:
        response = _Relay(status=upstream.status, reason=upstream.reason, headers=headers)
        await response.prepare(self.request)
        watcher = sse.StreamWatcher()
        idle = self.rt.config.timeouts.stream_idle
        loop = asyncio.get_running_loop()
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
        except _NETWORK_ERRORS as exc:
            ended_by = f"account {member.name} dropped the stream ({_describe(exc)})"
            chunk = b""
        if not ended_by and not watcher.stopped:
            ended_by = f"account {member.name} ended the stream before message_stop"
        usage.update(watcher.usage)
        member.stats.usage.add(usage)
        if ended_by:
            now = loop.time()
            self.rt.pool.record_failure(member, Outcome.STREAM_ERROR, ended_by, now, time.time())
            log.warning("%s after the response was committed; ending it with an error", ended_by)
            chunk += sse.error_event("api_error", f"qcc: {ended_by}")
        await _write(response, chunk, eof=True)
        return response

    async def _relay_body(
        self, member: Member, upstream: Response, headers: CIMultiDict[str]
    ) -> tuple[web.StreamResponse, dict[str, int]]:
        tail = sse.BodyTail(headers.get("content-encoding", "identity").lower())
        if upstream.status >= 300:
            tail.readable = False
        first = upstream.ready()
        if upstream.at_eof():
            # The whole body came with the head (the usual small answer): aiohttp sends the
            # head and body in one write once the handler returns it.
            tail.feed(first)
            whole = web.Response(
                status=upstream.status, reason=upstream.reason, headers=headers, body=first
            )
            usage = tail.usage()
            member.stats.usage.add(usage)
            return whole, usage
        response = _Relay(status=upstream.status, reason=upstream.reason, headers=headers)
        length = upstream.content_length
        if length is not None:
            response.content_length = length
        await response.prepare(self.request)
        idle = self.rt.config.timeouts.first_byte
        loop = asyncio.get_running_loop()
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
        except (TimeoutError, *_NETWORK_ERRORS) as exc:
            # Committed: nothing can be replaced now. Close, so the client sees the break.
            reason = f"account {member.name} broke off its response ({_describe(exc)})"
            self.rt.pool.record_failure(member, Outcome.NETWORK, reason, loop.time(), time.time())
            log.warning("%s after it was committed", reason)
            response.force_close()
            return response, {}
        await _write(response, chunk, eof=True)
        usage = tail.usage()
        member.stats.usage.add(usage)
        return response, usage

    # ---- when nothing worked -------------------------------------------------------------

    async def all_failed(self, budget_exhausted: bool) -> web.Response:
        rt = self.rt
        loop = asyncio.get_running_loop()
        now = loop.time()
        failures = self.failures
        total = len(rt.pool.members)
        headers: dict[str, str] = {}
        recovery = rt.pool.soonest_recovery(now)
        if recovery is not None and recovery > now:
            headers["retry-after"] = str(max(1, round(recovery - now)))
        headers["x-should-retry"] = "false" if recovery is None else "true"
        outcomes = {f.outcome for f in failures}
        if failures and outcomes == {Outcome.RATE_LIMITED}:
            status, kind = 429, "rate_limit_error"
        elif Outcome.OVERLOADED in outcomes and Outcome.AUTH_FAILED not in outcomes:
            status, kind = 529, "overloaded_error"
        else:
            status, kind = 503, "api_error"
        cluster = rt.pool.cluster.name
        if not failures:
            message = (
                f"qcc: no account of cluster '{cluster}' can serve right now "
                f"({total} configured, {rt.pool.usable_count(now)} available)"
            )
        else:
            why = "; ".join(f"{f.account}: {f.reason}" for f in failures)
            message = f"qcc: all {len(failures)} accounts tried failed ({why})"
            if len(failures) < total:
                message = f"qcc: {len(failures)} of {total} accounts tried, all failed ({why})"
            if budget_exhausted:
                message += "; retry budget exhausted, so no further account was tried"
        return web.Response(
            status=status,
            body=error_body(kind, message),
            content_type="application/json",
            headers=headers,
        )

    def log(
        self,
        account: str | None,
        status: int,
        ttfb: float | None,
        duration: float,
        usage: dict[str, int],
    ) -> None:
        attempts = ",".join(f"{f.account}:{f.outcome}" for f in self.failures) or "-"
        first = "-" if ttfb is None else f"{ttfb * 1000:.1f}"
        get = usage.get
        self.rt.access(
            f"rid={self.rid} cluster={self.rt.pool.cluster.name} method={self.request.method} "
            f"path={self.request.raw_path.partition('?')[0]} account={account or '-'} "
            f"status={status} "
            f"failed_over={attempts} ttfb_ms={first} duration_ms={duration * 1000:.1f} "
            f"stream={self.stream} in={get('input_tokens', 0)} out={get('output_tokens', 0)} "
            f"cache_read={get('cache_read_input_tokens', 0)} "
            f"cache_write={get('cache_creation_input_tokens', 0)}"
        )


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a network error (never the request headers)."""
    if isinstance(exc, UpstreamError):
        return exc.describe
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    return type(exc).__name__


async def handle_api(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME_KEY]
    runtime.requests += 1
    if not runtime.authorized(request):
        return unauthorized()
    body = await request.read()
    return await Exchange(runtime, request, body).run()
