"""One call's video on the fast lane (issue 19): the SIP side's video socket read by the call's engine link,
and a video lane per direction armed with what the ``VideoBridge``'s paths would do.

The browser's video arrives bundled on the web leg's ICE socket, which the link reads already: the engine
unprotects it with the web leg's SRTP session and gives packets of the video lane's SSRC to that lane
(never to the audio lane, which they would disarm). The SIP side's video has a socket of its own
(``VideoBridge.endpoint``): ``NativeLink.video`` adds it to the link, and asyncio stops reading it while
linked (``SocketHandover``). With SDES-SRTP on the video m-line (``sdp.video_sdes``) the link gets the
endpoint's libsrtp sessions too and the endpoint runs them through a ``SerializedSrtp`` stand-in (the
engine's video sessions) while linked; new keys make the link stale (``stale``), as the audio's do. A lane does ``video.VideoPath.feed`` natively (payload types mapped, repair
formats dropped, sequence numbers shifted with gaps kept, padding-only probes closed up, timestamps on the
output timeline, keyframes counted) and accounts as the Python path would: the input's receive statistics
(aiortc's flavour for the browser's stream, RFC 3550 for the SIP side's), the output's sender counters.

Everything else stays Python's: RTCP of either side (PLI, FIR: ``VideoBridge``'s keyframe logic, which
turns them into SIP INFO picture_fast_update where the SIP side wants INFO), a new source, a timestamp
jump, a payload type the lane does not know, a held direction, and a path that wants a keyframe asked
(``VideoPath.keyframe_wanted``: its next packet goes the Python way, which asks).
"""

from __future__ import annotations

import asyncio
import logging

from gateway.media.fastlane.engine import SerializedSrtp
from gateway.media.fastlane.native import (
    STATS_AIORTC,
    STATS_RFC3550,
    Address,
    NativeLink,
    arm_video,
    video_snapshot,
)
from gateway.media.native_hooks import SocketHandover, srtp_session_pointer
from gateway.media.rtp.rtp_endpoint import RtpEndpoint
from gateway.media.rtp.send_guard import SendGuard
from gateway.media.rtp.srtp import SipSrtp
from gateway.media.video.video_bridge import VideoBridge

__all__ = ["VIDEO_TO_SIP", "VIDEO_TO_WEB", "VideoLanes"]

logger = logging.getLogger(__name__)

VIDEO_TO_SIP, VIDEO_TO_WEB = 0, 1  # the engine's video lane numbers


class VideoLanes:
    """The video part of one ``FastLaneController``'s link."""

    def __init__(self, call_id: str) -> None:
        self._call = call_id
        self.endpoint: RtpEndpoint | None = None  # the SIP side's video endpoint whose socket is linked
        self._handover: SocketHandover | None = None
        self._input_pt = 0  # a payload type of the browser's video (a clock rate for its statistics)
        # the endpoint's SRTP whose sessions the engine holds: kept alive until the link is closed
        self._srtp: SipSrtp | None = None
        self._guard: SendGuard | None = None  # what the transmit session of those sent (send_guard.py)

    def stale(self, video: VideoBridge | None) -> bool:
        """The linked video endpoint is gone or replaced, or its SRTP keys changed: the link must be made
        again without (or with) it (a link reads the socket and uses the sessions it was given until it
        closes)."""
        return self.endpoint is not None and (
            video is None or video.endpoint is not self.endpoint or self.endpoint.srtp is not self._srtp
        )

    def _attach(self, native: NativeLink, video: VideoBridge) -> bool:
        """Add the SIP side's video socket to the link once the video is negotiated (plain RTP)."""
        endpoint = video.endpoint
        if self.endpoint is not None:
            return self.endpoint is endpoint
        if endpoint is None or not video.active or endpoint.rtp_transport is None:
            return False
        srtp = endpoint.srtp
        sessions = srtp.sessions if srtp is not None else None
        if srtp is not None and (sessions is None or srtp.separate_rtcp):
            return False  # SRTP without keys yet, or RTCP keyed apart (DTLS-SRTP): the Python path
        pointers = tuple(srtp_session_pointer(s) for s in sessions) if sessions is not None else ()
        try:
            handover = SocketHandover(asyncio.get_running_loop(), [endpoint.rtp_transport])
            native.video(handover.fds[0], *pointers)
        except (ValueError, OSError) as exc:
            logger.info("call=%s video stays on the Python path: %s", self._call, exc)
            return False
        handover.take()
        if srtp is not None:  # RFC 4568 keys of the video m-line: the engine holds the sessions now
            endpoint.serialize_srtp(SerializedSrtp(native, srtp, sip=True, video=True))
        self._handover, self.endpoint, self._srtp = handover, endpoint, srtp
        self._guard = endpoint.guard if srtp is not None else None  # a new key: a new link, a new guard
        logger.info("call=%s fast lane: the SIP side's video linked%s", self._call, " (SRTP)" * bool(srtp))
        return True

    def arm(self, native: NativeLink, video: VideoBridge | None, remote: Address) -> None:
        """Arm each video lane whose next packet the engine can take as the Python path would."""
        if video is None or not self._attach(native, video):
            return
        endpoint, web = self.endpoint, video.web
        assert endpoint is not None
        to_sip = video.to_sip.lane()
        destination = endpoint.remote_rtp_address if endpoint.direction.sends else None
        armed = False
        if to_sip is not None and destination is not None and web is not None and web.connected:
            native.set_video_output(VIDEO_TO_SIP, 0x80, endpoint.ssrc)
            self._input_pt = min(pt for pt, _ in to_sip.mapping)
            armed = arm_video(
                native, VIDEO_TO_SIP, remote, destination, to_sip, STATS_AIORTC,
                web.receiver.reception_state(to_sip.ssrc), self._guard,
            )  # fmt: skip
        if not armed:
            native.disarm_video(VIDEO_TO_SIP)
        to_web = video.to_web.lane()
        source = endpoint.latched_address
        parts = web.sender.fast_lane_parts() if web is not None and web.connected else None
        armed = False
        if to_web is not None and source is not None and parts is not None and web is not None:
            _, _, first, _, extension = parts
            native.set_video_output(VIDEO_TO_WEB, first, web.sender.ssrc, extension)
            statistics = endpoint.statistics
            reception = (
                statistics.state() if statistics is not None and statistics.ssrc == to_web.ssrc else None
            )
            armed = arm_video(
                native, VIDEO_TO_WEB, source, remote, to_web, STATS_RFC3550, reception, web.sender.guard
            )
        if not armed:
            native.disarm_video(VIDEO_TO_WEB)

    def disarm(self, native: NativeLink) -> None:
        if self.endpoint is not None:
            native.disarm_video(VIDEO_TO_SIP)
            native.disarm_video(VIDEO_TO_WEB)

    def sync(self, native: NativeLink, video: VideoBridge | None) -> None:
        """Copy what the engine accounted for each video lane into the paths and the legs."""
        if video is None or self.endpoint is None:
            return
        endpoint, web = self.endpoint, video.web
        to_sip = video_snapshot(native, VIDEO_TO_SIP)
        if to_sip is not None:
            video.to_sip.fast_account(to_sip)
            if web is not None:
                web.receiver.restore_reception(to_sip.ssrc, to_sip.reception, self._input_pt)
            endpoint.add_sent(to_sip.sent, to_sip.octets, to_sip.out_ts, to_sip.departure)
        to_web = video_snapshot(native, VIDEO_TO_WEB)
        if to_web is not None:
            endpoint.fast_received(to_web.ssrc, to_web.reception, to_web.arrival, restarted=to_web.restarted)
            video.to_web.fast_account(to_web)
            if web is not None:
                web.sender.add_sent(to_web.sent, to_web.octets, to_web.out_ts, to_web.departure)

    def datagram(self, data: bytes, source: Address, *, decrypted: bool) -> None:
        """A datagram of the SIP side's video socket the engine left to Python: to its endpoint."""
        if self.endpoint is not None:
            self.endpoint.datagram(data, source, decrypted=decrypted)

    def unlinked(self) -> None:
        """The link closed: asyncio reads the video socket again."""
        handover, self._handover, endpoint, self.endpoint = self._handover, None, self.endpoint, None
        if endpoint is not None:
            endpoint.serialize_srtp(None)
        self._srtp = self._guard = None
        if handover is not None:
            handover.give_back()
