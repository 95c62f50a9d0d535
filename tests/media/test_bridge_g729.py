"""A G.729-only phone through the media bridge: an aiortc browser (Opus) <-> bridge <-> a plain RTP phone
that speaks only G.729 (libbcg729), both ways, transcoded in the Python path (the fast lane's C lanes
carry G.711 <-> Opus only, so a G.729 call never arms one)."""

from __future__ import annotations

import pytest

import sdp
from gateway.media.codecs import g729
from gateway.media.events import CodecChosen
from gateway.media.rtp.ports import RtpPortAllocator
from peers.audio import PT_G729
from peers.binaries import unavailable
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, allocator


@pytest.fixture(autouse=True)
def _libbcg729() -> None:
    if not g729.available():  # a failure under CI=true, where scripts/system-packages.txt installs it
        unavailable("libbcg729 (Debian libbcg729-0) not installed")


SIP_CODECS = ("PCMU", "G729")


@pytest.fixture
def ports() -> RtpPortAllocator:
    return allocator()


def _g729_phone(ports: RtpPortAllocator) -> Call:
    return Call(
        ports,
        web_codecs=("opus", "telephone-event"),
        sip_codec="G729",
        phone_payload_type=PT_G729,
        sip_codecs=SIP_CODECS,
    )


async def test_a_g729_phone_calls_an_opus_browser(ports: RtpPortAllocator) -> None:
    call = _g729_phone(ports)
    try:
        await call.pbx_calls()  # the phone's offer: m=audio ... RTP/AVP 18 101
        await call.connected()
        await call.play(1.2)
        assert call.of_type(CodecChosen)[-1] == CodecChosen("opus/48000", "G729/8000", transcoding=True)
        assert call.web.heard(SIP_TONE, last=0.8)
        assert call.phone.heard(WEB_TONE)
        assert {p.payload_type for p in call.phone.packets} == {PT_G729}
        assert {len(p.payload) for p in call.phone.packets} == {20}  # two 10 ms frames per packet
        stats = call.bridge.stats()
        assert stats.web_to_sip.transcoded > 40 and stats.sip_to_web.transcoded > 40
        assert call.link is None  # no fast-lane engine carries G.729
    finally:
        await call.close()


async def test_a_browser_calls_a_g729_only_phone(ports: RtpPortAllocator) -> None:
    call = _g729_phone(ports)
    try:
        await call.browser_calls()  # our offer lists G729 after the shared codecs; the phone picks it
        assert call.plain_offer is not None
        section = call.plain_offer.media[0]
        assert sdp.Codec(18, "G729", 8000, 1, "annexb=no") in section.codecs
        await call.connected()
        await call.play(1.2)
        assert call.of_type(CodecChosen)[-1].transcoding
        assert call.web.heard(SIP_TONE, last=0.8)
        assert call.phone.heard(WEB_TONE)
        assert {p.payload_type for p in call.phone.packets} == {PT_G729}
    finally:
        await call.close()
