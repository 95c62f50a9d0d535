"""`PartySession`: the `SessionSink` of one SIP party's call in a room, and the party's state.

The events the call layer sends the session move the party along: CALLING -> RINGING -> CONNECTED ->
ENDED (or CALLING/RINGING -> ENDED); each change is announced to the room as `sip_party`. Every move
goes through `PartySession._set_state`, checked against `TRANSITIONS`: the same state again is no move,
any other pair not in the table raises `IllegalPartyMove` naming both states. This module owns the
party's state; it imports `sdp`, identity's `WebUser`, the media package's errors and the signaling's
events, and names `Conference` (conference.py) for typing only.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Final

import sdp
from gateway.identity import WebUser
from gateway.media.errors import MediaError
from gateway.runtime.rooms.legs import RoomLeg
from gateway.signaling import events as sig

if TYPE_CHECKING:
    from gateway.runtime.rooms.conference import Conference

logger = logging.getLogger(__name__)


class PartyState(enum.Enum):
    CALLING = "calling"
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


TRANSITIONS: Final = {
    (PartyState.CALLING, PartyState.RINGING),
    (PartyState.CALLING, PartyState.CONNECTED),
    (PartyState.RINGING, PartyState.CONNECTED),
    (PartyState.CALLING, PartyState.ENDED),
    (PartyState.RINGING, PartyState.ENDED),
    (PartyState.CONNECTED, PartyState.ENDED),
}


class RoomError(Exception):
    """Base class of the errors of gateway.runtime.rooms."""


class IllegalPartyMove(RoomError):
    """A move of a SIP party's state that `TRANSITIONS` does not allow."""

    def __init__(self, party: str, old: PartyState, new: PartyState) -> None:
        super().__init__(f"room party {party}: illegal move {old.value} -> {new.value}")
        self.old = old
        self.new = new


class PartySession:
    """The `SessionSink` of one SIP party's call: the call layer's events move the party along."""

    def __init__(
        self, conference: Conference, session_id: str, user: WebUser, remote: str, inbound: bool
    ) -> None:
        self.conference = conference
        self._id = session_id
        self._user = user
        self.remote = remote
        self.inbound = inbound
        self.call_id: str | None = None
        self.state = PartyState.CALLING
        self.reason: str | None = None
        self.leg: RoomLeg | None = None
        self._answered = False
        self._closed = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def user(self) -> WebUser:
        return self._user

    @property
    def closed(self) -> bool:
        return self._closed

    def _set_state(self, new: PartyState) -> bool:
        if new is self.state:
            return False
        if (self.state, new) not in TRANSITIONS:
            raise IllegalPartyMove(self._id, self.state, new)
        logger.info("room %s party %s (%s): %s -> %s", self.conference.room_id, self.call_id, self.remote,
                    self.state.value, new.value)  # fmt: skip
        self.state = new
        self.conference.spawn(self.conference.announce(self))
        return True

    def web_answer(self, call_id: str, sdp_text: str) -> None:
        """EarlyAnswerSink: the call's WebRTC answer before the far end picks up (ICE comes up meanwhile)."""
        self.conference.spawn(self._apply_answer(sdp_text))

    async def _apply_answer(self, sdp_text: str) -> None:
        if self._answered or self.leg is None:
            return
        self._answered = True
        try:
            answer = sdp.parse(sdp_text)
            await self.leg.web.accept_answer(answer)
            self.leg.mix(answer, ("pcmu", "pcma"), None)
        except (sdp.SdpError, MediaError) as exc:
            logger.warning(
                "room %s: the answer of call %s is unusable: %s", self.conference.room_id, self.call_id, exc
            )
            await self.conference.hangup_party(self)

    async def send_event(self, event: sig.Event) -> None:
        if self._closed:
            return
        match event:
            case sig.Incoming(call_id=call_id, sdp=offer):
                self.call_id = call_id
                self.conference.spawn(self.conference.take_inbound(self, offer))
            case sig.Offer(sdp=offer):
                self.conference.spawn(self.conference.answer_inbound(self, offer))
            case sig.Ringing():
                self._set_state(PartyState.RINGING)
            case sig.EarlyMedia() | sig.Connected():
                self._progress(event)
            case sig.Reattached(sdp=str(answer)):  # a call taken over: the answer to its new leg (take_back)
                self._answered = False
                self.web_answer(self.call_id or "", answer)
                self._set_state(PartyState.CONNECTED)
            case sig.CallQuality():  # the phone's leg while it is up (gateway/ops/quality.py)
                self.conference.spawn(self.conference.quality(self, event))
            case sig.Ended(reason=reason):
                self.reason = reason
                self._closed = True
                self._set_state(PartyState.ENDED)
                self.conference.spawn(self.conference.party_ended(self))
            case _:
                logger.debug("room party %s: %s", self._id, type(event).__name__)

    def _progress(self, event: sig.EarlyMedia | sig.Connected) -> None:
        """Early media or the answer: an outbound call's WebRTC answer goes to the party's leg."""
        if event.sdp is not None and not self.inbound:
            self.web_answer(self.call_id or "", event.sdp)
        if isinstance(event, sig.Connected):
            self._set_state(PartyState.CONNECTED)
