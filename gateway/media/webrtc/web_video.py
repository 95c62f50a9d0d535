"""The web leg's video (issue 19): one aiortc video transceiver, bundled with the audio, never decoded.

* The transceiver is added before the browser's offer is applied (codec preferences must precede
  ``setRemoteDescription``); its preferences are the codecs the SIP side took, matched by
  ``sdp.video.compatible`` against aiortc's table (VP8, H.264 packetization-mode 1 in Constrained
  Baseline and Baseline, and VP9 profile-id 0 and 2, which ``aiortc_hooks.register_vp9`` adds to it),
  and never rtx: the browser then sends no retransmissions either.
* RTP in: the audio's ``DirectReceiver`` hands the payload types it does not take to this one's
  (``via``), decrypted, straight from the ICE socket callback; aiortc's decoder thread is stopped.
* RTP out: a ``DirectSender`` with the sequence numbers of the ``VideoPath`` (gaps kept).
* Keyframes: the browser's PLI/FIR of our stream calls ``on_keyframe_request``
  (``aiortc_hooks.on_keyframe_request``); ``request_keyframe`` sends the browser a PLI for its stream
  (``aiortc_hooks.send_picture_loss``).
* Bandwidth: the browser's REMB for our stream calls ``on_bitrate_limit`` (``aiortc_hooks.on_bitrate_limit``:
  aiortc's answer keeps ``goog-remb``); ``limit_bitrate`` sends the browser a REMB for its stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.rtp import RtpPacket as AiortcRtpPacket

import sdp
from gateway.media.video.forward import VideoOut
from gateway.media.webrtc import aiortc_direct, aiortc_hooks, aiortc_receive
from sdp import video

__all__ = ["WebVideo", "carried_codecs", "video_capabilities"]

logger = logging.getLogger(__name__)


def _as_codec(capability: RTCRtpCodecCapability) -> sdp.Codec:
    fmtp = ";".join(f"{k}={v}" for k, v in capability.parameters.items()) or None
    return sdp.Codec(96, capability.name, capability.clockRate or 90000, fmtp=fmtp)


def _capabilities() -> list[RTCRtpCodecCapability]:
    """aiortc's video table, VP9 included (forwarded only, never decoded)."""
    aiortc_hooks.register_vp9()
    return RTCRtpSender.getCapabilities("video").codecs


def video_capabilities(codecs: Sequence[sdp.Codec]) -> list[RTCRtpCodecCapability]:
    """aiortc's video capabilities compatible with ``codecs``, in their order (rtx left out)."""
    chosen: list[RTCRtpCodecCapability] = []
    for codec in codecs:
        for capability in _capabilities():
            if video.compatible(codec, _as_codec(capability)) and capability not in chosen:
                chosen.append(capability)
    return chosen


def carried_codecs() -> list[sdp.Codec]:
    """The video codecs the web leg can carry (aiortc's table, repair formats left out), in its order:
    what the browser is offered when no SIP offer says which (a late offer)."""
    codecs = [_as_codec(c) for c in _capabilities()]
    return [c for c in codecs if not video.is_repair(c)]


class WebVideo:
    """The video transceiver of one ``RTCPeerConnection``; ``on_rtp`` as the audio's."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        audio: aiortc_receive.DirectReceiver,
        *,
        on_rtp: aiortc_receive.RawRtpHandler,
        on_keyframe_request: Callable[[], None],
        call_id: str = "-",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._call = call_id
        self._on_rtp = on_rtp
        aiortc_hooks.register_vp9()  # before aiortc reads its table for this transceiver's description
        self.transceiver = pc.addTransceiver("video", direction="sendrecv")
        self.sender = aiortc_direct.attach_direct_sender(self.transceiver.sender, clock=clock)
        self.receiver = aiortc_receive.attach_direct_receiver(self.transceiver.receiver, self._rtp, via=audio)
        aiortc_hooks.tap_receiver(self.transceiver.receiver, self._tapped, clock_rate=90000)
        aiortc_hooks.on_keyframe_request(self.transceiver.sender, on_keyframe_request)
        aiortc_hooks.on_bitrate_limit(self.transceiver.sender, self._remb)
        # the browser's REMB for our stream: its bitrate (bit/s) to ``on_bitrate_limit`` when set
        self.on_bitrate_limit: Callable[[int], None] | None = None
        self.remote_ssrc: int | None = None
        self.connected = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.keyframes_asked = 0

    def prefer(self, codecs: Sequence[sdp.Codec]) -> bool:
        """Set the codec preferences (before the description is applied); False when aiortc has none."""
        capabilities = video_capabilities(codecs)
        if capabilities:
            self.transceiver.setCodecPreferences(capabilities)
        return bool(capabilities)

    def _rtp(
        self, ssrc: int, sequence: int, timestamp: int, payload_type: int, marker: bool, payload: bytes
    ) -> None:
        self.remote_ssrc = ssrc
        if self.connected:
            self._on_rtp(ssrc, sequence, timestamp, payload_type, marker, payload)

    def _tapped(self, packet: AiortcRtpPacket) -> bool:
        self._rtp(
            packet.ssrc, packet.sequence_number, packet.timestamp, packet.payload_type,
            bool(packet.marker), packet.payload,
        )  # fmt: skip
        return True

    def send(self, out: VideoOut, now: float | None = None) -> bool:
        """One packet to the browser with the path's sequence number; False when it cannot go now."""
        if not self.connected:
            return False
        self.sender.next_sequence = out.sequence
        return self.sender.send(out.payload, out.timestamp, out.payload_type, out.marker, now)

    def request_keyframe(self) -> bool:
        """Send the browser a PLI for its video (RFC 4585 §6.3.1); False before its first packet."""
        ssrc = self.remote_ssrc
        if ssrc is None or not self.connected:
            return False
        self.keyframes_asked += 1
        self._spawn(aiortc_hooks.send_picture_loss(self.transceiver.receiver, ssrc))
        logger.debug("call=%s PLI to the browser for SSRC %08x", self._call, ssrc)
        return True

    def limit_bitrate(self, bitrate: int) -> bool:
        """Send the browser a REMB: at most ``bitrate`` bit/s for its video (``bandwidth``); False before
        its first packet."""
        ssrc = self.remote_ssrc
        if ssrc is None or not self.connected:
            return False
        self._spawn(aiortc_hooks.send_remb(self.transceiver.receiver, bitrate, [ssrc]))
        logger.debug("call=%s REMB %d bit/s to the browser for SSRC %08x", self._call, bitrate, ssrc)
        return True

    def _remb(self, bitrate: int, ssrcs: tuple[int, ...]) -> None:
        if self.on_bitrate_limit is not None and self.sender.ssrc in ssrcs:
            self.on_bitrate_limit(bitrate)

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self.connected = False
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.sender.idle_track.stop()
