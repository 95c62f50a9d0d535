"""A WebRTC-capable SIP peer (issue 13 item 7): aiortc behind a small SIP UA (peers/sip_webrtc.py) offers
what a real WebRTC stack writes (UDP/TLS/RTP/SAVPF, rtcp-mux, BUNDLE, opus and PCMU, a full ICE agent with
candidates, a=setup:actpass). With the default ``media: terminate`` the gateway answers it as ICE-lite with
DTLS-SRTP on the SIP leg and bridges it to the web user (the aiortc browser stand-in): tones both ways."""

from __future__ import annotations

import asyncio
import logging

import pytest

import sdp
from peers.sip_webrtc import SipWebRtcPeer
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until


async def test_aiortc_sip_peer_calls_the_web_user_terminated(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.media")
    media = {"rtp_ports": {"start": 37000, "end": 37099}, "sip_srtp": "optional"}
    async with (
        running_gateway(gateway_config(None, media=media)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        SipWebRtcPeer(freq=440) as phone,
    ):
        browser = WebPeer(freq=1000)
        try:
            host, port = gateway.sip_address
            dialing = asyncio.ensure_future(phone.call(f"sip:1001@{host}:{port}"))
            ringing = await alice.wait_for("incoming")
            await alice.answer(ringing["call_id"], browser.answer)
            final = await asyncio.wait_for(dialing, 15)
            assert final.status == 200, final
            answer = sdp.parse(final.body.decode())
            audio = answer.media[0]
            assert audio.proto == "UDP/TLS/RTP/SAVPF" and audio.has("rtcp-mux") and audio.mid == "0"
            assert answer.has("ice-lite") and answer.bundle_mids() == ("0",)
            await phone.media.connected(timeout=10)
            await wait_until(lambda: browser.heard(440, last=1.0), timeout=10)
            await wait_until(lambda: phone.media.heard(1000, last=1.0), timeout=10)
            bye = await phone.hangup()
            assert bye.status == 200
            await alice.wait_for("ended", call_id=ringing["call_id"])
        finally:
            await browser.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("DTLS-SRTP on the SIP leg is up" in m for m in messages)


async def test_web_user_calls_a_webrtc_only_sip_peer_terminated(caplog: pytest.LogCaptureFixture) -> None:
    """A route with ``sip_offer: webrtc``: the gateway terminates the media but offers the SIP side what
    a WebRTC stack takes (UDP/TLS/RTP/SAVPF, a=setup:actpass with its fingerprint, ICE-lite with a host
    candidate, rtcp-mux, a BUNDLE group); aiortc answers it as a full ICE agent and the DTLS client, the
    gateway's SIP leg is the DTLS server, and tones cross both ways."""
    caplog.set_level(logging.INFO, logger="gateway.media")
    media = {"rtp_ports": {"start": 37100, "end": 37199}}
    routes = [{"match": "8xxx", "sip_offer": "webrtc"}]
    async with (
        SipWebRtcPeer(freq=440, user="8001") as phone,
        running_gateway(gateway_config(phone.address, media=media, routes=routes)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        browser = WebPeer(freq=1000)
        try:
            call_id = await alice.call("8001", await browser.offer())
            invite = await phone.wait_for_call()
            offer = sdp.parse(invite.body.decode())
            audio = offer.media[0]
            dtls, ice = offer.dtls_for(0), offer.ice_for(0)
            assert audio.proto == "UDP/TLS/RTP/SAVPF" and audio.has("rtcp-mux") and audio.mid == "0"
            assert dtls is not None and dtls.setup is sdp.Setup.ACTPASS
            assert ice is not None and offer.has("ice-lite") and audio.candidates
            assert offer.bundle_mids() == ("0",)
            await phone.answer()
            connected = await alice.wait_for("connected", call_id=call_id)
            await browser.accept(connected["sdp"])
            await phone.media.connected(timeout=10)
            await wait_until(lambda: browser.heard(440, last=1.0), timeout=10)
            await wait_until(lambda: phone.media.heard(1000, last=1.0), timeout=10)
            assert gateway.ports.held != frozenset()  # terminated on the bridge
            bye = await phone.hangup()
            assert bye.status == 200
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await browser.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("DTLS-SRTP toward the SIP side as server" in m for m in messages), messages
    assert any("DTLS-SRTP on the SIP leg is up" in m for m in messages)
