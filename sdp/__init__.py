"""Pure SDP handling: parse, write, classify, translate WebRTC <-> plain RTP, negotiate, trickle ICE.

    import sdp
    offer = sdp.parse(text)                      # SdpParseError (SIP 400) when unparsable
    sdp.classify(offer)                          # SdpKind.WEBRTC, PLAIN_RTP, SDES_SRTP, ...
    plain = sdp.to_plain(offer, address="192.0.2.10", port=40000, codecs=["PCMU", "PCMA", "G722", "opus"])
    sdp.write(plain)                             # CRLF text for the SIP INVITE
    reply = sdp.answer(offer, codecs=["PCMU"], transport=sdp.PlainTransport("192.0.2.10", 40000))

Every error is an ``SdpError`` with the ``sip_status`` to answer with (400 or 488). The package is
standard library plus sdp-transform's line grammar; it does no I/O.
"""

from sdp.acceptance import check_audio_offer, is_dtls_srtp
from sdp.candidate import Candidate
from sdp.classify import SdpKind, classify, classify_media
from sdp.codecs import STATIC_PAYLOAD_TYPES, Codec, CodecSpec
from sdp.crypto import Crypto
from sdp.errors import SdpError, SdpParseError, SdpUnacceptable
from sdp.model import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    Rtcp,
    SessionDescription,
)
from sdp.negotiate import Preference, answer
from sdp.opus import audio_rate, red_for_opus, with_opus_fec, with_opus_playback_rate, with_opus_red
from sdp.parser import parse, write
from sdp.translate import to_plain, to_webrtc
from sdp.transport import DtlsParameters, Fingerprint, IceParameters, PlainTransport, Setup, WebRtcTransport
from sdp.trickle import (
    MEDIA_TYPE as TRICKLE_MEDIA_TYPE,
)
from sdp.trickle import (
    IceCandidateInit,
    TrickleFragment,
    TrickleMedia,
    candidate_from_json,
    candidate_to_json,
    decode_sdpfrag,
    encode_sdpfrag,
    fragment_from_json,
    fragment_to_json,
)

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "TRICKLE_MEDIA_TYPE",
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Codec",
    "CodecSpec",
    "Connection",
    "Crypto",
    "Direction",
    "DtlsParameters",
    "Fingerprint",
    "IceCandidateInit",
    "IceParameters",
    "MediaDescription",
    "Origin",
    "PlainTransport",
    "Preference",
    "Rtcp",
    "SdpError",
    "SdpKind",
    "SdpParseError",
    "SdpUnacceptable",
    "SessionDescription",
    "Setup",
    "TrickleFragment",
    "TrickleMedia",
    "WebRtcTransport",
    "answer",
    "audio_rate",
    "candidate_from_json",
    "candidate_to_json",
    "check_audio_offer",
    "classify",
    "classify_media",
    "decode_sdpfrag",
    "encode_sdpfrag",
    "fragment_from_json",
    "fragment_to_json",
    "is_dtls_srtp",
    "parse",
    "red_for_opus",
    "to_plain",
    "to_webrtc",
    "with_opus_fec",
    "with_opus_playback_rate",
    "with_opus_red",
    "write",
]
