"""In-dialog requests only from the dialog's peer or a trusted source (issue 32 item 10).

Three of our UAs on real UDP sockets: the gateway's at 127.0.0.1 (trusting 127.0.0.1/32 only), the far
end at 127.0.0.2 (untrusted, the dialog's peer), a stranger at 127.0.0.3 who knows the dialog's Call-ID
and tags and sends its requests from there. The stranger's re-INVITE moving the media to its own address
and its BYE get 403 and never reach the call: the next re-INVITE the call hears is the peer's, and the
call's remote SDP (its media target) is the peer's. With `sip.in_dialog_any_source` the stranger's
re-INVITE reaches the call, as before issue 32.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress

from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.outgoing import OutgoingCall
from gateway.sip.useragent.ua import Listen, UserAgent
from gateway.sip.useragent.ua_events import Answered, Confirmed, ReinviteReceived
from sipcore.location.routing import Target
from tests.sip.ua_helpers import ANSWER, OFFER, expect, identity, running_ua, uri_of

PEER_SDP = ANSWER.replace("40002", "40010")
STRANGER_SDP = ANSWER.replace("127.0.0.1", "127.0.0.3").replace("40002", "40666")
TRUSTED = (ipaddress.ip_network("127.0.0.1/32"),)


async def _stranger_sends(
    stranger: UserAgent, peer_call: IncomingCall, gateway: UserAgent, method: str
) -> int:
    """The stranger's request in the peer's dialog (its Call-ID, tags and next CSeq), from 127.0.0.3;
    made on a copy of the peer's dialog: the peer's own state does not move."""
    assert peer_call.dialog is not None
    body = STRANGER_SDP.encode() if method == "INVITE" else b""
    request = copy.deepcopy(peer_call.dialog).create_request(
        method, body=body, content_type="application/sdp" if body else None
    )
    target = Target("UDP", gateway.endpoint.host, gateway.endpoint.port or 5060)
    handle = await stranger.layer.request(request, target)
    return (await handle.final_response()).status


async def _call(gateway: UserAgent, peer: UserAgent) -> tuple[OutgoingCall, IncomingCall]:
    call = await gateway.invite(uri_of(peer), OFFER, identity())
    incoming = await peer.next_incoming(5)
    incoming.answer(ANSWER)
    await expect(call, Answered)
    await expect(incoming, Confirmed)
    return call, incoming


async def test_a_strangers_reinvite_and_bye_are_refused_the_peers_reinvite_works() -> None:
    async with (
        running_ua(trusted_sources=TRUSTED) as gateway,
        running_ua(listen=(Listen("udp", "127.0.0.2"),)) as peer,
        running_ua(listen=(Listen("udp", "127.0.0.3"),)) as stranger,
    ):
        call, incoming = await _call(gateway, peer)
        assert await _stranger_sends(stranger, incoming, gateway, "INVITE") == 403
        assert await _stranger_sends(stranger, incoming, gateway, "BYE") == 403
        assert await _stranger_sends(stranger, incoming, gateway, "INFO") == 403
        assert "40002" in call.remote_sdp

        moved = await _peer_reinvite(call, incoming)
        assert "40010" in moved.sdp and "40666" not in moved.sdp  # the first re-INVITE it heard: the peer's
        assert "40010" in call.remote_sdp
        await incoming.bye()


async def _peer_reinvite(call: OutgoingCall, incoming: IncomingCall) -> ReinviteReceived:
    result = asyncio.create_task(incoming.reinvite(PEER_SDP))
    moved = await expect(call, ReinviteReceived)
    call.answer_reinvite(OFFER)
    assert (await result).ok
    return moved


async def test_in_dialog_any_source_lets_the_stranger_in() -> None:
    async with (
        running_ua(trusted_sources=TRUSTED, in_dialog_any_source=True) as gateway,
        running_ua(listen=(Listen("udp", "127.0.0.2"),)) as peer,
        running_ua(listen=(Listen("udp", "127.0.0.3"),)) as stranger,
    ):
        call, incoming = await _call(gateway, peer)
        sent = asyncio.create_task(_stranger_sends(stranger, incoming, gateway, "INVITE"))
        moved = await expect(call, ReinviteReceived)
        assert "40666" in moved.sdp
        call.answer_reinvite(OFFER)
        assert await sent == 200
        await incoming.bye()
