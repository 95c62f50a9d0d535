"""A call's state as records (gateway/calls/records.py): only the machine changes them, every move is
checked against its table, and the whole state goes to plain JSON and back (a call taken over by
another instance resumes where it was)."""

from __future__ import annotations

import ast
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.calls import (
    EVENT_TYPES,
    CallError,
    CallMachine,
    CallState,
    Event,
    MediaSipOfferReady,
    MediaWebLost,
    MediaWebRenewed,
    SipFailed,
    SipReinviteResult,
    TimerName,
    WebDetached,
    WebHold,
    WebReattach,
)
from gateway.calls.boundary.events import SipReplacingInvite
from gateway.calls.errors import IllegalMove
from gateway.calls.records import (
    ATTACHMENT_MOVES,
    INVITE_MOVES,
    REINVITE_MOVES,
    STATE_MOVES,
    WEB_SDP_MOVES,
    Attachment,
    CallRecord,
    InviteProgress,
    Renegotiation,
    SipProgress,
    WebProgress,
    WebSdp,
)
from gateway.calls.states import Reinvite
from gateway.calls.view import CallView
from gateway.identity import WebUser
from tests.calls import flows as f
from tests.calls.test_pairs import SITUATIONS, sample
from tests.calls.test_properties import EVENTS, STARTS
from tests.conftest import examples

ROOT = Path(__file__).resolve().parents[2]
GRACE = dataclasses.replace(f.SETTINGS, reconnect_grace=12.0)

# --- every reachable situation ------------------------------------------------------------------------

SCENARIOS: dict[str, tuple[Callable[[], CallMachine], TimerName]] = {
    name: (build, timer) for name, (_, build, timer, _) in SITUATIONS.items()
}
SCENARIOS.update(
    {
        "inviting, redirected by a 302": (
            f.after(f.inviting_ringing, SipFailed(302, "Moved", (f"sip:1003@{f.DOMAIN}",))),
            TimerName.SETUP,
        ),
        "connected, our hold re-INVITE waiting to retry after 491": (
            f.after(
                f.connected_out, WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER), SipReinviteResult(491)
            ),
            TimerName.REINVITE_RETRY,
        ),
        "connected, replacing INVITE with the bridge": (
            f.after(f.connected_in, SipReplacingInvite("sip:2001@pbx.example.org", "B", f.SIP_OFFER)),
            TimerName.REINVITE_RETRY,
        ),
        "connected, its session gone, its web leg not (away)": (
            f.after(lambda: f.connected_out(GRACE), WebDetached("s1")),
            TimerName.RECONNECT,
        ),
        "connected, detached (the web leg lost with its session away)": (
            f.after(lambda: f.connected_out(GRACE), WebDetached("s1"), MediaWebLost("ICE failed")),
            TimerName.RECONNECT,
        ),
        "connected, web leg lost": (
            f.after(lambda: f.connected_in(GRACE), MediaWebLost("ICE failed")),
            TimerName.RECONNECT,
        ),
        "holding, reattaching": (
            f.after(lambda: f.holding_local(GRACE), WebDetached("s1"), WebReattach("s9", f.WEB_OFFER)),
            TimerName.RECONNECT,
        ),
        "connected, a pass-through call's new offer at the far end": (
            f.after(
                lambda: f.connected_out(GRACE),
                WebDetached("s1"),
                WebReattach("s9", f.WEB_OFFER, passthrough=True),
                MediaSipOfferReady(f.WEB_OFFER),
            ),
            TimerName.RECONNECT,
        ),
        "holding, reattached": (
            f.after(
                lambda: f.holding_remote(GRACE),
                WebDetached("s1"),
                WebReattach("s1", f.WEB_OFFER),
                MediaWebRenewed(f.WEB_ANSWER),
            ),
            TimerName.RECONNECT,
        ),
    }
)


def users_of(call: CallMachine) -> Callable[[str], WebUser | None]:
    return lambda user_id: call.user if call.user is not None and call.user.id == user_id else None


def round_trip(call: CallMachine) -> CallMachine:
    """``call`` through JSON text into a new machine; the same state, the same dict."""
    data = call.to_dict()
    back = CallMachine.from_dict(
        json.loads(json.dumps(data)), users_of(call), call.settings, clock=call.clock, jitter=call.jitter
    )
    assert back.snapshot() == call.snapshot()
    assert back.to_dict() == data
    return back


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_reachable_state_goes_to_json_and_back(scenario: str) -> None:
    build, timer = SCENARIOS[scenario]
    round_trip(build())
    # one step further, by every kind of event: the restored call answers it as the original does
    for kind in EVENT_TYPES:
        call = build()
        copy = round_trip(call)
        event = sample(kind, "s1", timer)
        try:
            expected = call.handle(event)
        except CallError as exc:
            with pytest.raises(type(exc)):
                copy.handle(event)
            assert copy.snapshot() == call.snapshot()
            continue
        assert copy.handle(event) == expected, kind.__name__
        assert copy.snapshot() == call.snapshot(), kind.__name__
        round_trip(call)


def test_the_scenarios_cover_every_state_and_record_value() -> None:
    seen = [build().snapshot() for build, _ in SCENARIOS.values()]
    assert {r.state for r in seen} == set(CallState)
    assert {r.attachment for r in seen} == set(Attachment)
    assert {r.sip.invite for r in seen} == set(InviteProgress)
    assert {r.web.sdp for r in seen} == set(WebSdp)
    assert {r.renegotiation.phase for r in seen} == {None, *Reinvite}
    assert any(r.transfer.out for r in seen) and any(r.transfer.into for r in seen)
    assert any(r.transfer.picked_up_by for r in seen) and any(r.transfer.replacing for r in seen)
    assert any(r.setup.redirects for r in seen) and any(r.hold.local for r in seen)
    assert any(r.hold.remote for r in seen) and any(r.timers for r in seen) and any(r.ringing for r in seen)


def test_the_dict_is_plain_json_without_the_users_secrets() -> None:
    call = f.connected_out()
    data = call.to_dict()
    assert data["setup"]["user"] == "alice"
    assert json.loads(json.dumps(data)) == data
    assert "credentials" not in json.dumps(data)


def test_a_user_unknown_on_reading_back_is_an_invalid_value() -> None:
    data = f.connected_out().to_dict()
    with pytest.raises(CallError, match="no web user 'alice'"):
        CallRecord.from_dict(data, lambda user_id: None)


def test_a_damaged_dict_is_an_invalid_value() -> None:
    data = f.connected_out().to_dict()
    data["attachment"] = "floating"
    with pytest.raises(CallError, match="not a call record"):
        CallRecord.from_dict(data, users_of(f.connected_out()))
    del data["hold"]
    with pytest.raises(CallError, match="not a call record"):
        CallRecord.from_dict(data, users_of(f.connected_out()))


def test_a_restored_call_leaves_out_clock_jitter_and_pending_commands() -> None:
    record = f.connected_out().snapshot()
    assert {field.name for field in dataclasses.fields(record)}.isdisjoint(
        {"clock", "jitter", "settings", "_out"}
    )


# --- every move of every table --------------------------------------------------------------------


def _at(**changes: Any) -> CallMachine:
    return CallMachine.from_record(dataclasses.replace(CallRecord("c1"), **changes), f.SETTINGS)


def _walk(table: Mapping[Any, frozenset[Any]], values: list[Any]) -> Iterator[tuple[Any, Any, bool]]:
    for old in values:
        for new in values:
            yield old, new, new in table.get(old, frozenset())


def _check(call: CallMachine, move: Callable[[], None], old: object, new: object, allowed: bool) -> None:
    before = call.snapshot()
    if allowed:
        move()
        return
    with pytest.raises(IllegalMove) as info:
        move()
    assert f"from {_value(old)} to {_value(new)}" in str(info.value) and "call=c1" in str(info.value)
    assert call.snapshot() == before, "a refused move changes nothing"


def _value(value: object) -> str:
    return "none" if value is None else str(getattr(value, "value", value))


def test_every_pair_of_call_states() -> None:
    for old, new, allowed in _walk(STATE_MOVES, list(CallState)):
        call = _at(state=old)
        _check(call, lambda: call.enter(new), old, new, allowed)  # noqa: B023


def test_every_pair_of_reinvite_phases() -> None:
    for old, new, allowed in _walk(REINVITE_MOVES, [None, *Reinvite]):
        call = _at(renegotiation=Renegotiation(phase=old))
        _check(call, lambda: call.reinvite_to(new), old, new, allowed)  # noqa: B023


def test_every_pair_of_attachments() -> None:
    for old, new, allowed in _walk(ATTACHMENT_MOVES, list(Attachment)):
        call = _at(attachment=old)
        _check(call, lambda: call.attach_to(new), old, new, allowed)  # noqa: B023


def test_every_pair_of_invite_progress() -> None:
    for old, new, allowed in _walk(INVITE_MOVES, list(InviteProgress)):
        call = _at(sip=SipProgress(invite=old))
        _check(call, lambda: call.invite_to(new), old, new, allowed)  # noqa: B023


def test_every_pair_of_web_sdp_progress() -> None:
    for old, new, allowed in _walk(WEB_SDP_MOVES, list(WebSdp)):
        call = _at(web=WebProgress(sdp=old))
        _check(call, lambda: call.web_sdp_to(new), old, new, allowed)  # noqa: B023


def test_one_transfer_each_way_at_a_time() -> None:
    call = _at()
    call.transfer_out_to("sip:1003@pbx")
    with pytest.raises(IllegalMove, match="transfer out may not move from 'sip:1003@pbx' to 'sip:1004@pbx'"):
        call.transfer_out_to("sip:1004@pbx")
    call.transfer_out_to(None)
    with pytest.raises(IllegalMove, match="from none to none"):
        call.transfer_out_to(None)
    call.transfer_in_to("sip:1005@pbx")
    with pytest.raises(IllegalMove, match="transfer in"):
        call.transfer_in_to("sip:1006@pbx")


def test_moves_are_logged_old_to_new(caplog: pytest.LogCaptureFixture) -> None:
    """A record's moves at DEBUG (the call's own state moves are INFO: docs/operations.md)."""
    call = f.connected_out(GRACE)
    with caplog.at_level(logging.DEBUG, logger="gateway.calls.machine"):
        call.handle(WebDetached("s1"))
    assert "call=c1 attachment attached -> away" in caplog.text


# --- nobody but the machine assigns a call's state -----------------------------------------------------

STATE_NAMES = frozenset(
    name
    for cls in (CallView, CallMachine)
    for name in (*vars(cls), *cls.__slots__)
    if not name.startswith("__") and not callable(getattr(cls, name, None))
) - {"call_id", "clock", "jitter", "settings"}
PRIVATE = frozenset(name for name in CallView.__slots__ if name.startswith("_"))
MUTATORS = frozenset({"add", "append", "clear", "discard", "extend", "pop", "remove", "setdefault", "update"})


def _written(node: ast.AST) -> Iterator[ast.expr]:
    """The expressions ``node`` assigns to, deletes, or mutates in place."""
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = list(node.targets)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
        targets = [node.func.value]
    while targets:
        target = targets.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            targets.extend(target.elts)
        elif isinstance(target, (ast.Starred, ast.Subscript)):
            targets.append(target.value)
        else:
            yield target


def violations(source: str, *, any_object: bool) -> list[str]:
    """Lines of ``source`` that write a call's state attribute on an object other than ``self``. With
    ``any_object`` false (outside gateway/calls, where other classes share names like ``state``), only
    objects reached as ``...machine`` count, and the machine's private records on anything."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for target in _written(node):
            if not isinstance(target, ast.Attribute) or target.attr not in STATE_NAMES:
                continue
            owner = target.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            private_record = target.attr.startswith("_") and target.attr in CallView.__slots__
            if any_object or private_record or owner_name.endswith("machine"):
                found.append(f"{target.lineno}: {ast.unparse(target)}")
    return found


def test_no_module_but_the_machine_assigns_a_calls_state() -> None:
    problems = []
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative == "gateway/calls/machine.py":
            continue
        inside = relative.startswith("gateway/calls/")
        text = path.read_text()
        if not inside and "machine" not in text and not any(f".{n}" in text for n in PRIVATE):
            continue  # nothing to find (parsing every module takes seconds)
        problems += [f"{relative}:{line}" for line in violations(text, any_object=inside)]
    assert problems == [], "call state must change through CallMachine's methods"


@pytest.mark.parametrize(
    "source",
    [
        "def f(call):\n    call.local_hold = True\n",
        "def f(call):\n    call.reinvite, call.reinvite_offer = None, 'x'\n",
        "def f(call):\n    call.timers.discard(1)\n",
        "def f(call):\n    del call.ringing['s1']\n",
        "def f(call):\n    call._hold = None\n",
        "def f(self):\n    self.other.web_gone = True\n",
    ],
)
def test_the_scan_finds_an_assignment(source: str) -> None:
    assert violations(source, any_object=True)


def test_the_scan_outside_calls_finds_a_machine_and_its_private_records() -> None:
    assert violations("def f(runtime):\n    runtime.machine.session_id = 's2'\n", any_object=False)
    assert violations("def f(x):\n    x._renegotiation = None\n", any_object=False)
    assert not violations("def f(dialog):\n    dialog.state = 1\n", any_object=False)
    assert not violations("def f(self):\n    self.state = 1\n", any_object=True)


def test_assigning_a_calls_state_fails_at_run_time_too() -> None:
    call = f.connected_out()
    with pytest.raises(AttributeError):
        call.local_hold = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        call.brand_new = 1  # type: ignore[attr-defined]


# --- random walks: every state they reach goes to JSON and back ---------------------------------------


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=STARTS, events=st.lists(EVENTS, max_size=30))
def test_random_walks_round_trip_and_refusals_change_nothing(start: list[Event], events: list[Event]) -> None:
    call = f.machine()
    for event in [*start, *events]:
        before = call.snapshot()
        try:
            call.handle(event)
        except CallError:
            assert call.snapshot() == before, f"{type(event).__name__} was refused but changed the call"
            continue
        round_trip(call)
