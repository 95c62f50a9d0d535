"""Our answer to a browser's first offer, written before aiortc is asked (issue 64 item 2).

aiortc answers in three steps, ~1.7 ms of a call's offer -> answer (bench/RESULTS.md, "Call setup"):
``setRemoteDescription`` (its own parse, transports, the codec negotiation), ``createAnswer`` and
``setLocalDescription`` (gathering: the ICE sockets, the connect task). Everything its answer says is
known before any of them runs: the ICE credentials (aioice drew them when the transceiver was made), the
DTLS fingerprints (the process's certificate), the SSRC, CNAME and msid (drawn with the sender), the host
candidates (the sockets ``IceSockets.reserve`` takes, bound ahead by the ICE socket pool, ice_pool.py)
and the codecs and header extensions (aiortc's own negotiation functions, pure, run here on the offer).

``write_answer`` writes that answer with aiortc's own SDP writer, as its ``createAnswer`` after
``setLocalDescription`` would (a single audio m-line); the web leg gives it to the browser at once and
applies the offer to aiortc afterwards, off the request path, then checks that aiortc wrote the same
(``agrees``). What this cannot write returns None and the web leg takes aiortc's three steps first, as
before: an offer with video or a data channel kept, ICE servers (server-reflexive and relayed
candidates come from the network), sockets the OS picks, a peer connection that has a description or an
SCTP transport already, an offer aiortc's parser or negotiation refuses.
"""

from __future__ import annotations

import logging

from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCIceCandidate, RTCPeerConnection, RTCRtpTransceiver, clock
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS, HEADER_EXTENSIONS, is_rtx
from aiortc.rtcdtlstransport import RTCDtlsParameters
from aiortc.rtcicetransport import RTCIceParameters, candidate_from_aioice
from aiortc.rtcpeerconnection import (
    DISCARD_HOST,
    DISCARD_PORT,
    and_direction,
    filter_preferred_codecs,
    find_common_codecs,
    find_common_header_extensions,
    reverse_direction,
)
from aiortc.rtcrtpparameters import RTCRtpParameters

from gateway.media.webrtc import aiortc_hooks

logger = logging.getLogger(__name__)


def write_answer(
    pc: RTCPeerConnection, transceiver: RTCRtpTransceiver, offer: str, hosts: list[tuple[str, int]]
) -> str | None:
    """The answer aiortc would give to ``offer`` (one audio m-line, for ``transceiver``, its codec
    preferences already set) once gathered on ``hosts`` ((address, port) of the reserved sockets);
    None when it cannot be written ahead (module note)."""
    if pc.signalingState != "stable" or pc.localDescription is not None or pc.sctp is not None:
        return None
    if len(pc.getTransceivers()) != 1 or not hosts:
        return None
    try:
        remote = aiortc_sdp.SessionDescription.parse(offer)
    except (ValueError, KeyError, IndexError):
        return None
    if len(remote.media) != 1 or remote.media[0].kind != "audio":
        return None
    theirs = remote.media[0]
    if theirs.ice is None or theirs.dtls is None or not theirs.rtp.muxId:
        return None
    codecs = filter_preferred_codecs(
        find_common_codecs(CODECS["audio"], theirs.rtp.codecs), transceiver._preferred_codecs
    )
    if not codecs:
        return None  # aiortc refuses it ("Failed to set remote audio description"): its own words
    sender = transceiver.sender
    media = aiortc_sdp.MediaDescription(
        kind="audio", port=DISCARD_PORT, profile="UDP/TLS/RTP/SAVPF", fmt=[c.payloadType for c in codecs]
    )
    media.direction = and_direction(transceiver.direction, reverse_direction(theirs.direction))
    media.msid = f"{sender._stream_id} {sender._track_id}"
    media.rtp = RTCRtpParameters(
        codecs=codecs,
        headerExtensions=find_common_header_extensions(
            HEADER_EXTENSIONS["audio"], theirs.rtp.headerExtensions
        ),
        muxId=theirs.rtp.muxId,
    )
    media.rtcp_host, media.rtcp_port, media.rtcp_mux = DISCARD_HOST, DISCARD_PORT, True
    cname = str(pc._RTCPeerConnection__cname)  # drawn with the peer connection
    media.ssrc = [aiortc_sdp.SsrcDescription(ssrc=sender._ssrc, cname=cname)]
    if any(is_rtx(c) for c in codecs):
        return None  # (audio has no RTX in aiortc; were it to, its SSRC pair is aiortc's to write)
    connection = aiortc_hooks.ice_connection(pc)
    media.ice_candidates = [host_candidate(address, port) for address, port in hosts]
    media.ice_candidates_complete = True
    media.ice = RTCIceParameters(
        usernameFragment=connection.local_username, password=connection.local_password
    )
    media.host, media.port = hosts[0]
    # RFC 5763 §5: an offer that is active makes us passive; actpass (and passive) makes us active
    role = "server" if theirs.dtls.role == "client" else "client"
    dtls = transceiver.receiver.transport
    media.dtls = RTCDtlsParameters(fingerprints=dtls.getLocalParameters().fingerprints, role=role)
    return session("answer", [media])


def session(kind: str, media: list[aiortc_sdp.MediaDescription]) -> str:
    """The description of ``media`` (``kind``: offer or answer) as aiortc's createOffer and createAnswer
    write its session level: o= from the NTP clock, msid-semantic WMS *, every m-line in BUNDLE."""
    description = aiortc_sdp.SessionDescription()
    seconds = clock.current_ntp_time() >> 32
    description.origin = f"- {seconds} {seconds} IN IP4 0.0.0.0"
    description.msid_semantic.append(aiortc_sdp.GroupDescription(semantic="WMS", items=["*"]))
    description.type = kind
    description.media.extend(media)
    mids: list[int | str] = [section.rtp.muxId for section in media]
    description.group.append(aiortc_sdp.GroupDescription(semantic="BUNDLE", items=mids))
    return str(description)


def host_candidate(address: str, port: int) -> RTCIceCandidate:
    """The host candidate ``IceSockets`` will gather on that socket (ice_ports.py, component 1)."""
    return candidate_from_aioice(
        Candidate(
            foundation=candidate_foundation("host", "udp", address),
            component=1,
            transport="udp",
            priority=candidate_priority(1, "host"),
            host=address,
            port=port,
            type="host",
        )
    )


def agrees(ours: str, aiortc_answer: str) -> bool:
    """Whether aiortc's answer, once it has one, says what ours did (all but the o= line)."""
    return _without_origin(ours) == _without_origin(aiortc_answer)


def _without_origin(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("o=")]
