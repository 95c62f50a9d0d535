"""DTLS-SRTP offers from the SIP side (RFC 5763, RFC 5764): which are taken (media.sip_srtp), and the
answer: the offer's profile, our fingerprint, a=setup by RFC 5763 §5, rtcp-mux when offered, ICE-lite
(RFC 8445 §2.5) when the offer has ICE. The offer is baresip's (tests/data/sdp)."""

from __future__ import annotations

from pathlib import Path

import pytest

import sdp

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "sdp"
OURS = sdp.Fingerprint("sha-256", ":".join(["A5"] * 32))
ICE = sdp.IceParameters("gwufrag1", "gatewaypasswordgatewaypa", lite=True)
HOST = sdp.Candidate.parse("candidate:1 1 udp 2130706431 198.51.100.1 40000 typ host")


def baresip(setup: str = "actpass", *, ice: bool = True, mux: bool = True) -> sdp.SessionDescription:
    lines = (SAMPLES / "baresip-offer-dtls-ice.sdp").read_text().splitlines()
    lines = [line.replace("a=setup:actpass", f"a=setup:{setup}") for line in lines]
    if not ice:
        lines = [line for line in lines if not line.startswith(("a=ice-", "a=candidate"))]
    if not mux:
        lines = [line for line in lines if line != "a=rtcp-mux"]
    return sdp.parse("\r\n".join(lines) + "\r\n")


def answer(offer: sdp.SessionDescription, setup: sdp.Setup, *, ice: bool = True) -> sdp.MediaDescription:
    transport = sdp.PlainTransport(
        "198.51.100.1",
        40000,
        dtls=sdp.DtlsParameters((OURS,), setup),
        ice=ICE if ice else None,
        candidates=(HOST,) if ice else (),
    )
    reply = sdp.answer(offer, codecs=["PCMU/8000"], transport=transport, preference=sdp.Preference.ANSWERER)
    assert reply.has("ice-lite") is ice  # session level (RFC 8839 §5.3)
    return reply.media[0]


@pytest.mark.parametrize("srtp", ["optional", "required"])
def test_a_dtls_srtp_offer_is_taken_unless_srtp_is_off(srtp: str) -> None:
    offer = baresip()
    assert sdp.is_dtls_srtp(offer, 0)
    assert sdp.check_audio_offer(offer, ["PCMU"], srtp=srtp) == 0


def test_with_sip_srtp_off_a_dtls_srtp_offer_keeps_its_488_and_reason() -> None:
    with pytest.raises(sdp.SdpUnacceptable) as refused:
        sdp.check_audio_offer(baresip(), ["PCMU"], srtp="off")
    assert refused.value.warning == 302 and refused.value.sip_status == 488
    assert "UDP/TLS/RTP/SAVPF (DTLS-SRTP)" in str(refused.value)


def test_holdconn_and_a_missing_fingerprint_are_refused_with_302() -> None:
    with pytest.raises(sdp.SdpUnacceptable, match="holdconn") as refused:
        sdp.check_audio_offer(baresip("holdconn"), ["PCMU"], srtp="optional")
    assert refused.value.warning == 302
    text = sdp.write(baresip()).replace("a=fingerprint:", "a=x-fingerprint:")
    with pytest.raises(sdp.SdpUnacceptable, match="without a=fingerprint") as refused:
        sdp.check_audio_offer(sdp.parse(text), ["PCMU"], srtp="optional")
    assert refused.value.warning == 302
    assert not sdp.is_dtls_srtp(sdp.parse(text), 0)


def test_the_answer_keeps_the_profile_and_carries_our_fingerprint_role_mux_and_ice_lite() -> None:
    section = answer(baresip(), sdp.Setup.ACTIVE)
    assert section.proto == "UDP/TLS/RTP/SAVPF" and section.port == 40000
    assert section.fingerprints == (OURS,) and section.setup is sdp.Setup.ACTIVE
    assert section.rtcp_mux and section.rtcp is not None and section.rtcp.port == 40000  # RFC 5761 §5.1.3
    assert section.ice == sdp.IceParameters(ICE.ufrag, ICE.pwd)
    assert section.values("candidate") == (HOST.to_sdp().removeprefix("candidate:"),)
    assert [c.name for c in section.codecs] == ["PCMU", "telephone-event"]
    assert not section.cryptos


@pytest.mark.parametrize(
    ("offered", "ours"),
    [("actpass", sdp.Setup.ACTIVE), ("passive", sdp.Setup.ACTIVE), ("active", sdp.Setup.PASSIVE)],
)
def test_setup_is_answered_by_rfc_5763(offered: str, ours: sdp.Setup) -> None:
    offer = baresip(offered)
    dtls = offer.dtls_for(0)
    assert dtls is not None and dtls.setup.answer() is ours
    assert answer(offer, sdp.Setup.ACTPASS).setup is ours  # resolved against the media-level a=setup too


def test_without_ice_or_rtcp_mux_the_answer_has_neither() -> None:
    section = answer(baresip(ice=False, mux=False), sdp.Setup.ACTIVE, ice=False)
    assert not section.rtcp_mux and section.rtcp is not None and section.rtcp.port == 40001
    assert section.ice is None and not section.values("candidate")


def test_a_plain_transport_takes_sdes_or_dtls_and_ice_only_with_dtls() -> None:
    with pytest.raises(sdp.SdpParseError, match="not both"):
        sdp.PlainTransport("198.51.100.1", 40000, crypto=sdp.Crypto.new(), dtls=sdp.DtlsParameters((OURS,)))
    with pytest.raises(sdp.SdpParseError, match="ICE"):
        sdp.PlainTransport("198.51.100.1", 40000, ice=ICE)


def test_a_plain_offer_is_not_answered_by_a_dtls_transport() -> None:
    plain = sdp.parse((SAMPLES / "baresip-offer.sdp").read_text())
    with pytest.raises(sdp.SdpUnacceptable):
        answer(plain, sdp.Setup.ACTIVE, ice=False)


def test_a_webrtc_stack_on_the_sip_side_gets_its_mid_and_bundle_group_back() -> None:
    """aiortc's offer (a WebRTC-capable SIP peer): the answer keeps a=mid (RFC 5888 §9.1) and the BUNDLE
    group (RFC 8843 §7.3) that aiortc insists on, with rtcp-mux, ICE-lite and a=setup:active."""
    offer = sdp.parse((SAMPLES / "aiortc-offer-audio.sdp").read_text())
    transport = sdp.PlainTransport(
        "198.51.100.1",
        40000,
        dtls=sdp.DtlsParameters((OURS,), sdp.Setup.ACTPASS),
        ice=ICE,
        candidates=(HOST,),
    )
    reply = sdp.answer(
        offer, codecs=["opus/48000/2"], transport=transport, preference=sdp.Preference.ANSWERER
    )
    assert reply.bundle_mids() == ("0",) and reply.has("ice-lite")
    audio = reply.media[0]
    assert audio.mid == "0" and audio.rtcp_mux and audio.setup is sdp.Setup.ACTIVE
    assert audio.proto == "UDP/TLS/RTP/SAVPF"


def test_a_dtls_offer_without_mid_gets_no_mid_and_no_group() -> None:
    reply = answer(baresip(), sdp.Setup.ACTPASS)
    assert reply.mid is None
