"""`RoomLeg`: a conference's WebRTC leg (to a browser, a SIP party's call, or a WHEP player) feeding
one participant of the room's mixer, and the codecs each kind of leg offers.

This module owns the legs; it imports `sdp` and the media package's WebRTC leg, events and mixer
errors, and names `Conference` (conference.py) for typing only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import sdp
from gateway.media.codecs.mixer import MixerError
from gateway.media.events import DtlsFailed, IceFailed, MediaEvent
from gateway.media.webrtc.webrtc_leg import WebLegOptions, WebRtcLeg

if TYPE_CHECKING:
    from gateway.runtime.rooms.conference import Conference

logger = logging.getLogger(__name__)

BROWSERS: Final = "browsers"  # the mixer group of a room's browsers (they hear each other directly)
SIP_CODECS: Final = (sdp.Codec(0, "PCMU", 8000), sdp.Codec(8, "PCMA", 8000))
WEB_CODECS: Final = (sdp.Codec(111, "opus", 48000, 2),)


def _negotiated(description: sdp.SessionDescription | None, names: tuple[str, ...]) -> tuple[str, int] | None:
    """The first of the audio m-line's codecs named in `names`: (name, payload type)."""
    if description is None or not description.media:
        return None
    for codec in description.media[0].codecs:
        if codec.name.lower() in names:
            return codec.name.lower(), codec.payload_type
    return None


class RoomLeg:
    """A conference's WebRTC leg (to a browser, or to a SIP party's call) feeding one mixer participant."""

    def __init__(self, conference: Conference, participant: str, options: WebLegOptions) -> None:
        self.conference = conference
        self.participant = participant
        self.payload_type: int | None = None
        self.codec: str | None = None
        self.pending: list[sdp.IceCandidateInit] = []
        self.web = WebRtcLeg(options, on_rtp=self._rtp, on_event=self._event, call_id=f"room-{participant}")

    def _rtp(
        self, ssrc: int, sequence: int, timestamp: int, payload_type: int, marker: bool, payload: bytes
    ) -> None:
        if payload_type == self.payload_type:
            self.conference.mixer.push(self.participant, payload)

    def _event(self, event: MediaEvent) -> None:
        if isinstance(event, (IceFailed, DtlsFailed)):
            logger.info("room %s: leg of %s failed: %s", self.conference.room_id, self.participant, event)
            self.conference.leg_failed(self)

    def mix(
        self, description: sdp.SessionDescription | None, names: tuple[str, ...], group: str | None
    ) -> None:
        """The negotiation is done: join the mix with the codec agreed."""
        chosen = _negotiated(description, names)
        if chosen is None:
            raise MixerError(f"no codec of {names} was agreed with {self.participant}")
        self.codec, self.payload_type = chosen
        web = self.web

        def send(payload: bytes, timestamp: int) -> None:
            web.send(payload, timestamp)

        self.conference.mixer.add(self.participant, self.codec, send, group=group)

    async def close(self) -> None:
        self.conference.mixer.remove(self.participant)
        await self.web.close()
