"""Our first offer to a browser, written before aiortc is asked (issue 64 item 3: a phone calls a web user).

aiortc offers in two steps, ``createOffer`` and ``setLocalDescription`` (gathering: the ICE sockets of
every m-line's transport, the connect task), ~2-7 ms of the INVITE -> the browser's offer
(bench/RESULTS.md). What its offer says is known before either runs, as for our answer (web_answer.py):
the ICE credentials (aioice drew them with the transceiver; a data channel's transport is given the
same), the DTLS fingerprints (the process's certificate; ``actpass``, RFC 8842 §5.2), the SSRC, CNAME and
msid (drawn with the sender), the codecs (aiortc's list filtered by the transceiver's preferences, as
``createOffer`` does), the mids (``0`` for the audio, ``1`` for a data channel: JSEP §5.2.1 puts it after
the audio), BUNDLE and rtcp-mux, and the host candidates of the sockets ``IceSockets.reserve_for`` takes
for each m-line's ICE connection (bound ahead by the ICE socket pool, ice_pool.py).

``write_offer`` writes that offer with aiortc's own SDP writer, as its ``localDescription`` reads once
gathered; the web leg gives it to the browser at once and runs aiortc's two steps in a task afterwards,
then checks that aiortc wrote the same (``web_answer.agrees``: all but the o= line). What this cannot
write returns None and the web leg takes aiortc's steps first, as before: a video transceiver, ICE
servers (server-reflexive and relayed candidates come from the network), sockets the OS picks, a peer
connection that has a description already (a re-offer), aiortc's legacy SCTP syntax, RTX.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS, HEADER_EXTENSIONS, is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcpeerconnection import DISCARD_HOST, DISCARD_PORT, filter_preferred_codecs
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtcsctptransport import RTCSctpTransport

from gateway.media.webrtc.ahead.web_answer import host_candidate, session

AUDIO_MID, DATA_MID = "0", "1"  # aiortc's allocate_mid on a first offer: the audio, then the data channel


def transports(pc: RTCPeerConnection) -> list[RTCDtlsTransport] | None:
    """The DTLS transports of the m-lines of a first offer, in their order (the audio's, then a data
    channel's: each gathers its own ICE sockets); None when ``write_offer`` cannot write it."""
    transceivers = pc.getTransceivers()
    if pc.signalingState != "stable" or pc.localDescription is not None or pc.remoteDescription is not None:
        return None
    if len(transceivers) != 1 or transceivers[0].kind != "audio" or transceivers[0].mid is not None:
        return None
    found = [transceivers[0].receiver.transport]
    sctp = pc.sctp
    if sctp is not None:
        if sctp.mid is not None or pc._sctpLegacySdp or sctp.transport in found:
            return None  # (a bundled data channel is aiortc's max-bundle; the web leg's policy is balanced)
        found.append(sctp.transport)
    if pc._RTCPeerConnection__configuration.alwaysNegotiateDataChannels:  # (the web leg never sets it)
        return None
    return found


def write_offer(pc: RTCPeerConnection, hosts: list[list[tuple[str, int]]]) -> str | None:
    """The offer aiortc's ``createOffer`` and ``setLocalDescription`` would make on ``pc`` (one audio
    m-line, its codec preferences set, and a data channel's m-line when one was created) once gathered
    on ``hosts``: the (address, port) of the sockets reserved for each of ``transports(pc)``, in order;
    None when it cannot be written ahead (module note)."""
    dtls = transports(pc)
    if dtls is None or len(hosts) != len(dtls) or not all(hosts):
        return None
    transceiver = pc.getTransceivers()[0]
    codecs = filter_preferred_codecs(CODECS["audio"][:], transceiver._preferred_codecs)
    if not codecs or any(is_rtx(c) for c in codecs):
        return None  # (audio has no RTX in aiortc; were it to, its SSRC pair is aiortc's to write)
    sender = transceiver.sender
    audio = aiortc_sdp.MediaDescription(
        kind="audio", port=DISCARD_PORT, profile="UDP/TLS/RTP/SAVPF", fmt=[c.payloadType for c in codecs]
    )
    audio.direction = transceiver.direction
    audio.msid = f"{sender._stream_id} {sender._track_id}"
    audio.rtp = RTCRtpParameters(
        codecs=codecs, headerExtensions=HEADER_EXTENSIONS["audio"][:], muxId=AUDIO_MID
    )
    audio.rtcp_host, audio.rtcp_port, audio.rtcp_mux = DISCARD_HOST, DISCARD_PORT, True
    cname = getattr(pc, "_RTCPeerConnection__cname", None)  # drawn with the peer connection
    if not isinstance(cname, str):
        return None
    audio.ssrc = [aiortc_sdp.SsrcDescription(ssrc=sender._ssrc, cname=cname)]
    media = [audio]
    if len(dtls) == 2:
        sctp = pc.sctp
        assert isinstance(sctp, RTCSctpTransport)  # transports() found its DTLS transport
        data = aiortc_sdp.MediaDescription(
            kind="application", port=DISCARD_PORT, profile="UDP/DTLS/SCTP", fmt=["webrtc-datachannel"]
        )
        data.sctp_port = sctp.port
        data.rtp.muxId = DATA_MID
        data.sctpCapabilities = sctp.getCapabilities()
        media.append(data)
    for section, transport, on in zip(media, dtls, hosts, strict=True):
        section.ice_candidates = [host_candidate(address, port) for address, port in on]
        section.ice_candidates_complete = True
        section.ice = transport.transport.iceGatherer.getLocalParameters()
        section.host, section.port = on[0]
        section.dtls = transport.getLocalParameters()  # role "auto": a=setup:actpass
    return session("offer", media)
