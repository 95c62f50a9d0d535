"""A G.729-only phone through the gateway, end to end: sipp does the phone's SIP (an offer or an answer
with payload type 18 and telephone-event only, checked on the wire for ``a=fmtp:18 annexb=no``) and the
test's own RTP peer its media, G.729 encoded and decoded by libbcg729 (peers/audio.py ``RtpTonePeer``
with payload type 18). The web user (aiortc, Opus) sends 1 kHz and must be heard by the phone through
G.729; the phone sends 440 Hz and the web user must hear it. Both ways of calling (codec_phone.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.media.codecs import g729
from peers.audio import PT_G729, RtpTonePeer, has_tone
from peers.binaries import require_binary, unavailable
from peers.webpeer import WebPeer
from tests.e2e.harness import wait_until
from tests.e2e.media.codec_phone import phone_calls_web_user, transcoded, web_user_calls_phone

WEB_TONE, PHONE_TONE = 1000.0, 440.0
CODECS = {"sip": ["PCMU", "G729"]}


def _require() -> None:
    require_binary("sipp")
    if not g729.available():
        unavailable("libbcg729 does not load (Debian package libbcg729-0)")


async def _talk(phone: RtpTonePeer, web: WebPeer, *_: object) -> None:
    """Once the gateway's RTP reaches the phone (symmetric RTP: it answers where that came from), the
    phone plays its tone for 2 s; then both sides must have heard the other's tone."""
    await wait_until(lambda: phone.frames >= 10, timeout=10)
    phone.remote = phone.sources[-1]
    await phone.send_tone(PHONE_TONE, 2.0)
    await wait_until(lambda: web.heard(PHONE_TONE, last=1.0), timeout=5)
    assert has_tone(phone.pcm, 8000, WEB_TONE), "the web user's tone did not reach the G.729 phone"
    assert {p.payload_type for p in phone.packets} == {PT_G729}
    assert {len(p.payload) for p in phone.packets} == {20}  # two 10-byte G.729 frames per 20 ms


async def test_a_g729_only_phone_calls_the_web_user(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _require()
    caplog.set_level(logging.INFO, logger="gateway.media")
    phone = RtpTonePeer(PT_G729)
    await phone.start()
    web = WebPeer(WEB_TONE, ("opus",))
    keys = {"g729_port": str(phone.address[1])}
    try:
        result = await phone_calls_web_user(tmp_path, "uac_g729_only", keys, CODECS, web, phone, _talk)
    finally:
        await web.close()
        phone.close()
    assert result.ok, result  # the 200 answered 18 + telephone-event with annexb=no
    assert transcoded(caplog, "G729") == {"G729 -> opus", "opus -> G729"}


async def test_the_web_user_calls_a_g729_only_phone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _require()
    caplog.set_level(logging.INFO, logger="gateway.media")
    phone = RtpTonePeer(PT_G729)
    await phone.start()
    web = WebPeer(WEB_TONE, ("opus",))
    keys = {"g729_port": str(phone.address[1])}
    try:
        result = await web_user_calls_phone(tmp_path, "uas_g729_only", keys, CODECS, web, phone, _talk)
    finally:
        await web.close()
        phone.close()
    assert result.ok, result  # our offer had G729 with annexb=no
    assert transcoded(caplog, "G729") == {"G729 -> opus", "opus -> G729"}
