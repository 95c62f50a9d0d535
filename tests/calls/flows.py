"""Helpers for the call tests: users, SDPs, and builders that bring a call into each state."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gateway.calls import (
    CallMachine,
    CallSettings,
    Command,
    Event,
    MediaConnected,
    MediaSipAnswerReady,
    MediaSipOfferReady,
    MediaWebAnswerReady,
    MediaWebOfferReady,
    SipAccepted,
    SipIncomingInvite,
    SipProvisional,
    SipReinviteReceived,
    SipReinviteResult,
    TimerFired,
    TimerName,
    WebAccept,
    WebDial,
    WebHangup,
    WebHold,
    WebSdpAnswer,
)
from gateway.identity import DialPattern, Found, NoSuchUser, NotOnline, SipAddress, WebUser

DOMAIN = "pbx.example.org"
ALICE = WebUser(
    "alice",
    "Alice",
    SipAddress.parse(f"sip:1001@{DOMAIN}"),
    allow_outbound=(DialPattern("1xxx"), DialPattern("0."), SipAddress.parse("sip:echo@test.example")),
)
BOB = WebUser("bob", "Bob", SipAddress.parse(f"sip:1002@{DOMAIN}"), allow_outbound=(DialPattern("1xxx"),))


def sip_sdp(direction: str = "sendrecv", address: str = "192.0.2.1", version: int = 1) -> str:
    return (
        f"v=0\r\no=- 1 {version} IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a={direction}\r\n"
    )


SIP_OFFER = sip_sdp()
SIP_ANSWER = sip_sdp(address="198.51.100.7")
SIP_HOLD = sip_sdp("sendonly", version=2)
SIP_RESUME = sip_sdp("sendrecv", version=3)
WEB_OFFER = "v=0\r\no=- 9 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n(web offer)"
WEB_ANSWER = "v=0\r\no=- 9 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n(web answer)"
GW_SIP_OFFER = sip_sdp(address="203.0.113.5")
GW_SIP_ANSWER = sip_sdp(address="203.0.113.5", version=2)

SETTINGS = CallSettings(pbx_domain=DOMAIN)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def machine(settings: CallSettings = SETTINGS, call_id: str = "c1") -> CallMachine:
    return CallMachine(call_id, settings, clock=Clock(), jitter=lambda: 0.5)


def run(call: CallMachine, *events: Event) -> list[Command]:
    """Feed events in order; all commands."""
    out: list[Command] = []
    for event in events:
        out.extend(call.handle(event))
    return out


def kinds(commands: Iterable[object]) -> list[type]:
    return [type(c) for c in commands]


def found(*sessions: tuple[str, str]) -> Found:
    """Found for (user id, session id) pairs."""
    users = {"alice": ALICE, "bob": BOB}
    by_user: dict[str, tuple[str, ...]] = {}
    for user_id, session_id in sessions:
        by_user[user_id] = (*by_user.get(user_id, ()), session_id)
    return Found(f"sip:1001@{DOMAIN}", tuple(users[u] for u in by_user), by_user)


def invite(
    target: Found | NotOnline | NoSuchUser | None = None, sdp: str | None = SIP_OFFER
) -> SipIncomingInvite:
    return SipIncomingInvite(
        f"sip:1001@{DOMAIN}",
        "sip:0301234567@pbx.example.org",
        "Carol",
        sdp,
        target if target is not None else found(("alice", "s1"), ("alice", "s2")),
    )


def dial(destination: str = "1002", session: str = "s1", user: WebUser = ALICE) -> WebDial:
    return WebDial(session, user, destination, WEB_OFFER)


# --- builders: a fresh call in a given situation ---------------------------------------------------


def inviting_prep(settings: CallSettings = SETTINGS) -> CallMachine:
    call = machine(settings)
    run(call, dial())
    return call


def inviting(settings: CallSettings = SETTINGS) -> CallMachine:
    call = inviting_prep(settings)
    run(call, MediaSipOfferReady(GW_SIP_OFFER))
    return call


def inviting_ringing(settings: CallSettings = SETTINGS) -> CallMachine:
    call = inviting(settings)
    run(call, SipProvisional(180))
    return call


def early_out(settings: CallSettings = SETTINGS) -> CallMachine:
    call = inviting(settings)
    run(call, SipProvisional(183, SIP_ANSWER))
    return call


def connected_out(settings: CallSettings = SETTINGS) -> CallMachine:
    call = inviting_ringing(settings)
    run(call, SipAccepted(SIP_ANSWER), MediaWebAnswerReady(WEB_ANSWER), MediaConnected())
    return call


def invited(settings: CallSettings = SETTINGS) -> CallMachine:
    call = machine(settings)
    run(call, invite())
    return call


def early_in(settings: CallSettings = SETTINGS) -> CallMachine:
    call = invited(settings)
    run(call, WebAccept("s1"))
    return call


def connected_in(settings: CallSettings = SETTINGS) -> CallMachine:
    call = early_in(settings)
    run(
        call,
        MediaWebOfferReady(WEB_OFFER),
        WebSdpAnswer("s1", WEB_ANSWER),
        MediaSipAnswerReady(GW_SIP_ANSWER),
        MediaConnected(),
    )
    return call


def connected_late_offer(settings: CallSettings = SETTINGS) -> CallMachine:
    """An INVITE without SDP answered by s1: our offer is in the 200, the ACK not yet here."""
    call = machine(settings)
    run(
        call, invite(sdp=None), WebAccept("s1"), MediaWebOfferReady(WEB_OFFER), WebSdpAnswer("s1", WEB_ANSWER)
    )
    run(call, MediaSipAnswerReady(GW_SIP_OFFER), MediaConnected())
    return call


def early_in_offered(settings: CallSettings = SETTINGS) -> CallMachine:
    call = early_in(settings)
    run(call, MediaWebOfferReady(WEB_OFFER))
    return call


def early_in_media_up(settings: CallSettings = SETTINGS) -> CallMachine:
    call = early_in_offered(settings)
    run(call, WebSdpAnswer("s1", WEB_ANSWER), MediaConnected())
    return call


def after(build: Callable[[], CallMachine], *events: Event) -> Callable[[], CallMachine]:
    """A builder: `build`, then `events`."""

    def builder() -> CallMachine:
        call = build()
        run(call, *events)
        return call

    return builder


def holding_local(settings: CallSettings = SETTINGS) -> CallMachine:
    call = connected_out(settings)
    run(call, WebHold("s1"), MediaSipOfferReady(GW_SIP_OFFER), SipReinviteResult(200, SIP_ANSWER))
    return call


def holding_remote(settings: CallSettings = SETTINGS) -> CallMachine:
    call = connected_in(settings)
    run(call, SipReinviteReceived(SIP_HOLD), MediaSipAnswerReady(GW_SIP_ANSWER))
    return call


def closing_cancel(settings: CallSettings = SETTINGS) -> CallMachine:
    call = inviting_ringing(settings)
    run(call, WebHangup("s1"))
    return call


def closing_bye(settings: CallSettings = SETTINGS) -> CallMachine:
    call = connected_out(settings)
    run(call, WebHangup("s1"))
    return call


def closed(settings: CallSettings = SETTINGS) -> CallMachine:
    call = closing_bye(settings)
    run(call, TimerFired(TimerName.CLOSING))
    return call
