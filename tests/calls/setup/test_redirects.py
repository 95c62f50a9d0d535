"""3xx redirects of outbound calls (RFC 3261 §8.1.3.4) as `calls.follow_redirects` allows: the first
allowed Contact gets the same offer, the browser hears `redirected`; a forbidden one, a loop, a sixth
redirect or a redirect after early media end the call `redirected` with a message saying why."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from gateway.calls import CallState, NotifyEnded, SipFailed, SipInvite, SipProvisional, TimerName
from gateway.calls.boundary.commands import NotifyRedirected
from gateway.calls.reasons import EndReason
from gateway.calls.setup.redirects import MAX_REDIRECTS
from tests.calls import flows as f

PBX_SETTINGS = dataclasses.replace(f.SETTINGS, pbx_hosts=("10.0.0.5",))


def only(commands: Sequence[object], kind: type) -> list[object]:
    return [c for c in commands if isinstance(c, kind)]


def ended(commands: Sequence[object]) -> NotifyEnded:
    (notice,) = only(commands, NotifyEnded)
    assert isinstance(notice, NotifyEnded)
    return notice


def test_a_redirect_on_the_pbx_is_followed_with_the_same_offer() -> None:
    call = f.inviting(PBX_SETTINGS)
    out = call.handle(SipFailed(302, "Moved Temporarily", ("sip:1003@10.0.0.5:5070",)))
    assert NotifyRedirected("s1", "c1", "sip:1003@10.0.0.5:5070", 302) in out
    (invite,) = only(out, SipInvite)
    assert isinstance(invite, SipInvite)
    assert (invite.target, invite.sdp, invite.direct) == ("sip:1003@10.0.0.5:5070", f.GW_SIP_OFFER, True)
    assert call.state is CallState.INVITING and call.timers == {TimerName.SETUP}
    assert not only(out, NotifyEnded)


def test_a_redirect_to_the_pbx_domain_goes_through_the_pbx() -> None:
    call = f.inviting()
    out = call.handle(SipFailed(302, "Moved", (f"sip:1003@{f.DOMAIN}",)))
    (invite,) = only(out, SipInvite)
    assert isinstance(invite, SipInvite) and not invite.direct


def test_contacts_are_tried_in_order_until_one_is_allowed() -> None:
    call = f.inviting(PBX_SETTINGS)
    contacts = ("sip:999@10.0.0.5", "sip:1003@elsewhere.example", "sip:1004@10.0.0.5")  # 999: no pattern
    out = call.handle(SipFailed(302, "Moved", contacts))
    (invite,) = only(out, SipInvite)
    assert isinstance(invite, SipInvite) and invite.target == "sip:1004@10.0.0.5"


def test_a_forbidden_target_ends_the_call() -> None:
    call = f.inviting_ringing(PBX_SETTINGS)
    out = call.handle(SipFailed(302, "Moved", ("sip:999@10.0.0.5",)))
    notice = ended(out)
    assert (notice.reason, notice.sip_status) == (EndReason.REDIRECTED, 302)
    assert "sip:999@10.0.0.5" in notice.message and "may not call" in notice.message
    assert not only(out, SipInvite) and call.state is CallState.CLOSED


def test_another_domain_needs_policy_mode_and_an_exact_rule() -> None:
    target = ("sip:echo@test.example",)  # alice's allow_outbound has this exact URI
    refused = ended(f.inviting().handle(SipFailed(302, "Moved", target)))
    assert "not on the PBX" in refused.message
    policy = dataclasses.replace(f.SETTINGS, follow_redirects="policy")
    (invite,) = only(f.inviting(policy).handle(SipFailed(302, "Moved", target)), SipInvite)
    assert isinstance(invite, SipInvite) and invite.direct
    assert (
        "may not call" in ended(f.inviting(policy).handle(SipFailed(302, "M", ("sip:x@y.example",)))).message
    )


def test_off_ends_the_call_as_before() -> None:
    call = f.inviting(dataclasses.replace(f.SETTINGS, follow_redirects="off"))
    notice = ended(call.handle(SipFailed(302, "Moved", (f"sip:1003@{f.DOMAIN}",))))
    assert notice.reason is EndReason.REDIRECTED and "does not follow" in notice.message


def test_a_redirect_loop_is_refused() -> None:
    call = f.inviting()
    call.handle(SipFailed(302, "Moved", (f"sip:1003@{f.DOMAIN}",)))
    notice = ended(call.handle(SipFailed(302, "Moved", (f"sip:1003@{f.DOMAIN}",))))
    assert "loop" in notice.message


def test_at_most_five_redirects() -> None:
    call = f.inviting()
    for n in range(MAX_REDIRECTS):
        assert only(call.handle(SipFailed(301, "Moved", (f"sip:10{n:02d}@{f.DOMAIN}",))), SipInvite)
    notice = ended(call.handle(SipFailed(301, "Moved", (f"sip:1099@{f.DOMAIN}",))))
    assert "more than 5" in notice.message


def test_no_redirect_after_early_media() -> None:
    call = f.early_out()
    notice = ended(call.handle(SipFailed(302, "Moved", (f"sip:1003@{f.DOMAIN}",))))
    assert "early media" in notice.message


@pytest.mark.parametrize("contact", ["sip:1003@10.0.0.5;maddr=evil.example", "tel:+1003"])
def test_targets_the_policy_cannot_read_are_refused(contact: str) -> None:
    call = f.inviting(PBX_SETTINGS)
    assert ended(call.handle(SipFailed(302, "Moved", (contact,)))).reason is EndReason.REDIRECTED


def test_the_new_target_must_answer_within_the_setup_timeout() -> None:
    call = f.inviting_ringing()
    call.handle(SipFailed(302, "Moved", (f"sip:1003@{f.DOMAIN}",)))
    assert call.timers == {TimerName.SETUP}
    call.handle(SipProvisional(180))
    assert call.timers == {TimerName.RING}
