"""The HTTP offer API's answer asks the browser for Opus in-band FEC (issue 35): a whole gateway, an aiortc
client that offers Opus only, a pjsua2 desk phone (G.711: the call is transcoded); the answer's Opus
fmtp says useinbandfec=1 (aiortc, which makes our answers, writes none), and audio flows."""

from __future__ import annotations

from pathlib import Path

import aiohttp

import sdp
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_offer import KEY, _config, _post
from tests.e2e.harness import running_gateway, wait_until


async def test_the_answer_of_a_real_call_asks_for_opus_inband_fec(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(_config(phone.address)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        base = gateway.http_url
        peer = WebPeer(freq=1000, codecs=("opus",))
        try:
            offer = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "session_id": "fec-answer"}
            status, body = await _post(http, f"{base}/webrtc/offer", offer, KEY)
            assert status == 200, body
            answer = body["sdp"]["sdp"]
            (audio,) = [m for m in sdp.parse(answer).media if m.media == "audio"]
            (opus,) = [c for c in audio.codecs if c.name.lower() == "opus"]
            assert opus.parameters.get("useinbandfec") == "1", answer
            assert "usedtx" not in opus.parameters  # media.opus_usedtx: false
            await peer.accept(answer)
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            status, closed = await _post(http, f"{base}/webrtc/close", {"session_id": "fec-answer"}, KEY)
            assert (status, closed["status"]) == (200, "closed"), closed
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
