"""A SIP phone that speaks Opus (as Asterisk, FreeSWITCH and WebRTC SIP peers offer it) and a browser:
the Opus is forwarded, never decoded (issue 66 item 4). sipp does the phone's SIP (opus/48000/2 with
useinbandfec=1 offered, the 200 checked on the wire for the same) and the test's own RTP peer its media
(peers/audio.py ``RtpTonePeer`` with payload type 111): libopus at 32 kbit/s with in-band FEC, as such a
phone sends it. The web user is aiortc (Opus only).

What shows it is forwarded: the browser receives the phone's payloads byte for byte, in-band FEC (the
LBRR copy of the previous frame each one carries, RFC 6716 §2.1.7) included; the bridge's counters say
both directions forwarded and nothing transcoded; no path logs a transcoding. Audio both ways: each side
decodes the other's tone."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.media.codecs.opus_decoder import OpusDecoder
from peers.audio import PT_OPUS, Opus, RtpTonePeer, sine
from peers.binaries import require_binary
from peers.webpeer import WebPeer
from tests.e2e.harness import wait_until
from tests.e2e.media.codec_phone import phone_calls_web_user, transcoded
from tests.e2e.sip_interop.test_hold import bridge_stats

WEB_TONE, PHONE_TONE = 1000.0, 440.0
CODECS = {"sip": ["opus"], "webrtc": ["opus"]}
SECONDS = 2.0


def _phone_payloads() -> list[bytes]:
    """The phone's tone as 20 ms Opus payloads with in-band FEC (``Opus``), encoded once."""
    encoder, tone = Opus(), sine(PHONE_TONE, 48000, SECONDS)
    return [encoder.encode(tone[960 * i : 960 * (i + 1)]) for i in range(len(tone) // 960)]


def _carries_fec(previous: bytes, packet: bytes) -> bool:
    """Whether ``packet`` holds an LBRR copy of the frame before it: decoding that frame from its FEC
    differs from libopus's concealment of it (which is what a packet without one gives)."""
    from_fec, from_plc = OpusDecoder(48000), OpusDecoder(48000)
    from_fec.decode(previous)
    from_plc.decode(previous)
    return from_fec.conceal(960, packet) != from_plc.conceal(960, None)


async def test_an_opus_phone_and_the_web_user_forwarded_without_decoding(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_binary("sipp")
    caplog.set_level(logging.INFO, logger="gateway.media")
    phone = RtpTonePeer(PT_OPUS)
    await phone.start()
    web = WebPeer(WEB_TONE, ("opus",))
    sent = _phone_payloads()
    assert sum(_carries_fec(a, b) for a, b in itertools.pairwise(sent[10:21])) >= 5  # the phone's FEC

    async def talk(phone: RtpTonePeer, web: WebPeer, gateway: Gateway, call_id: str) -> None:
        await wait_until(lambda: phone.frames >= 25, timeout=10)
        phone.remote = phone.sources[-1]
        await phone.send_encoded(sent, SECONDS)
        await wait_until(lambda: web.heard(PHONE_TONE, last=1.0), timeout=5)
        assert phone.heard(WEB_TONE), "the web user's tone did not reach the Opus phone"
        stats = bridge_stats(gateway, call_id)
        assert not stats.transcoding
        for path in (stats.sip_to_web, stats.web_to_sip):
            assert path.forwarded > 0 and path.transcoded == 0, stats

    keys = {"opus_port": str(phone.address[1])}
    try:
        result = await phone_calls_web_user(tmp_path, "uac_opus_only", keys, CODECS, web, phone, talk)
    finally:
        await web.close()
        phone.close()
    assert result.ok, result  # the 200 answered 111 with useinbandfec=1
    heard = [payload for pt, payload in web.payloads if payload in set(sent)]
    assert len(heard) >= 0.9 * len(sent)  # byte for byte, FEC and all (loopback loses none: a margin)
    assert heard == [p for p in sent if p in set(heard)]  # in order
    assert transcoded(caplog, "opus") == set()
