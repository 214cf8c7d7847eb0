"""Forwarding one client request: select account → fresh credential → build → send → decide.

:class:`Exchange` is one client request across its attempts. The order is the lesson of the tools
before qcc: every per-account setting (credential, model rename, base URL) is read from the
account *selected for this attempt*. A credential fetched while running (command, OAuth2) is made
fresh first if it is stale (one shared refresh, bounded by the connect timeout); a 401/403 from
such an account fetches it again once, and the request may go to the same account once more with
the new one.

Until the answer is committed (its head, or a stream's first content: :mod:`qcc.proxy.relay`),
any failure moves on to the next account, invisibly; after it, a failure counts against the
account and the client sees the answer broken off. Success is recorded when the response
completes.

An error answer (4xx/5xx; never a 2xx) has its first 16 KB read and judged by the cluster's rule
table first (:mod:`qcc.proxy.error_answer`): it fails over (out of credit, disabled, rate limited,
a capability the account lacks, or a status that fails over anyway), or it is relayed to the
client as it came, those first bytes and then the rest.

Every request leaves one access line (``outcome=ok|broken|client_closed|failed``). Everything an
account says that qcc keeps or logs is scrubbed of its credential and of the client's key first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiohttp import web

from qcc.accounts.member import Member
from qcc.accounts.observe import Observation, Source
from qcc.credentials.source import CredentialSource
from qcc.errors import CredentialError
from qcc.net.client import render_head
from qcc.net.connection import Response
from qcc.net.errors import ConnectTimeout, UpstreamError
from qcc.proxy.activity import record as record_activity
from qcc.proxy.error_answer import READ_SECONDS, ErrorAnswer, read_answer
from qcc.proxy.failed import Failure, all_failed
from qcc.proxy.guard import CALLER, TARGET, VIEW, renamed_body
from qcc.proxy.messages import downstream_headers, upstream_headers, wants_stream
from qcc.proxy.relay import (
    NETWORK_ERRORS,
    ClientGone,
    describe,
    first_events,
    relay_body,
    relay_stream,
)
from qcc.proxy.runtime import RUNTIME_KEY, Runtime
from qcc.routing.classify import Outcome, fails_over, rest_seconds
from qcc.routing.ratelimit import parse_limits
from qcc.routing.sticky import session_key

log = logging.getLogger("qcc.proxy")


@dataclass(slots=True)
class Done:
    """One attempt that answered the client (success, or a client error passed through).

    ``outcome`` is ``ok``, or ``broken`` when the account broke off after the commit.
    """

    account: str
    response: web.StreamResponse
    status: int
    outcome: str


class Exchange:
    """The life of one client request across one or more attempts."""

    # A 401/403 from an account whose credential is fetched (command, OAuth2): the answer and
    # the header it refused, until the credential is fetched again (once per request). Class
    # defaults: nothing is set per request unless it happens.
    refused: tuple[Response, ErrorAnswer, tuple[str, str]] | None = None
    refetched = False

    def __init__(self, runtime: Runtime, request: web.Request, body: bytes) -> None:
        self.rt = runtime
        self.request = request
        self.body = body  # forwarded as the client sent it
        self.view = request.get(VIEW, body)  # read for the stream flag, sticky key, rename
        self.stream = request.method == "POST" and wants_stream(self.view)
        self.failures: list[Failure] = []
        self.rid = f"{runtime.requests:06x}"
        self.started = 0.0  # loop time the client's request began here
        self.first_byte: float | None = None  # loop time the response was committed
        self.deadline: float | None = None  # when the attempt in progress times out, pre-commit
        self.usage: dict[str, int] = {}  # of the attempt in progress
        self.settled = False  # its usage was added to the account's stats

    async def run(self) -> web.StreamResponse:
        rt, loop = self.rt, asyncio.get_running_loop()
        pool = rt.pool
        started = self.started = loop.time()
        session = session_key(self.request.headers, self.view) if pool.cluster.sticky else None
        if session is not None and rt.shared is not None:  # [shared]: another instance's session?
            await rt.shared.recall(session)
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
                self.client_closed(member)
                return gone.response
            except asyncio.CancelledError:  # aiohttp cancels the handler when the client leaves
                self.client_closed(member)
                raise
            if isinstance(outcome, Done):
                pool.remember_session(session, member, loop.time())
                result = outcome
                break
            self.failures.append(outcome)
            if self.refused is not None and await self._refetched(member):
                tried.discard(member.name)  # the same account may serve it, once, with the new one
        duration = loop.time() - started
        if result is None:
            self.usage = {}  # a failed attempt's usage is not this request's
            response = all_failed(pool, self.failures, loop.time(), budget_exhausted)
            self.log(None, response.status, "failed", duration)
            return response
        self.log(result.account, result.status, result.outcome, duration)
        return result.response

    def client_closed(self, member: Member) -> None:
        """The client went away: account for the attempt in progress, and log it as a 499.

        The usage that had arrived is recorded; an attempt already past its deadline (the timer
        had not fired yet) counts against the account, as the timeout would have.
        """
        now = asyncio.get_running_loop().time()
        self.settle(member)
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            waited = now - self.started
            self.fail(member, Outcome.TIMEOUT, f"no answer after {waited:.1f}s (client gave up)")
        log.info("client closed the connection; request to account %s cancelled", member.name)
        self.log(member.name, 499, "client_closed", now - self.started)

    def settle(self, member: Member, more: dict[str, int] | None = None) -> None:
        """Add the attempt's usage (and ``more`` of it) to the account's stats, once."""
        if more:
            self.usage.update(more)
        if not self.settled:
            self.settled = True
            member.stats.usage.add(self.usage)
            if self.usage and (ledger := self.rt.ledger) is not None:
                now = asyncio.get_running_loop().time()
                caller = self.request.get(CALLER, "")  # a member key's name, for its usage
                ledger.record(member, self.view, self.usage, now, time.time(), caller)

    # ---- one attempt ---------------------------------------------------------------------

    async def attempt(self, member: Member) -> Done | Failure:
        rt, loop = self.rt, asyncio.get_running_loop()
        header = member.header
        if member.source is not None and loop.time() >= member.source.stale_at:
            fresh = await self._fresh_header(member, member.source)
            if isinstance(fresh, Failure):
                return fresh
            header = fresh
        assert header is not None
        account = member.account
        client = rt.client
        origin = client.route(account)
        data = self.body
        if account.models:
            data = renamed_body(data, self.view, self.request.headers, account.models)
        method = self.request.method
        head = render_head(
            method,
            origin.prefix + self.request[TARGET],
            origin.host_header,
            upstream_headers(self.request.headers, header, identity=self.stream),
            len(data),
        )
        timeouts = rt.config.timeouts
        # A stream must show its first event within stream_first_byte; a plain response its
        # head within first_byte (the whole generation happens before it).
        head_limit = timeouts.stream_first_byte if self.stream else timeouts.first_byte
        started = loop.time()
        deadline = self.deadline = started + head_limit
        self.usage, self.settled = {}, False
        trial = rt.pool.begin(member, started)
        upstream: Response | None = None
        try:
            upstream = await client.request(
                origin, method, head, data, connect_timeout=timeouts.connect, deadline=deadline
            )
            ttfb = loop.time() - started
            if (limits := parse_limits(upstream.pairs)) is not None:  # None: no such headers
                rt.pool.note_limits(member, limits, loop.time(), time.time())
            status = upstream.status
            outcome, prefix, rule = Outcome.SUCCESS, b"", ""
            if status >= 400:  # only an error answer's body is read before it is relayed
                answer = await read_answer(
                    upstream, rt.pool.cluster.rules, loop.time() + READ_SECONDS
                )
                outcome, prefix, rule = answer.outcome, answer.prefix, answer.rule
                if fails_over(outcome):
                    if (
                        outcome is Outcome.AUTH_FAILED
                        and member.source is not None
                        and not self.refetched
                    ):  # the credential may have changed: fetch it again, then decide
                        self.refused = (upstream, answer, header)
                        return Failure(member.name, outcome, answer.reason, answer.status)
                    return self._failed_answer(member, upstream, answer)
            headers = downstream_headers(upstream.pairs)
            ctype = headers.get("content-type", "")
            if outcome is Outcome.SUCCESS and ctype.startswith("text/event-stream"):
                first = await first_events(self, member, upstream, deadline)
                if isinstance(first, Failure):
                    return first
                ttfb = loop.time() - started
                self.deadline = None
                response, broken = await relay_stream(self, member, upstream, headers, first)
            else:
                self.deadline = None
                response, broken = await relay_body(self, member, upstream, headers, prefix)
            # Recorded when the response is complete, so an account whose answers break after
            # the head is never reset to healthy by their start (issue 11, item 9).
            if broken:
                return Done(member.name, response, upstream.status, "broken")
            seen = Observation(Source.TRAFFIC, outcome, status=status, ttfb=ttfb, rule=rule)
            rt.pool.report(member, seen, loop.time(), time.time())
            return Done(member.name, response, status, "ok")
        except TimeoutError as exc:
            if isinstance(exc, ConnectTimeout):
                reason = str(exc)  # names the limit, and the proxy or busy slots if those
            else:
                what = "content" if self.stream else "response"
                reason = f"no {what} within {head_limit:g}s"
            return self.fail(member, Outcome.TIMEOUT, reason, local=_local(exc))
        except NETWORK_ERRORS as exc:
            return self.fail(member, Outcome.NETWORK, describe(exc), local=_local(exc))
        finally:
            rt.pool.end(member)
            if trial:  # an exhausted account's one trial request
                rt.pool.end_trial(member, loop.time())
            if upstream is not None:
                upstream.release() if upstream.at_eof() else upstream.close()

    async def _fresh_header(
        self, member: Member, source: CredentialSource
    ) -> tuple[str, str] | Failure:
        """The account's credential, fetched first if it is stale (bounded by the connect
        timeout; the fetch itself reports a failure to the account's health)."""
        limit = self.rt.config.timeouts.connect
        try:
            return await source.fresh(asyncio.get_running_loop().time(), limit)
        except TimeoutError:
            reason = f"credential still being fetched after {limit:g}s"
            return Failure(member.name, Outcome.TIMEOUT, reason)
        except CredentialError as exc:
            return Failure(member.name, Outcome.AUTH_FAILED, f"credential: {exc}")

    async def _refetched(self, member: Member) -> bool:
        """After a 401/403: whether a new credential was fetched (one run shared by every
        request refused meanwhile). If not, the refusal is reported as it would have been."""
        refused, self.refused = self.refused, None
        assert refused is not None and member.source is not None
        upstream, answer, used = refused
        self.refetched = True
        limit = self.rt.config.timeouts.connect
        try:
            now = asyncio.get_running_loop().time()
            if await member.source.refetch(used, now, limit) != used:
                return True
        except (TimeoutError, CredentialError):
            pass  # the refresh reported its own failure to the account's health
        self._failed_answer(member, upstream, answer)
        return False

    def fail(
        self,
        member: Member,
        outcome: Outcome,
        reason: str,
        status: int | None = None,
        cooldown: float | None = None,
        detail: str = "",
        *,
        committed: bool = False,
        local: bool = False,
        rule: str = "",
    ) -> Failure:
        """Record a failed attempt. ``reason`` is in qcc's words; ``detail`` is the account's.
        ``local``: qcc's own trouble (all connection slots busy, out of descriptors)."""
        seen = Observation(
            Source.TRAFFIC,
            outcome,
            reason,
            detail=detail,
            status=status,
            cooldown=cooldown,
            local=local,
            client_secrets=self.client_secrets(),
            rule=rule,
        )
        self.rt.pool.report(member, seen, asyncio.get_running_loop().time(), time.time())
        stats = member.stats
        if committed:
            log.warning("%s after the response was committed", stats.last_error)
        else:
            log.warning(
                "account %s failed (%s): %s; failing over", member.name, outcome, stats.last_error
            )
        return Failure(member.name, outcome, reason, status)

    def client_secrets(self) -> tuple[str, ...]:
        """The key the client sent (to scrub from what accounts say; failure paths only)."""
        headers = self.request.headers
        found = []
        key = headers.get("x-api-key")
        if key:
            found.append(key)
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            found.append(auth[7:].strip())
        return tuple(found)

    def _failed_answer(self, member: Member, upstream: Response, answer: ErrorAnswer) -> Failure:
        """An error answer that fails over: the account's rest, if it announced one (or its
        rule sets one), goes with the report."""
        outcome, verdict = answer.outcome, answer.verdict
        cooldown = rest_seconds(
            outcome, None if verdict is None else verdict.cooldown, upstream.headers, time.time()
        )
        return self.fail(
            member,
            outcome,
            answer.reason,
            answer.status,
            cooldown,
            answer.detail,
            rule=answer.rule,
        )

    # ---- the access line ----------------------------------------------------------------

    def log(self, account: str | None, status: int, outcome: str, duration: float) -> None:
        """The request's one access line. ``ttfb_ms`` counts from the client's request (failed
        attempts included) to the commit; ``outcome`` tells a stream broken after its start
        (``status=200 outcome=broken``) from a complete one."""
        attempts = ",".join(f"{f.account}:{f.outcome}" for f in self.failures) or "-"
        first = self.first_byte
        ttfb = "-" if first is None else f"{(first - self.started) * 1000:.1f}"
        record_activity(self, account, status, outcome, duration)  # the dashboard's rings
        get = self.usage.get
        self.rt.access(
            f"rid={self.rid} cluster={self.rt.pool.cluster.name} method={self.request.method} "
            f"path={self.request.raw_path.partition('?')[0]} account={account or '-'} "
            f"status={status} outcome={outcome} "
            f"failed_over={attempts} ttfb_ms={ttfb} duration_ms={duration * 1000:.1f} "
            f"stream={self.stream} in={get('input_tokens', 0)} out={get('output_tokens', 0)} "
            f"cache_read={get('cache_read_input_tokens', 0)} "
            f"cache_write={get('cache_creation_input_tokens', 0)}"
        )


def _local(exc: BaseException) -> bool:
    """Whether a failure is qcc's own (see :attr:`qcc.net.errors.UpstreamError.local`)."""
    return isinstance(exc, UpstreamError) and exc.local


async def handle_api(request: web.Request) -> web.StreamResponse:
    """A ``/v1`` request, already admitted by the edge (Host, Origin, path, access or member
    key: :func:`qcc.proxy.app.edge`, the only way in)."""
    runtime = request.app[RUNTIME_KEY]
    runtime.requests += 1
    body = await request.read()
    return await Exchange(runtime, request, body).run()
