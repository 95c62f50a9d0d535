"""A G.722 desk phone and a browser through the gateway, kept wideband end to end (issue 66 item 2): sipp
does the phone's SIP (an offer or an answer of payload type 9 and telephone-event only) and the test's own
RTP peer its media, G.722 at 16 kHz through FFmpeg (peers/audio.py ``RtpTonePeer`` with payload type 9).
The web user (aiortc, Opus only, so the gateway transcodes G.722 <-> Opus) sends 5 kHz and the phone
6 kHz: both above 4 kHz, so either is heard at the far end only if nothing on the way (decoder,
resampler, concealment, the Opus encoder's band) was narrowband. Both ways of calling (codec_phone.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from peers.audio import PT_G722, RtpTonePeer, has_tone
from peers.binaries import require_binary
from peers.webpeer import WebPeer
from tests.e2e.harness import wait_until
from tests.e2e.media.codec_phone import phone_calls_web_user, transcoded, web_user_calls_phone

WEB_TONE, PHONE_TONE = 5000.0, 6000.0  # above narrowband's 4 kHz, and apart
WIDEBAND = 16000
CODECS = {"sip": ["G722"], "webrtc": ["opus"]}


async def _talk(phone: RtpTonePeer, web: WebPeer, *_: object) -> None:
    """Once the gateway's RTP reaches the phone (symmetric RTP: it answers where that came from), the
    phone plays its tone for 2 s; then both sides must have heard the other's tone, at 16 kHz."""
    await wait_until(lambda: phone.frames >= 25, timeout=10)
    phone.remote = phone.sources[-1]
    await phone.send_tone(PHONE_TONE, 2.0)
    await wait_until(lambda: web.heard(PHONE_TONE, last=1.0), timeout=5)
    assert has_tone(phone.pcm[-WIDEBAND:], WIDEBAND, WEB_TONE), "the web user's 5 kHz did not reach the phone"
    assert {p.payload_type for p in phone.packets} == {PT_G722}
    assert {len(p.payload) for p in phone.packets} == {160}  # 20 ms of G.722 at 64 kbit/s


def _wideband_answer(answer: str) -> None:
    # RFC 7587 §6.1: the browser is told it may send (and will get) 16 kHz audio, not 8
    assert "maxplaybackrate=16000" in answer, answer


@pytest.mark.parametrize("calling", ["phone", "web user"])
async def test_a_g722_phone_and_the_web_user_hear_each_other_above_4_khz(
    calling: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_binary("sipp")
    caplog.set_level(logging.INFO, logger="gateway.media")
    phone = RtpTonePeer(PT_G722)
    await phone.start()
    web = WebPeer(WEB_TONE, ("opus",), rate=WIDEBAND)
    keys = {"g722_port": str(phone.address[1])}
    try:
        if calling == "phone":
            result = await phone_calls_web_user(tmp_path, "uac_g722_only", keys, CODECS, web, phone, _talk)
        else:
            result = await web_user_calls_phone(
                tmp_path, "uas_g722_only", keys, CODECS, web, phone, _talk, _wideband_answer
            )
    finally:
        await web.close()
        phone.close()
    assert result.ok, result  # G.722 (9) offered and answered
    assert transcoded(caplog, "G722") == {"G722 -> opus", "opus -> G722"}
