"""Every captured sample parses, classifies as expected and round-trips exactly."""

from __future__ import annotations

import pytest

import sdp
from tests.sdp.samples import KINDS, NAMES, load, text


def test_every_sample_has_an_expected_kind() -> None:
    assert sorted(KINDS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_sample_parses_and_classifies(name: str) -> None:
    assert sdp.classify(load(name)) is KINDS[name]


@pytest.mark.parametrize("name", NAMES)
def test_sample_round_trips_exactly(name: str) -> None:
    original = text(name)
    description = sdp.parse(original)
    written = sdp.write(description)
    assert written == original
    assert sdp.parse(written) == description


@pytest.mark.parametrize("name", NAMES)
def test_attribute_order_is_kept(name: str) -> None:
    original = text(name)
    description = sdp.parse(original)
    a_lines = [line[2:] for line in original.splitlines() if line.startswith("a=")]
    ours = [str(a) for a in description.attributes] + [
        str(a) for m in description.media for a in m.attributes
    ]
    assert ours == a_lines


@pytest.mark.parametrize("name", NAMES)
def test_lf_only_input_is_accepted(name: str) -> None:
    original = text(name)
    assert sdp.parse(original.replace("\r\n", "\n")) == sdp.parse(original)


def test_chromium_offer_typed_views() -> None:
    offer = load("chromium-offer-audio")
    audio = offer.media[0]
    assert offer.bundle_mids() == ("0",)
    assert audio.mid == "0"
    assert [c.name for c in audio.codecs] == [
        "opus",
        "red",
        "G722",
        "PCMU",
        "PCMA",
        "CN",
        "telephone-event",
        "telephone-event",
    ]
    opus = audio.codecs[0]
    assert (opus.payload_type, opus.clock_rate, opus.channels) == (111, 48000, 2)
    assert opus.parameters == {"minptime": "10", "useinbandfec": "1"}
    assert opus.rtcp_fb == ("transport-cc",)
    assert audio.rtcp == sdp.Rtcp(9, "0.0.0.0")
    assert audio.rtcp_mux and audio.ptime is None
    assert audio.direction is sdp.Direction.SENDRECV
    ice = offer.ice_for(0)
    assert ice is not None and (ice.ufrag, ice.pwd, ice.trickle) == ("PRwu", "QGPzNJUBiA5/2k4/0J3DKQBq", True)
    dtls = offer.dtls_for(0)
    assert (
        dtls is not None and dtls.setup is sdp.Setup.ACTPASS and dtls.fingerprints[0].algorithm == "sha-256"
    )
    tcp = audio.candidates[2]
    assert (tcp.protocol, tcp.tcptype, tcp.port) == ("tcp", "active", 9)
    assert tcp.extensions == (("generation", "0"), ("network-id", "1"), ("network-cost", "50"))
    assert offer.get("msid-semantic") == " WMS a09ab40f-657f-494e-b147-f95a1b4f45fd"


def test_aiortc_offer_keeps_three_fingerprints() -> None:
    dtls = load("aiortc-offer-audio").dtls_for(0)
    assert dtls is not None
    assert [f.algorithm for f in dtls.fingerprints] == ["sha-256", "sha-384", "sha-512"]
    assert load("aiortc-offer-audio").media[0].end_of_candidates


def test_baresip_session_level_ice_and_dtls() -> None:
    offer = load("baresip-offer-dtls-ice")
    assert offer.media[0].ice is None and offer.ice is not None
    ice = offer.ice_for(0)
    assert ice is not None and ice.ufrag == "9hBtlTn"
    dtls = offer.dtls_for(0)
    assert (
        dtls is not None and dtls.fingerprints[0].algorithm == "SHA-256" and dtls.setup is sdp.Setup.ACTPASS
    )
    assert offer.media[0].candidates[0].transport == "UDP"
    assert offer.media[0].candidates[0].protocol == "udp"
    assert offer.connection_for(0) == sdp.Connection("192.0.2.2")
    assert offer.media[0].ptime == 20


def test_static_payload_types_without_rtpmap() -> None:
    offer = load("linphone-offer")
    codecs = {c.payload_type: c for c in offer.media[0].codecs}
    assert (codecs[0].name, codecs[8].name, codecs[18].name) == ("PCMU", "PCMA", "G729")
    assert codecs[18].fmtp == "annexb=yes"
    assert offer.get("rtcp-xr") == "rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics"


def test_pjsua2_bandwidth_and_unknown_attributes() -> None:
    offer = load("pjsua2-offer")
    assert offer.bandwidths == (sdp.Bandwidth("AS", 84),)
    assert offer.media[0].bandwidths == (sdp.Bandwidth("TIAS", 64000),)
    assert offer.get("X-nat") == "0"
    assert offer.media[0].rtcp == sdp.Rtcp(40001, "127.0.0.1")
    g722 = next(c for c in offer.media[0].codecs if c.payload_type == 9)
    assert g722.clock_rate == 8000  # RFC 3551 §4.5.2


def test_hold_directions() -> None:
    assert load("pjsua2-offer-hold").direction_for(0) is sdp.Direction.SENDONLY
    assert load("pjsua2-answer-hold").direction_for(0) is sdp.Direction.RECVONLY
    assert load("sipp-offer").direction_for(0) is sdp.Direction.SENDRECV  # RFC 3264 §5.1 default


def test_datachannel_is_not_rtp() -> None:
    offer = load("chromium-offer-datachannel")
    application = offer.media[0]
    assert not application.is_rtp and application.codecs == () and application.payload_types == ()
    assert application.formats == ("webrtc-datachannel",)
    assert offer.get("msid-semantic") == " WMS"


def test_firefox_offer_typed_views() -> None:
    """Firefox ESR 153's habits: mids "0", "1", "2"; a=rtcp with a real port and component-2 candidates
    beside a=rtcp-mux; an extmap with a direction; a session-level a=sendrecv; no H264 (no OpenH264)."""
    offer = load("firefox-offer-audio-video-datachannel")
    audio, video, data = offer.media
    assert offer.bundle_mids() == ("0", "1", "2") and [m.mid for m in offer.media] == ["0", "1", "2"]
    assert offer.direction is sdp.Direction.SENDRECV
    assert [c.name for c in audio.codecs] == ["opus", "G722", "PCMU", "PCMA", "telephone-event"]
    opus = audio.codecs[0]
    assert (opus.payload_type, opus.clock_rate, opus.channels) == (109, 48000, 2)
    assert opus.parameters == {"maxplaybackrate": "48000", "stereo": "1", "useinbandfec": "1"}
    assert audio.codecs[-1].fmtp == "0-15"
    assert audio.rtcp == sdp.Rtcp(59807, "192.0.2.2") and audio.rtcp_mux
    assert [c.component for c in audio.candidates] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert "2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level" in audio.values("extmap")
    dtls = offer.dtls_for(0)
    assert dtls is not None and dtls.setup is sdp.Setup.ACTPASS
    assert [c.name for c in video.codecs] == [
        "VP8",
        "rtx",
        "VP9",
        "rtx",
        "AV1",
        "rtx",
        "ulpfec",
        "red",
        "rtx",
    ]
    assert data.get("max-message-size") == "1073741823" and data.candidates[0].component == 1


def test_firefox_re_offer_keeps_the_negotiated_codecs_and_ids() -> None:
    """Firefox's ICE-restart re-offer after answering the gateway's offer: only the payload types and
    extmap ids negotiated (PCMU 0, PCMA 8, G722 9, opus 96, telephone-event 126), no component 2."""
    offer = load("firefox-offer-ice-restart")
    audio = offer.media[0]
    assert audio.payload_types == (0, 8, 9, 96, 126)
    assert audio.values("extmap")[:3] == (
        "2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "9/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level",
        "1 urn:ietf:params:rtp-hdrext:sdes:mid",
    )
    assert {c.component for c in audio.candidates} == {1} and audio.rtcp is None
