"""An HTTP API client whose media dies mid-call renews it with a new offer for its session (issue 34 item
2): an aiortc client calls the pjsua2 desk phone with an API key; its process "dies" (ICE sockets closed,
nothing said). The gateway reports `web_lost` and, once the media is given up
(`media.inactivity_timeout`), keeps the call for `web_auth.reconnect_grace` instead of ending it. The
client's new RTCPeerConnection posts its offer with the same `session_id`: the answer comes in the 200
(a new web leg on the same SIP leg, a new DTLS association), the client hears the phone, the phone hears
the client's new tone, and the phone never saw a BYE or a re-INVITE. `POST /webrtc/close` then ends it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_offer import KEY, _config, _post, _sse
from tests.e2e.dialects.test_http_offer_loss import PHONE_TONE, die
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.softphone.test_reconnect import tail_has_tone


async def test_a_client_renews_its_lost_media_with_a_new_offer_for_its_session(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running_gateway(_config(phone.address)) as gateway,  # reconnect_grace: the default 30 s
        aiohttp.ClientSession() as http,
    ):
        base = gateway.http_url
        first, second = WebPeer(freq=1000), WebPeer(freq=1300)
        try:
            offer = {"sdp": {"type": "offer", "sdp": await first.offer()}, "metadata": {"dial": "2000"}}
            status, body = await _post(http, f"{base}/webrtc/offer", offer, KEY)
            assert status == 200, body
            session_id = body["session_id"]
            events = await http.get(f"{base}{body['events_url']}", headers=KEY)
            await first.accept(body["sdp"]["sdp"])
            await _sse(events, ["answered"])
            number = int((await phone.wait_for("incoming"))["call"])
            await wait_until(lambda: first.heard(PHONE_TONE, last=1.0), timeout=10)
            media_changes = len(phone.seen("media", call=number))

            die(first)
            await _sse(events, ["web_lost"], timeout=10)
            await asyncio.sleep(gateway.config.media.inactivity_timeout + 1.0)  # the web leg is given up
            assert not phone.seen("state", call=number, state="DISCONNECTED")
            assert gateway.driver.calls == 1

            again = {"sdp": {"type": "offer", "sdp": await second.offer()}, "session_id": session_id}
            status, renewed = await _post(http, f"{base}/webrtc/offer", again, KEY)
            assert status == 200 and renewed["session_id"] == session_id, renewed
            await second.accept(renewed["sdp"]["sdp"])
            await _sse(events, ["renewed"])
            await wait_until(lambda: second.heard(PHONE_TONE, last=1.0), timeout=10)
            await asyncio.sleep(1.5)  # the new tone in the phone's recording
            assert len(phone.seen("media", call=number)) == media_changes  # no re-INVITE
            status, closed = await _post(http, f"{base}/webrtc/close", {"session_id": session_id}, KEY)
            assert status == 200, closed
            events.close()
        finally:
            await asyncio.gather(first.close(), second.close())
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert tail_has_tone(await phone.wait_for_recording(number), 1300), (
            "the phone did not hear the renewal"
        )
