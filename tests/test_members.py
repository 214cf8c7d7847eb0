"""Member keys' decisions without a server: lookup, the rpm window, the daily budget. Pure."""

from __future__ import annotations

import pytest

from qcc.config.keys import new_key, parse_stored, stored_form
from qcc.config.model import MemberKey
from qcc.proxy.members import ACCESS, DISABLED, MISSING, Denied, KeyGate, RpmWindow, presented
from qcc.usage.budget import day_start, next_day_start

NOON = day_start(1_796_000_000.0) + 12 * 3600  # a local noon, whatever TZ the tests run in


def member(name: str, key: str, **limits: object) -> MemberKey:
    parsed = parse_stored(stored_form(key))
    assert parsed is not None
    return MemberKey(name, parsed[0], parsed[1], **limits)  # type: ignore[arg-type]


def test_presented_keys_from_x_api_key_and_bearer() -> None:
    assert presented({}) == ()
    assert presented({"x-api-key": "k1"}) == ("k1",)
    assert presented({"authorization": "Bearer k2"}) == ("k2",)
    assert presented({"authorization": "bearer k2"}) == ("k2",)
    assert presented({"authorization": "Basic abc"}) == ()
    assert presented({"x-api-key": "k1", "authorization": "Bearer k2"}) == ("k1", "k2")


def test_rpm_window_slides_and_says_when_a_slot_frees() -> None:
    window = RpmWindow(3)
    for t in (0.0, 10.0, 20.0):
        assert window.admit(t) is None
    assert window.admit(30.0) == pytest.approx(30.0)  # the one at 0 leaves at 60
    assert window.admit(59.9) == pytest.approx(0.1)
    assert window.admit(60.0) is None  # 0 has left; 10, 20, 60 in the window
    assert window.admit(65.0) == pytest.approx(5.0)
    assert window.admit(200.0) is None


def test_rpm_window_refusals_do_not_count() -> None:
    window = RpmWindow(1)
    assert window.admit(0.0) is None
    for t in range(1, 59):
        assert window.admit(float(t)) is not None
    assert window.admit(60.0) is None


def test_lowered_limit_waits_for_enough_requests_to_leave() -> None:
    window = RpmWindow(4)
    for t in (0.0, 1.0, 2.0, 3.0):
        window.admit(t)
    window.limit = 2
    assert window.admit(10.0) == pytest.approx(52.0)  # 0 and 1 must leave: at 61 there are 2
    assert window.admit(62.5) is None


def test_gate_admits_members_access_key_and_refuses_the_rest() -> None:
    alice, bob = new_key(), new_key()
    gate = KeyGate((member("alice", alice), member("bob", bob, enabled=False)))
    assert gate.active
    assert gate.check({"x-api-key": alice}, None, 0.0, NOON) == "alice"
    assert gate.check({"authorization": f"Bearer {alice}"}, None, 0.0, NOON) == "alice"
    # Claude Code with both variables set: either header may carry the key
    assert gate.check({"x-api-key": "qcc", "authorization": f"Bearer {alice}"}, None, 0, NOON)
    assert gate.check({}, None, 0.0, NOON) is MISSING
    assert gate.check({"x-api-key": alice + "x"}, None, 0.0, NOON) is MISSING
    assert gate.check({"x-api-key": bob}, None, 0.0, NOON) is DISABLED
    assert gate.check({"x-api-key": "the-admin-key"}, "the-admin-key", 0.0, NOON) == ACCESS
    assert gate.check({"x-api-key": "the-admin-key"}, None, 0.0, NOON) is MISSING
    assert MISSING.status == DISABLED.status == 401
    assert MISSING.kind == "authentication_error"


def test_verified_keys_are_cached_by_a_keyed_tag_not_the_key() -> None:
    alice = new_key()
    gate = KeyGate((member("alice", alice),))
    for _ in range(3):
        assert gate.lookup(alice) is not None
    assert gate.lookup("qcc-wrong") is None
    (tag,) = gate._cache  # one entry, for the one valid key
    assert alice.encode() not in tag and len(tag) == 64
    (wrong,) = gate._unknown  # an unknown key is remembered by its tag too
    assert b"qcc-wrong" not in wrong
    gate.apply(())  # keys changed: the caches are emptied, the removed key refused
    assert gate.lookup(alice) is None and not gate.active


def test_unknown_key_becomes_valid_when_it_is_added() -> None:
    alice = new_key()
    gate = KeyGate((member("bob", new_key()),))
    assert gate.lookup(alice) is None
    gate.apply((member("alice", alice),))
    assert gate.lookup(alice) is not None


def test_unknown_keys_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qcc.proxy.members.UNKNOWN_MAX", 3)
    gate = KeyGate((member("bob", new_key()),))
    for i in range(10):
        assert gate.lookup(f"qcc-nope-{i}") is None
        assert len(gate._unknown) <= 3


def test_rpm_refusal_is_a_429_with_whole_seconds() -> None:
    alice = new_key()
    gate = KeyGate((member("alice", alice, rpm=2),))
    headers = {"x-api-key": alice}
    assert gate.check(headers, None, 100.0, NOON) == "alice"
    assert gate.check(headers, None, 100.5, NOON) == "alice"
    denied = gate.check(headers, None, 130.2, NOON)
    assert isinstance(denied, Denied)
    assert (denied.status, denied.kind, denied.retry_after) == (429, "rate_limit_error", 30)
    assert "2 requests per minute" in denied.message and alice not in denied.message
    assert gate.check(headers, None, 160.0, NOON) == "alice"


def test_daily_budget_refuses_until_local_midnight() -> None:
    alice = new_key()
    gate = KeyGate((member("alice", alice, budget_daily_usd=1.0),))
    headers = {"x-api-key": alice}
    assert gate.check(headers, None, 0.0, NOON) == "alice"
    gate.add_spend("alice", 0.6, NOON)
    assert gate.check(headers, None, 1.0, NOON + 1) == "alice"
    gate.add_spend("alice", 0.4, NOON + 2)
    denied = gate.check(headers, None, 2.0, NOON + 3)
    assert isinstance(denied, Denied) and denied.status == 429
    assert denied.retry_after == round(next_day_start(NOON) - (NOON + 3))
    assert "daily budget of $1" in denied.message
    tomorrow = next_day_start(NOON) + 60
    assert gate.spent_today("alice", tomorrow) == 0.0
    assert gate.check(headers, None, 3.0, tomorrow) == "alice"


def test_budget_refusal_does_not_use_an_rpm_slot() -> None:
    alice = new_key()
    gate = KeyGate((member("alice", alice, rpm=1, budget_daily_usd=1.0),))
    gate.add_spend("alice", 2.0, NOON)
    assert isinstance(gate.check({"x-api-key": alice}, None, 0.0, NOON), Denied)
    assert not gate.windows["alice"].times


def test_reload_keeps_windows_and_spend_of_remaining_members() -> None:
    alice, bob = new_key(), new_key()
    gate = KeyGate((member("alice", alice, rpm=1), member("bob", bob)))
    gate.check({"x-api-key": alice}, None, 0.0, NOON)
    gate.add_spend("alice", 0.5, NOON)
    gate.apply((member("alice", alice, rpm=1),))  # bob removed; alice's hash re-salted
    assert isinstance(gate.check({"x-api-key": alice}, None, 1.0, NOON), Denied)
    assert gate.spent_today("alice", NOON) == 0.5
    assert gate.check({"x-api-key": bob}, None, 1.0, NOON) is MISSING
    gate.add_spend("bob", 1.0, NOON)  # a late response of a removed member: ignored
    gate.seed_spend({"alice": 0.25, "ghost": 3.0}, NOON)
    assert gate.spent_today("alice", NOON) == 0.75 and "ghost" not in gate.spend
