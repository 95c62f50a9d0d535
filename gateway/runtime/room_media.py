"""SIP parties in rooms: the gateway's own peer in a room, its WebRTC legs to the browsers, and the mix.

How it works. A room is peer to peer (gateway/signaling/rooms.py) until a SIP party comes: a peer's
`{"type": "dial", "to"}`, or a SIP call to one of `rooms.numbers`. Then the room gets a `Conference`:

* The gateway joins the room as the peer `gateway` (`peer_joined` to the browsers) and offers each
  browser a WebRTC connection (`offer` with `from_peer_id: "gateway"`, Opus); a browser joining later
  finds `gateway` in `existing_peers` and offers to it, as to any peer. These legs are `WebRtcLeg`s
  (raw RTP, never aiortc's decoder threads).
* Each SIP party is a call of the call core (`CallDriver`, one call machine and media bridge as any web
  call), made by a `PartySession` (a `SessionSink`): the conference's own WebRTC leg toward the call's
  web leg offers G.711 only, so the call's bridge forwards the SIP party's G.711 untouched. Outbound
  calls are the dialling peer's user's (`allow_outbound` applies); inbound ones reach the room through
  `CallDriver.room_calls` (a number of `rooms.numbers`), answered at once.
* One `Mixer` per room (gateway/media/mixer.py), ticked every 20 ms by one timer: browsers hear the SIP
  parties (they hear each other peer to peer already, so they share the mixer group "browsers"), a SIP
  party hears everyone but itself. At most `rooms.max_mixed` participants.
* When the last SIP party is gone the conference ends: the browsers' legs to the gateway close and the
  gateway leaves the room (`peer_left`); their own peer-to-peer connections were never touched. When the
  last browser leaves, the SIP parties are hung up.

A `PartySession`'s state is walked by the events the call layer sends it: CALLING -> RINGING ->
CONNECTED -> ENDED (or CALLING/RINGING -> ENDED); each change goes to the room as `sip_party`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import sdp
from gateway.config.rooms import RoomsSection
from gateway.identity import Found, IdentityError, SipAddress, WebUser
from gateway.media.errors import MediaError
from gateway.media.events import DtlsFailed, IceFailed, MediaEvent
from gateway.media.mixer import Mixer, MixerError
from gateway.media.webrtc_leg import WebLegOptions, WebRtcLeg
from gateway.signaling import events as sig
from gateway.signaling.errors import BadRequest, Conflict, NotFound, ServiceError, SignalingError
from gateway.signaling.room_media import RoomHub
from gateway.signaling.rooms import GATEWAY_PEER, Relay, RoomFull

if TYPE_CHECKING:
    from gateway.runtime.driver import CallDriver

logger = logging.getLogger(__name__)

TICK: Final = 0.020  # seconds: one mixer frame
MAX_LATE: Final = 0.2  # a timer this late (a busy loop) starts its schedule again rather than catch up
BROWSERS: Final = "browsers"  # the mixer group of a room's browsers (they hear each other directly)
SIP_CODECS: Final = (sdp.Codec(0, "PCMU", 8000), sdp.Codec(8, "PCMA", 8000))
WEB_CODECS: Final = (sdp.Codec(111, "opus", 48000, 2),)
ROOM_DOMAIN: Final = "rooms.invalid"  # the AOR host of a room's own user (RFC 6761 §6.4: never resolves)


class PartyState(enum.Enum):
    CALLING = "calling"
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


_PARTY_TRANSITIONS: Final = {
    (PartyState.CALLING, PartyState.RINGING),
    (PartyState.CALLING, PartyState.CONNECTED),
    (PartyState.RINGING, PartyState.CONNECTED),
    (PartyState.CALLING, PartyState.ENDED),
    (PartyState.RINGING, PartyState.ENDED),
    (PartyState.CONNECTED, PartyState.ENDED),
}


def _negotiated(description: sdp.SessionDescription | None, names: tuple[str, ...]) -> tuple[str, int] | None:
    """The first of the audio m-line's codecs named in `names`: (name, payload type)."""
    if description is None or not description.media:
        return None
    for codec in description.media[0].codecs:
        if codec.name.lower() in names:
            return codec.name.lower(), codec.payload_type
    return None


class _Leg:
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
        self.leg: _Leg | None = None
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
        if (self.state, new) not in _PARTY_TRANSITIONS:
            logger.debug("room party %s: %s -> %s ignored", self._id, self.state.value, new.value)
            return False
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


@dataclass(slots=True)
class Conference:
    """One room's media while it has SIP parties (see the module note)."""

    room_id: str
    hub: RoomHub
    driver: CallDriver
    options: Callable[[], WebLegOptions]
    mixer: Mixer
    spawn: Callable[[Coroutine[Any, Any, None]], None]
    on_done: Callable[[Conference], None]
    browsers: dict[str, _Leg] = field(default_factory=dict)
    parties: dict[str, PartySession] = field(default_factory=dict)  # session id -> party
    viewers: dict[str, tuple[str, _Leg]] = field(default_factory=dict)  # WHEP player id -> (user id, leg)
    timer: asyncio.TimerHandle | None = None
    next_tick: float = 0.0
    started: bool = False
    ended: bool = False

    # -- the room ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Join the room as `gateway` and offer each browser a connection; start the mixer's clock. Once,
        when the first SIP party's call exists (a dial the policy refuses leaves the room untouched)."""
        if self.started:
            return
        await self.hub.join_gateway(self.room_id)
        self.started = True
        loop = asyncio.get_running_loop()
        self.next_tick = loop.time() + TICK
        self.timer = loop.call_at(self.next_tick, self._tick)
        for peer_id in self.hub.browsers(self.room_id):
            await self._offer_to(peer_id)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.mixer.tick()
        except MixerError:
            return  # closed meanwhile
        self.next_tick += TICK
        now = loop.time()
        if now - self.next_tick > MAX_LATE:
            self.next_tick = now + TICK
        self.timer = loop.call_at(self.next_tick, self._tick)

    def room_size(self) -> int:
        return len(self.hub.browsers(self.room_id)) + len(self.parties) + len(self.viewers)

    # -- WHEP players of the mix ----------------------------------------------------------------------
    async def watch(self, viewer_id: str, user_id: str, offer: str) -> str:
        """A player hearing everyone (the mixer group None; it sends nothing): the SDP answer."""
        if self.room_size() >= self.mixer.max_participants:
            raise RoomFull(f"the room's mix is full ({self.mixer.max_participants}, rooms.max_mixed)")
        leg = _Leg(self, viewer_id, self.options())
        try:
            answer = await leg.web.accept_offer(sdp.parse(offer), WEB_CODECS)
            leg.mix(answer, ("opus",), None)
        except (sdp.SdpError, MediaError) as exc:
            await leg.close()
            raise BadRequest(f"the offer cannot be played to: {exc}", field="sdp") from None
        self.viewers[viewer_id] = (user_id, leg)
        await self.start()
        return sdp.write(answer)

    async def unwatch(self, viewer_id: str) -> None:
        entry = self.viewers.pop(viewer_id, None)
        if entry is not None:
            await entry[1].close()
        await self.close_when_idle()

    async def close_when_idle(self) -> None:
        if not self.parties and not self.viewers:
            await self.close()

    async def _offer_to(self, peer_id: str) -> None:
        leg = _Leg(self, peer_id, self.options())
        self.browsers[peer_id] = leg
        offer = await leg.web.create_offer(WEB_CODECS)
        await self.hub.send(self.room_id, peer_id, {
            "type": "offer", "offer": {"type": "offer", "sdp": sdp.write(offer)}, "from_peer_id": GATEWAY_PEER,
        })  # fmt: skip

    async def from_peer(self, peer_id: str, relay: Relay) -> None:
        body = relay.body or {}
        leg = self.browsers.get(peer_id)
        try:
            if relay.kind == "offer":  # a browser that joined after the gateway connects to it
                if leg is not None:
                    raise Conflict(
                        "a connection to the gateway exists already (renegotiation is not supported)"
                    )
                leg = _Leg(self, peer_id, self.options())
                self.browsers[peer_id] = leg
                answer = await leg.web.accept_offer(sdp.parse(str(body["sdp"])), WEB_CODECS)
                leg.mix(answer, ("opus",), BROWSERS)
                await self.hub.send(self.room_id, peer_id, {
                    "type": "answer", "answer": {"type": "answer", "sdp": sdp.write(answer)},
                    "from_peer_id": GATEWAY_PEER,
                })  # fmt: skip
            elif leg is None:
                raise NotFound("no connection to the gateway yet", field="target_peer_id")
            elif relay.kind == "answer":
                answer = sdp.parse(str(body["sdp"]))
                await leg.web.accept_answer(answer)
                leg.mix(answer, ("opus",), BROWSERS)
            elif relay.body is not None and body.get("candidate"):
                candidate = sdp.candidate_from_json(relay.body)
                if leg.web.remote is None:
                    leg.pending.append(candidate)
                else:
                    await leg.web.add_candidate(candidate)
            if leg is not None and leg.web.remote is not None:
                for candidate in leg.pending:
                    await leg.web.add_candidate(candidate)
                leg.pending.clear()
        except (sdp.SdpError, MediaError, KeyError) as exc:
            if leg is not None and relay.kind != "ice_candidate":
                await self.drop_browser(peer_id)
            code = "room_full" if isinstance(exc, MixerError) else None
            raise ServiceError(f"the gateway could not connect: {exc}", code=code or "bad_request",
                               field=relay.kind, http_status=409 if code else 400) from None  # fmt: skip

    async def drop_browser(self, peer_id: str) -> None:
        leg = self.browsers.pop(peer_id, None)
        if leg is not None:
            await leg.close()

    def leg_failed(self, leg: _Leg) -> None:
        if self.browsers.get(leg.participant) is leg:
            self.spawn(self.drop_browser(leg.participant))
        elif leg.participant in self.viewers:
            self.spawn(self.unwatch(leg.participant))
        else:
            party = next((p for p in self.parties.values() if p.leg is leg), None)
            if party is not None:
                self.spawn(self.hangup_party(party))

    async def peer_left(self, peer_id: str) -> None:
        await self.drop_browser(peer_id)
        if not self.hub.browsers(self.room_id):  # nobody left to talk to: the SIP parties go
            for party in list(self.parties.values()):
                await self.hangup_party(party)

    # -- SIP parties --------------------------------------------------------------------------------
    async def announce(self, party: PartySession) -> None:
        message: dict[str, object] = {
            "type": "sip_party", "call_id": party.call_id, "remote": party.remote, "state": party.state.value,
        }  # fmt: skip
        if party.reason is not None:
            message["reason"] = party.reason
        await self.hub.broadcast(self.room_id, message)

    async def dial(self, session_id: str, user: WebUser, to: str) -> str:
        if self.room_size() >= self.mixer.max_participants:
            raise RoomFull(
                f"the room's mix is full ({self.mixer.max_participants}, rooms.max_mixed)", field="to"
            )
        party = PartySession(self, session_id, user, to, inbound=False)
        party.leg = _Leg(self, session_id, self.options())
        self.parties[session_id] = party
        try:
            offer = await party.leg.web.create_offer(SIP_CODECS)
            await self.driver.session_opened(party)
            party.call_id = await self.driver.dial(party, to, sdp.write(offer))
        except (SignalingError, MediaError, sdp.SdpError) as exc:
            await self._forget(party)
            if isinstance(exc, SignalingError):
                raise
            raise ServiceError(f"the call could not be placed: {exc}", code="internal_error") from None
        try:
            await self.start()
        except SignalingError:  # the room is full: the gateway cannot join it
            await self.hangup_party(party)
            raise
        await self.announce(party)
        return party.call_id

    def inbound(self, session_id: str, user: WebUser, remote: str) -> PartySession:
        party = PartySession(self, session_id, user, remote, inbound=True)
        self.parties[session_id] = party
        return party

    async def take_inbound(self, party: PartySession, offer: str | None) -> None:
        assert party.call_id is not None
        if self.room_size() > self.mixer.max_participants:
            await self.driver.reject(party, party.call_id, 486)
            return
        if offer is None:
            await self.driver.answer(party, party.call_id, None)  # the gateway's offer comes as `offer`
        else:
            await self.answer_inbound(party, offer)

    async def answer_inbound(self, party: PartySession, offer: str) -> None:
        assert party.call_id is not None
        try:
            party.leg = _Leg(self, party.id, self.options())
            answer = await party.leg.web.accept_offer(sdp.parse(offer), SIP_CODECS)
            party.leg.mix(answer, ("pcmu", "pcma"), None)
            await self.driver.answer(party, party.call_id, sdp.write(answer))
        except (sdp.SdpError, MediaError, SignalingError) as exc:
            logger.warning("room %s: inbound call %s not taken: %s", self.room_id, party.call_id, exc)
            with contextlib.suppress(SignalingError):
                await self.driver.reject(party, party.call_id, 488)

    async def hangup_party(self, party: PartySession) -> None:
        if party.call_id is not None and party.state is not PartyState.ENDED:
            with contextlib.suppress(SignalingError):
                await self.driver.hangup(party, party.call_id)

    async def party_ended(self, party: PartySession) -> None:
        await self._forget(party)

    async def _forget(self, party: PartySession) -> None:
        self.parties.pop(party.id, None)
        if party.leg is not None:
            await party.leg.close()
        with contextlib.suppress(SignalingError):
            await self.driver.session_closed(party)
        await self.close_when_idle()

    async def close(self) -> None:
        """The last SIP party went (or the gateway stops): close the browsers' legs, leave the room."""
        if self.ended:
            return
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for party in list(self.parties.values()):
            await self.hangup_party(party)
        for peer_id in list(self.browsers):
            await self.drop_browser(peer_id)
        for _, leg in self.viewers.values():
            await leg.close()
        self.viewers.clear()
        self.mixer.close()
        if self.started:
            await self.hub.leave_gateway(self.room_id)
        self.on_done(self)
        logger.info("room %s: no SIP party any more, the gateway left", self.room_id)


class RoomMediaService:
    """`RoomMedia` (gateway/signaling/room_media.py) for the whole gateway: a `Conference` per room with
    SIP parties, and `inbound` for `CallDriver.room_calls`."""

    def __init__(
        self, driver: CallDriver, settings: RoomsSection, options: Callable[[], WebLegOptions]
    ) -> None:
        self.driver = driver
        self.settings = settings
        self.options = options
        self._hub: RoomHub | None = None
        self._conferences: dict[str, Conference] = {}
        self._viewers: dict[str, Conference] = {}  # WHEP player id -> its room's conference
        self._starting: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    def attach(self, hub: RoomHub) -> None:
        self._hub = hub
        if self.settings.numbers:
            self.driver.room_calls = self.inbound

    def present(self, room_id: str) -> bool:
        conference = self._conferences.get(room_id)
        return conference is not None and conference.started and not conference.ended

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("room media task failed", exc_info=task.exception())

    async def _conference(self, room_id: str) -> Conference:
        lock = self._starting.setdefault(room_id, asyncio.Lock())
        async with lock:
            conference = self._conferences.get(room_id)
            if conference is not None and not conference.ended:
                return conference
            if self._hub is None:
                raise ServiceError(
                    "rooms are not wired to the media", code="not_implemented", http_status=501
                )
            conference = Conference(
                room_id, self._hub, self.driver, self.options, Mixer(8000, self.settings.max_mixed),
                self.spawn, self._done,
            )  # fmt: skip
            self._conferences[room_id] = conference
            return conference

    def _done(self, conference: Conference) -> None:
        if self._conferences.get(conference.room_id) is conference:
            del self._conferences[conference.room_id]
        for viewer_id in [v for v, c in self._viewers.items() if c is conference]:
            del self._viewers[viewer_id]

    def _session_id(self, room_id: str) -> str:
        return f"room-{room_id}-{next(self._ids)}"

    async def dial(self, room_id: str, peer_id: str, user: WebUser, to: str) -> str:
        conference = await self._conference(room_id)
        try:
            call_id = await conference.dial(self._session_id(room_id), user, to)
        finally:
            if not conference.ended:
                await conference.close_when_idle()
        logger.info("room %s: %s (user %s) dialled %s: call %s", room_id, peer_id, user.id, to, call_id)
        return call_id

    async def hangup(self, room_id: str, call_id: str) -> None:
        conference = self._conferences.get(room_id)
        party = None
        if conference is not None:
            party = next((p for p in conference.parties.values() if p.call_id == call_id), None)
        if conference is None or party is None:
            raise NotFound(f"no SIP party {call_id[:80]!r} in room {room_id!r}", field="call_id")
        await conference.hangup_party(party)

    async def from_peer(self, room_id: str, peer_id: str, relay: Relay) -> None:
        conference = self._conferences.get(room_id)
        if conference is not None:
            await conference.from_peer(peer_id, relay)

    async def peer_left(self, room_id: str, peer_id: str) -> None:
        conference = self._conferences.get(room_id)
        if conference is not None:
            await conference.peer_left(peer_id)

    async def watch(self, room_id: str, user: WebUser, offer: str) -> tuple[str, str]:
        """WHEP (gateway/signaling/whep.py): a player of an open room's mix; (its id, the answer)."""
        if self._hub is None or not (self.present(room_id) or self._hub.browsers(room_id)):
            raise NotFound(f"no open room {room_id[:80]!r}", field="room_id")
        conference = await self._conference(room_id)
        viewer_id = f"whep-{room_id}-{next(self._ids)}"
        try:
            answer = await conference.watch(viewer_id, user.id, offer)
        except SignalingError:
            await conference.close_when_idle()
            raise
        self._viewers[viewer_id] = conference
        logger.info("room %s: WHEP player %s of %s", room_id, viewer_id, user.id)
        return viewer_id, answer

    async def unwatch(self, viewer_id: str, user: WebUser) -> None:
        conference = self._viewers.get(viewer_id)
        entry = conference.viewers.get(viewer_id) if conference is not None else None
        if conference is None or entry is None or entry[0] != user.id:
            raise NotFound(f"no WHEP session {viewer_id[:128]!r}", field="session_id")
        del self._viewers[viewer_id]
        await conference.unwatch(viewer_id)

    async def inbound(self, request_uri: str, to_uri: str | None) -> Found | None:
        """`CallDriver.room_calls`: a SIP call to a number of `rooms.numbers` joins that room."""
        number = _user_part(request_uri)
        room_id = self.settings.room_for(number) if number is not None else None
        if room_id is None or not self.settings.enabled:
            return None
        conference = await self._conference(room_id)
        try:
            await conference.start()
        except SignalingError as exc:
            logger.info("call to room %s (%s) refused: %s", room_id, number, exc)
            if not conference.parties:
                await conference.close()
            return None  # the usual lookup answers (404 or the user the number belongs to)
        user = WebUser(f"room:{room_id}", f"Room {room_id}", SipAddress.parse(f"sip:{number}@{ROOM_DOMAIN}"))
        party = conference.inbound(self._session_id(room_id), user, request_uri)
        await self.driver.session_opened(party)
        return Found(request_uri, (user,), {user.id: (party.id,)})

    async def close(self, timeout: float = 5.0) -> None:
        """The gateway stops: every room's SIP parties are hung up and the gateway leaves the rooms, within
        `timeout` (the driver's own close ends whatever calls are left)."""
        try:
            async with asyncio.timeout(timeout):
                for conference in list(self._conferences.values()):
                    await conference.close()
        except TimeoutError:
            logger.warning("rooms: the conferences did not close within %g s", timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _user_part(uri: str) -> str | None:
    try:
        return SipAddress.parse(uri).user
    except IdentityError:  # an URI the identity layer does not read: not a room's number
        return None


RoomCalls = Callable[[str, str | None], Awaitable[Found | None]]
