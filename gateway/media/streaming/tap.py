"""``StreamTap``: an audio stream's ``AudioFilter`` on a call's bridge (gateway/media/bridge_state.py).

Each packet a leg sends is decoded (``LegAudio``) and its PCM queued in the stream's ``StreamFrames``;
when the app's audio goes to the far end of that packet (``Inject``), the payload forwarded is the same
audio with the app's mixed in. The browser's audio goes to the SIP party: ``inject: sip`` mixes into it;
the SIP party's goes to the browser: ``inject: web``. Mixing rides on the leg's own packets, so the app
is heard while that leg sends (a desk phone and a browser send all along; a muted or DTX browser sends
nothing to mix into). A tap never raises into the bridge: a failure is logged, the packet goes on as it came.
"""

from __future__ import annotations

import dataclasses
import logging

from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.events import Leg
from gateway.media.rtp.packet import RtpPacket
from gateway.media.streaming.frames import StreamFrames
from gateway.media.streaming.leg_audio import LegAudio

logger = logging.getLogger(__name__)


class StreamTap:
    def __init__(self, frames: StreamFrames, *, call_id: str = "-") -> None:
        self.frames = frames
        self._call = call_id
        self._web = LegAudio(frames.rate, name="web", call_id=call_id)
        self._sip = LegAudio(frames.rate, name="sip", call_id=call_id)
        self._failed = False

    def web(self, payload_type: int, payload: bytes, codecs: LegCodecs | None) -> tuple[int, bytes]:
        try:
            heard = self._web.hear(payload_type, payload, codecs, lambda n: self.frames.injected(Leg.SIP, n))
        except Exception:
            self._fail("web")
            return payload_type, payload
        if heard.pcm:
            self.frames.push(Leg.WEB, heard.pcm)
        return heard.payload_type, heard.payload

    def sip(self, packet: RtpPacket, codecs: LegCodecs | None) -> RtpPacket:
        try:
            heard = self._sip.hear(
                packet.payload_type, packet.payload, codecs, lambda n: self.frames.injected(Leg.WEB, n)
            )
        except Exception:
            self._fail("sip")
            return packet
        if heard.pcm:
            self.frames.push(Leg.SIP, heard.pcm)
        if heard.payload is packet.payload and heard.payload_type == packet.payload_type:
            return packet
        return dataclasses.replace(packet, payload_type=heard.payload_type, payload=heard.payload)

    def _fail(self, leg: str) -> None:
        if not self._failed:  # once: a broken decoder must not flood the log at 50 packets a second
            self._failed = True
            logger.exception("call=%s audio stream: the %s leg's audio could not be taken", self._call, leg)

    @property
    def errors(self) -> int:
        return self._web.errors + self._sip.errors

    def close(self) -> None:
        self._web.close()
        self._sip.close()
        self.frames.close()
