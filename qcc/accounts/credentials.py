"""Where each account of the pool gets its credential header: wiring and refresh results.

An inline or environment credential is read when the cluster is (re)loaded (:func:`resolve`). One
fetched while running (command, OAuth2) gets a :class:`~qcc.credentials.source.CredentialSource`
(:func:`attach`); the keeper (:mod:`qcc.credentials.keeper`) runs its fetches, and every result
comes back to the pool, which applies it with :func:`refreshed`; a replaced account's refresh
stops (:func:`close_replaced`). No I/O here, and no pool state: the pool owns the members and
bumps its own version when a header changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path

from qcc.accounts.member import Member
from qcc.accounts.observe import Observation, Source
from qcc.credentials.keeper import source_for
from qcc.credentials.source import CredentialSource, RefreshResult
from qcc.errors import CredentialError
from qcc.health.state import State


def attach(
    members: Iterable[Member],
    cluster: str,
    environ: Mapping[str, str] | None,
    token_dir: Path | None,
    on_result: Callable[[Member, RefreshResult], None],
) -> bool:
    """Give each new member whose credential is fetched while running (command, OAuth2) its
    source, every refresh's result going to ``on_result``; True if any got one."""
    attached = False
    for member in members:
        source = member.source = source_for(
            member.account.credential, cluster, member.name, environ=environ, token_dir=token_dir
        )
        if source is not None:
            source.listener = partial(on_result, member)
            attached = True
    return attached


def close_replaced(old: Mapping[str, Member], members: Mapping[str, Member]) -> None:
    """Stop the refreshes of the old members that were replaced or removed."""
    for name, gone in old.items():
        if members.get(name) is not gone and gone.source is not None:
            gone.source.close()


def resolve(members: Iterable[Member], environ: Mapping[str, str] | None, now: float) -> None:
    """Each member's header as its credential gives it now: a source's current value (None until
    first fetched), or the inline or environment value; an unreadable one is ``auth_failed``."""
    for member in members:
        if member.source is not None:
            member.header = member.source.header  # None until first fetched
            continue
        try:
            member.header = member.account.credential.header(environ)
        except CredentialError as exc:
            member.header = None
            if member.health.state not in (State.DISABLED, State.AUTH_FAILED):
                member.health.record_auth_failure(now, str(exc))


def refreshed(
    member: Member, source: CredentialSource, result: RefreshResult
) -> tuple[bool, Observation | None]:
    """A credential refresh ended: whether the member's header changed, and the failure to
    report to its health (None if none).

    A new value is used at once; a failure is the account's (a failing command or a refused
    grant: auth_failed; a token endpoint that is down: one more failure).
    """
    if result.error is None:
        if member.header != source.header:
            member.header = source.header
            return True, None
        return False, None
    changed = False
    if member.header is not None and source.current(result.at) is None:
        member.header = None  # stale, and no new one: not picked until a refresh works
        changed = True
    if member.health.state is State.DISABLED:
        return changed, None
    error = result.error
    return changed, Observation(Source.TRAFFIC, error.outcome, str(error))
