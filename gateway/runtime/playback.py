"""WHEP playback of a call (issue 17): a player hears what the far end of a WHIP or HTTP API session's
call sends, the SIP side's audio.

How it works: ``CallPlaybackService.watch`` finds the session's call (by the session id, or by its call id)
and its media bridge, answers the player's offer with a WebRTC leg of its own (``WebRtcLeg``, raw RTP,
nothing decoded) in the SIP side's codec, and taps the bridge's SIP RTP (``MediaBridge.add_tap``): each
packet of that codec is written to the player as it came (payload and timestamp; the leg has its own
SSRC and sequence). No transcoding, so a player must accept the SIP side's codec (browsers and aiortc
take PCMU/PCMA; else 400, field ``sdp``). While a call has a player, its RTP goes the Python path (the
fast lane would keep the packets from the tap). A player ends with ``unwatch`` (DELETE), when the call's
bridge closes, or when its own ICE/DTLS fails. A pass-through call has no media of the gateway's to tap
(`CallMedia.passes_through`): 409. This module owns the players; it imports the media package's
WebRTC leg, RTP and events, the runtime's `CallMedia`, the signaling's errors, and names the driver
for typing only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import sdp
from gateway.identity import WebUser
from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.errors import MediaError
from gateway.media.events import DtlsFailed, IceFailed, MediaEvent
from gateway.media.rtp.packet import RtpPacket
from gateway.media.webrtc.webrtc_leg import WebLegOptions, WebRtcLeg, capabilities
from gateway.runtime.call_media import CallMedia
from gateway.signaling.errors import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    from gateway.runtime.driver import CallDriver
    from gateway.runtime.offers import HttpSession

logger = logging.getLogger(__name__)

MAX_PLAYERS: Final = 4  # per call


@dataclass(slots=True)
class _Player:
    id: str
    user_id: str
    call_id: str
    bridge: CallMedia
    leg: WebRtcLeg


class CallPlaybackService:
    """`CallPlayback` (gateway/signaling/whip/call_playback.py) over the driver's HTTP sessions."""

    def __init__(self, driver: CallDriver, leg_options: Callable[[], WebLegOptions]) -> None:
        self._driver = driver
        self._leg_options = leg_options
        self._players: dict[str, _Player] = {}
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    def _session(self, user: WebUser, session_id: str) -> HttpSession:
        """The user's session named by its id, or by its call's id."""
        try:
            return self._driver.http_session(user, session_id)
        except NotFound:
            for session in self._driver.http_sessions_of(user):
                if session.call_id == session_id:
                    return session
            raise

    async def watch(self, session_id: str, user: WebUser, offer: str) -> tuple[str, str]:
        session = self._session(user, session_id)
        runtime = next((r for r in self._driver.runtimes if r.call_id == session.call_id), None)
        if runtime is None or session.closed:
            raise NotFound(f"the call of session {session_id!r} is over", field="session_id")
        bridge = runtime.bridge
        if bridge is None or bridge.passes_through:
            raise Conflict(
                "the call's media does not go through the gateway (pass-through)", field="session_id"
            )
        audio = bridge.sip_audio
        if audio is None:
            raise Conflict("the far end has sent no audio description yet", field="session_id")
        if sum(p.call_id == runtime.call_id for p in self._players.values()) >= MAX_PLAYERS:
            raise Conflict(f"at most {MAX_PLAYERS} players per call", field="session_id")
        if not capabilities([audio.codec]):
            raise Conflict(f"the far end's codec {audio.codec.name} cannot be played", field="session_id")
        try:
            description = sdp.parse(offer)
        except sdp.SdpError as exc:
            raise BadRequest(f"invalid SDP: {exc}", field="sdp") from None
        viewer_id = f"c-{runtime.call_id}-{next(self._numbers)}"
        leg = WebRtcLeg(
            self._leg_options(), on_rtp=_ignore, on_event=lambda e: self._leg_event(viewer_id, e),
            call_id=f"whep-{viewer_id}",
        )  # fmt: skip
        try:
            answer = await leg.accept_offer(description, [audio.codec])
            _check_codec(answer, audio.codec)
        except (sdp.SdpError, MediaError) as exc:
            await leg.close()
            raise BadRequest(f"the player's offer cannot be answered: {exc}", field="sdp") from None
        player = _Player(viewer_id, user.id, runtime.call_id, bridge, leg)
        self._players[viewer_id] = player
        try:
            bridge.add_tap(viewer_id, _forwarder(leg, audio), lambda: self._drop(viewer_id, "the call ended"))
        except MediaError:
            self._drop(viewer_id, "the call ended")
            raise NotFound(f"the call of session {session_id!r} is over", field="session_id") from None
        logger.info(
            "call=%s WHEP player %s for %s (%s)", runtime.call_id, viewer_id, user.id, audio.codec.name
        )
        return viewer_id, sdp.write(answer)

    async def unwatch(self, viewer_id: str, user: WebUser) -> bool:
        player = self._players.get(viewer_id)
        if player is None:
            return False
        if player.user_id != user.id:
            raise NotFound(f"no player {viewer_id!r}", field="session_id")
        self._drop(viewer_id, "DELETE")
        await self.settle()
        return True

    def _leg_event(self, viewer_id: str, event: MediaEvent) -> None:
        if isinstance(event, (IceFailed, DtlsFailed)):
            self._drop(viewer_id, str(event))

    def _drop(self, viewer_id: str, why: str) -> None:
        player = self._players.pop(viewer_id, None)
        if player is None:
            return
        logger.info("call=%s WHEP player %s ends: %s", player.call_id, viewer_id, why)
        player.bridge.remove_tap(viewer_id)
        self._spawn(player.leg.close())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the players' legs being closed."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """End every player (shutdown). Idempotent."""
        for viewer_id in list(self._players):
            self._drop(viewer_id, "shutdown")
        await self.settle()


def _ignore(*fields: object) -> None:
    """A player sends nothing; what it might send is dropped."""


def _check_codec(answer: sdp.SessionDescription, codec: sdp.Codec) -> None:
    section = next((m for m in answer.media if m.media == "audio" and not m.rejected), None)
    chosen = section.codecs[0] if section is not None and section.codecs else None
    if chosen is None or (chosen.name.lower(), chosen.clock_rate) != (codec.name.lower(), codec.clock_rate):
        raise sdp.SdpUnacceptable(f"the player does not take {codec.name}/{codec.clock_rate}")


def _forwarder(leg: WebRtcLeg, audio: LegCodecs) -> Callable[[RtpPacket], None]:
    """The tap: packets of the SIP side's codec go to the player as they came."""
    wanted = {
        pt
        for pt, c in audio.incoming.items()
        if (c.name.lower(), c.clock_rate) == (audio.codec.name.lower(), audio.codec.clock_rate)
    }

    def forward(packet: RtpPacket) -> None:
        if packet.payload_type in wanted:
            leg.send(packet.payload, packet.timestamp, None, packet.marker)

    return forward
