"""The captured SDP samples of tests/data/sdp (see its README.md for who produced each and how)."""

from __future__ import annotations

from pathlib import Path

import sdp

DATA = Path(__file__).resolve().parent.parent / "data" / "sdp"
NAMES = sorted(p.stem for p in DATA.glob("*.sdp"))

KINDS = {
    "aiortc-answer-audio": sdp.SdpKind.WEBRTC,
    "aiortc-offer-audio": sdp.SdpKind.WEBRTC,
    "baresip-offer-dtls-ice": sdp.SdpKind.WEBRTC,
    "baresip-offer": sdp.SdpKind.PLAIN_RTP,
    "baresip-offer-video": sdp.SdpKind.PLAIN_RTP,
    "chromium-answer-audio": sdp.SdpKind.WEBRTC,
    "chromium-offer-audio-pcmu": sdp.SdpKind.WEBRTC,
    "chromium-offer-audio-video": sdp.SdpKind.WEBRTC,
    "chromium-offer-audio-video-datachannel": sdp.SdpKind.WEBRTC,
    "chromium-offer-audio": sdp.SdpKind.WEBRTC,
    "chromium-offer-datachannel": sdp.SdpKind.WEBRTC,
    "firefox-answer-audio-datachannel": sdp.SdpKind.WEBRTC,
    "firefox-offer-audio": sdp.SdpKind.WEBRTC,
    "firefox-offer-audio-video-datachannel": sdp.SdpKind.WEBRTC,
    "firefox-offer-ice-restart": sdp.SdpKind.WEBRTC,
    "linphone-offer": sdp.SdpKind.PLAIN_RTP,
    "pjsua2-answer-hold": sdp.SdpKind.PLAIN_RTP,
    "pjsua2-answer-pcmu-g722": sdp.SdpKind.PLAIN_RTP,
    "pjsua2-answer-to-sipp": sdp.SdpKind.PLAIN_RTP,
    "pjsua2-answer": sdp.SdpKind.PLAIN_RTP,
    "pjsua2-offer-hold": sdp.SdpKind.PLAIN_RTP,
    "pjsua2-offer": sdp.SdpKind.PLAIN_RTP,
    "sipp-answer": sdp.SdpKind.PLAIN_RTP,
    "sipp-offer": sdp.SdpKind.PLAIN_RTP,
}

# The SIP leg's codecs in the tests: what pjsua2 is configured with (ARCHITECTURE.md) plus opus.
SIP_CODECS = ["PCMU", "PCMA", "G722", "opus"]
FINGERPRINT = sdp.Fingerprint("sha-256", ":".join(f"{i:02X}" for i in range(32)))
ICE = sdp.IceParameters("gWay", "gatewaypassword0123456789")
DTLS = sdp.DtlsParameters((FINGERPRINT,), sdp.Setup.ACTPASS)
HOST = sdp.Candidate("1", 1, "udp", 2130706431, "192.0.2.10", 50000)


def text(name: str) -> str:
    """The sample exactly as captured (CRLF kept)."""
    with open(DATA / f"{name}.sdp", newline="") as f:
        return f.read()


def load(name: str) -> sdp.SessionDescription:
    return sdp.parse(text(name))
