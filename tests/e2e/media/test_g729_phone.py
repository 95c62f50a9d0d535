"""A G.729-only phone through the gateway, end to end: sipp does the phone's SIP (an offer or an answer
with payload type 18 and telephone-event only, checked on the wire for ``a=fmtp:18 annexb=no``) and the
test's own RTP peer its media, G.729 encoded and decoded by libbcg729 (peers/audio.py ``RtpTonePeer``
with payload type 18). The web user (aiortc, Opus) sends 1 kHz and must be heard by the phone through
G.729; the phone sends 440 Hz and the web user must hear it. Both ways of calling."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from gateway.media.codecs import g729
from peers.audio import PT_G729, RtpTonePeer, has_tone
from peers.binaries import require_binary, unavailable
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

WEB_TONE, PHONE_TONE = 1000.0, 440.0
CODECS = {"sip": ["PCMU", "G729"]}
_TRANSCODING = re.compile(r" transcoding (\S+ -> \S+)$")


def _require() -> None:
    require_binary("sipp")
    if not g729.available():
        unavailable("libbcg729 does not load (Debian package libbcg729-0)")


async def _talk(phone: RtpTonePeer, web: WebPeer) -> None:
    """Once the gateway's RTP reaches the phone (symmetric RTP: it answers where that came from), the
    phone plays its tone for 2 s; then both sides must have heard the other's tone."""
    await wait_until(lambda: phone.frames >= 10, timeout=10)
    phone.remote = phone.sources[-1]
    await phone.send_tone(PHONE_TONE, 2.0)
    await wait_until(lambda: web.heard(PHONE_TONE, last=1.0), timeout=5)
    assert has_tone(phone.pcm, 8000, WEB_TONE), "the web user's tone did not reach the G.729 phone"
    assert {p.payload_type for p in phone.packets} == {PT_G729}
    assert {len(p.payload) for p in phone.packets} == {20}  # two 10-byte G.729 frames per 20 ms


def _transcoded(caplog: pytest.LogCaptureFixture) -> set[str]:
    """What the calls' paths said they transcode ("call=... sip->web transcoding G729 -> opus")."""
    return {found[1] for m in caplog.messages if (found := _TRANSCODING.search(m)) and "G729" in m}


async def test_a_g729_only_phone_calls_the_web_user(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _require()
    caplog.set_level(logging.INFO, logger="gateway.media")
    phone = RtpTonePeer(PT_G729)
    await phone.start()
    web = WebPeer(WEB_TONE, ("opus",))
    try:
        async with (
            running_gateway(gateway_config(None, codecs=CODECS)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            host, port = gateway.sip_address
            keys = {"g729_port": str(phone.address[1])}
            sipp = Sipp(
                tmp_path, "uac_g729_only", f"{host}:{port}", service="1001", duration_ms=5000, keys=keys
            )
            try:
                await sipp.start()
                incoming = await alice.wait_for("incoming")
                await alice.answer(incoming["call_id"], web.answer)
                await _talk(phone, web)
                await alice.wait_for("ended", call_id=incoming["call_id"], timeout=15)
                result = await sipp.wait(timeout=15)
            finally:
                await sipp.stop()
    finally:
        await web.close()
        phone.close()
    assert result.ok, result  # the 200 answered 18 + telephone-event with annexb=no
    assert _transcoded(caplog) == {"G729 -> opus", "opus -> G729"}


async def test_the_web_user_calls_a_g729_only_phone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _require()
    caplog.set_level(logging.INFO, logger="gateway.media")
    phone = RtpTonePeer(PT_G729)
    await phone.start()
    web = WebPeer(WEB_TONE, ("opus",))
    keys = {"g729_port": str(phone.address[1])}
    try:
        async with Sipp(tmp_path, "uas_g729_only", calls=1, keys=keys) as pbx:
            config = gateway_config(pbx.address, codecs=CODECS)  # no OPTIONS keepalive: sipp takes one call
            config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0.0))
            async with (
                running_gateway(config) as gateway,
                WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            ):
                call_id = await alice.call("2000", await web.offer())
                await web.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
                await _talk(phone, web)
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
            result = await pbx.wait(timeout=10)
    finally:
        await web.close()
        phone.close()
    assert result.ok, result  # our offer had G729 with annexb=no
    assert _transcoded(caplog) == {"G729 -> opus", "opus -> G729"}
