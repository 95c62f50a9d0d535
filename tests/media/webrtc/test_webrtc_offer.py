"""codec_choice.webrtc_offer: the gateway's offer to a WebRTC-only SIP side (a route's sip_offer: webrtc)
reads back as what WebRTC stacks require, and the answer they write is what the SIP leg takes."""

from __future__ import annotations

import sdp
from gateway.media.codecs import codec_choice as choice
from gateway.media.rtp import ice_lite
from gateway.media.rtp.dtls_srtp import DtlsCertificate


def test_the_offer_carries_dtls_actpass_ice_lite_mux_and_bundle() -> None:
    certificate = DtlsCertificate()
    ice = ice_lite.new_parameters()
    codecs = [choice.known("opus"), choice.known("PCMU")]
    offer = choice.webrtc_offer(
        codecs, address="192.0.2.7", port=40000, telephone_event=True,
        dtls=sdp.DtlsParameters((certificate.fingerprint,), sdp.Setup.ACTPASS), ice=ice,
        candidate=ice_lite.host_candidate("192.0.2.7", 40000), direction=sdp.Direction.SENDONLY,
    )  # fmt: skip
    parsed = sdp.parse(sdp.write(offer))
    audio = parsed.media[0]
    assert audio.proto == "UDP/TLS/RTP/SAVPF" and audio.port == 40000 and audio.mid == "0"
    assert audio.rtcp_mux and audio.get("rtcp") is None  # muxed: no RFC 3605 port
    assert parsed.has("ice-lite") and parsed.bundle_mids() == ("0",)
    assert parsed.ice_for(0) is not None and parsed.ice_for(0).ufrag == ice.ufrag  # type: ignore[union-attr]
    dtls = parsed.dtls_for(0)
    assert (
        dtls is not None
        and dtls.setup is sdp.Setup.ACTPASS
        and dtls.fingerprints == (certificate.fingerprint,)
    )
    assert [c.port for c in audio.candidates] == [40000]
    assert [c.name for c in audio.codecs][:2] == ["opus", "PCMU"]
    assert parsed.effective_direction(0) is sdp.Direction.SENDONLY
    assert sdp.is_dtls_srtp(parsed, 0)
