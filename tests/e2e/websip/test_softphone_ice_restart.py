"""ICE restart in place by the browser SIP libraries (issue 34 item 1), unmodified JsSIP 3.13 and SIP.js 0.21 in
headless Chromium against a whole gateway and the pjsua2 desk phone.

alice's library calls the phone, hears its 440 Hz tone, then restarts ICE with its own re-INVITE: JsSIP's
``renegotiate({rtcOfferConstraints: {iceRestart: true}})``, SIP.js's ``invite()`` with ``offerOptions:
{iceRestart: true}``: an offer with a new ice-ufrag and ice-pwd (RFC 8839 §4.4.1.1.1) and Chromium's newly
gathered candidates. The gateway answers it with new credentials of its own (the gateway's ufrag in the
library's remote description changes), restarts its web leg's ICE in place (the DTLS association and the
call go on), Chromium moves to a pair of the new session (a new local port: it gathered anew) and the
gateway's media follows it there; the audio flows both ways afterwards (the page hears the tone, the
phone's recording has Chromium's beeps in its last seconds). Then the phone calls alice and her library
restarts that call too: the gateway offered that call (the controlling agent) and answers the restart as
the controlled one (libwebrtc makes the restart's offerer controlling)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import sdp
from gateway.app import Gateway
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.sip_webrtc import SipWebRtcPeer
from peers.softphones import Library, Softphone
from tests.e2e.harness import wait_until, web_media_moved
from tests.e2e.media.test_webrtc_passthrough import expect_peer_hears_the_beep
from tests.e2e.page_audio import assert_beeps
from tests.e2e.websip.test_sip_websocket import no_calls, realm_of, websocket_config
from tests.e2e.websip.test_softphone_libraries import LIBRARIES
from tests.e2e.websip.test_softphone_library_parity import library_calls, library_on, phone_calls_library


async def _restarts_in_place(softphone: Softphone, gateway: Gateway) -> None:
    """The library restarts ICE; the gateway's new ufrag, a new pair, the gateway's media on it, audio."""
    before = await softphone.ice()
    assert before["state"] == "connected" and before["pair"], before
    await softphone.restart_ice()
    await softphone.wait_for("iceRestarted", timeout=30)
    after = await softphone.ice()
    assert after["remote"] != before["remote"], (before, after)  # the gateway's new credentials
    assert after["local"] != before["local"], (before, after)  # the library's own restart
    # the restart's answer says what every answer says (sdp/opus.py): red before Opus (so that Chromium goes
    # on sending RED), in-band FEC asked, for the calls the library offered and those the gateway offered
    audio = sdp.parse(after["remoteSdp"]).media[0]
    names = [c.name.lower() for c in audio.codecs]
    if "opus" in names:
        assert names.index("red") < names.index("opus"), after["remoteAudio"]
        assert next(c for c in audio.codecs if c.name.lower() == "opus").parameters.get("useinbandfec") == "1"

    async def pair() -> str | None:
        now = await softphone.ice()
        return now["pair"] if now["state"] == "connected" else None

    await web_media_moved(gateway, pair, before["pair"])
    await asyncio.sleep(1.0)
    await softphone.hears(440)


async def _hang_up_heard(softphone: Softphone, phone: DeskPhone, number: int) -> None:
    """alice hangs up after 3 s more on the new path: the phone's recording ends with Chromium's beeps."""
    await asyncio.sleep(3.0)
    await softphone.hangup()
    await phone.wait_for("state", call=number, state="DISCONNECTED")
    assert_beeps(await phone.wait_for_recording(number), "the phone after the restart", last=2.5)


@pytest.mark.parametrize("library", LIBRARIES)
async def test_library_restarts_ice_in_place_and_the_call_goes_on(library: Library, tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        library_on(websocket_config(phone.address), library) as (gateway, softphone),
    ):
        # alice calls the phone (the library offered: the gateway is the controlled agent)
        number = await library_calls(softphone, phone, "2000", realm_of(gateway))
        await softphone.hears(440)
        await _restarts_in_place(softphone, gateway)
        await _hang_up_heard(softphone, phone, number)
        assert await no_calls(gateway)

        # the phone calls alice (the gateway offered: it controlled ICE until the library's restart)
        number = await phone_calls_library(softphone, phone, gateway)
        await softphone.hears(440)
        await _restarts_in_place(softphone, gateway)
        await _hang_up_heard(softphone, phone, number)
        assert await no_calls(gateway)


@pytest.mark.parametrize("library", LIBRARIES)
async def test_a_pass_through_calls_restart_goes_to_the_webrtc_sip_peer(
    library: Library, tmp_path: Path
) -> None:
    """alice's library calls 7001, whose route passes the media through to a WebRTC SIP peer (aiortc): its
    ICE-restart re-INVITE goes to the peer as a re-INVITE with the library's offer as it is, the peer
    restarts ICE in place and answers with new credentials, which reach the library; the call goes on
    both ways over a pair of the new session."""
    async with SipWebRtcPeer(freq=440, user="7001", addresses=None) as peer:
        config = websocket_config(
            peer.address, sections={"routes": [{"match": "7xxx", "media": "passthrough"}]}
        )
        async with library_on(config, library) as (gateway, softphone):
            await softphone.call(f"sip:7001@{realm_of(gateway)}")
            await peer.wait_for_call()
            await peer.answer()
            await softphone.wait_for("confirmed")
            await peer.media.connected(timeout=15)
            await softphone.hears(440)
            before = await softphone.ice()
            await softphone.restart_ice()
            await softphone.wait_for("iceRestarted", timeout=30)
            (reinvite,) = peer.reinvites
            assert reinvite.body.decode().count("a=ice-ufrag:") and peer.restarts == 1
            after = await softphone.ice()
            assert after["remote"] != before["remote"] and after["local"] != before["local"], (before, after)
            await wait_until(lambda: peer.restarts_done == 1, timeout=10)  # a pair of the new session
            peer.media.clear()
            await softphone.hears(440)
            await expect_peer_hears_the_beep(peer, tmp_path)  # Chromium's, since the restart
            await softphone.hangup()
            await asyncio.wait_for(peer.ended.wait(), 10)
            assert await no_calls(gateway)
