"""`Conference`: one room's media while it has SIP parties: the gateway's own peer, its legs, the mix.

How it works. A room is peer to peer (gateway/signaling/rooms/core.py) until a SIP party comes: a peer's
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
* One `Mixer` per room (gateway/media/codecs/mixer.py), ticked every 20 ms by one timer: browsers hear the SIP
  parties (they hear each other peer to peer already, so they share the mixer group "browsers"), a SIP
  party hears everyone but itself. At most `rooms.max_mixed` participants.
* When the last SIP party is gone the conference ends: the browsers' legs to the gateway close and the
  gateway leaves the room (`peer_left`); their own peer-to-peer connections were never touched. When the
  last browser leaves, the SIP parties are hung up.

A party's call outlives its instance (issue 34): its handover names the room (service.py `party_of`),
and where the room lives the survivor makes the party again (`adopt`), gives the call a new leg to the
mix (`take_back`) and re-opens the room as `gateway`, with its owner; browsers coming back connect to it.

A `PartySession`'s state is walked by the events the call layer sends it (party.py). This module
owns a room's conference; it imports the media package (mixer, WebRTC leg), the signaling's rooms
hub and relay types, identity, the rooms package's legs and parties, and names the driver for typing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sdp
from gateway.identity import WebUser
from gateway.media.codecs.mix_clock import MixClock
from gateway.media.codecs.mixer import Mixer, MixerError
from gateway.media.errors import MediaError
from gateway.media.webrtc.webrtc_leg import WebLegOptions
from gateway.runtime.rooms.legs import BROWSERS, SIP_CODECS, WEB_CODECS, RoomLeg
from gateway.runtime.rooms.party import PartySession, PartyState
from gateway.signaling.call_quality import CallQuality
from gateway.signaling.errors import BadRequest, Conflict, NotFound, ServiceError, SignalingError
from gateway.signaling.rooms.core import GATEWAY_PEER, Relay, RoomFull
from gateway.signaling.rooms.media import RoomHub

if TYPE_CHECKING:
    from gateway.runtime.driver import CallDriver

logger = logging.getLogger(__name__)


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
    browsers: dict[str, RoomLeg] = field(default_factory=dict)
    parties: dict[str, PartySession] = field(default_factory=dict)  # session id -> party
    viewers: dict[str, tuple[str, RoomLeg]] = field(default_factory=dict)  # WHEP player id -> (user id, leg)
    started: bool = False
    ended: bool = False
    # set once close() has left the room: a call arriving meanwhile waits for it (RoomService._conference)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    owner: str | None = None  # the room's owner when the gateway opens it again (a party taken over)
    clock: MixClock = field(init=False)  # the mixer's 20 ms timer (gateway/media/codecs/mix_clock.py)

    def __post_init__(self) -> None:
        self.clock = MixClock(self.mixer, f"room {self.room_id}")

    # -- the room ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Join the room as `gateway` and offer each browser a connection; start the mixer's clock. Once,
        when the first SIP party's call exists (a dial the policy refuses leaves the room untouched)."""
        if self.started:
            return
        self.started = True  # (before the await: two parties taken back at once join it once)
        try:
            await self.hub.join_gateway(self.room_id, self.owner)
        except BaseException:
            self.started = False
            raise
        self.clock.start()
        for peer_id in self.hub.browsers(self.room_id):
            await self._offer_to(peer_id)

    def room_size(self) -> int:
        return len(self.hub.browsers(self.room_id)) + len(self.parties) + len(self.viewers)

    # -- WHEP players of the mix ----------------------------------------------------------------------
    async def watch(self, viewer_id: str, user_id: str, offer: str) -> str:
        """A player hearing everyone (the mixer group None; it sends nothing): the SDP answer."""
        if self.room_size() >= self.mixer.max_participants:
            raise RoomFull(f"the room's mix is full ({self.mixer.max_participants}, rooms.max_mixed)")
        leg = RoomLeg(self, viewer_id, self.options())
        try:
            answer = await leg.web.accept_offer(sdp.parse(offer), WEB_CODECS)
            leg.mix(answer, ("opus",), None)
        except (sdp.SdpError, MediaError) as exc:
            await leg.close()
            raise BadRequest(f"the offer cannot be played to: {exc}", field="sdp") from None
        self.viewers[viewer_id] = (user_id, leg)
        await self.start()
        await self._announce_watcher("watcher_joined", viewer_id, user_id)
        return sdp.write(answer)

    async def _announce_watcher(self, kind: str, viewer_id: str, user_id: str) -> None:
        """Who listens to the room (WHEP), by user id, to its browsers: `watcher_joined` / `watcher_left`."""
        logger.info("room %s: %s %s (user %s)", self.room_id, kind.replace("_", " "), viewer_id, user_id)
        await self.hub.broadcast(self.room_id, {"type": kind, "watcher_id": viewer_id, "user": user_id})

    def watchers(self) -> list[dict[str, str]]:
        return [
            {"watcher_id": viewer_id, "user": user_id} for viewer_id, (user_id, _) in self.viewers.items()
        ]

    async def unwatch(self, viewer_id: str) -> None:
        entry = self.viewers.pop(viewer_id, None)
        if entry is not None:
            await entry[1].close()
            await self._announce_watcher("watcher_left", viewer_id, entry[0])
        await self.close_when_idle()

    async def close_when_idle(self) -> None:
        if not self.parties and not self.viewers:
            await self.close()

    async def _offer_to(self, peer_id: str) -> None:
        leg = RoomLeg(self, peer_id, self.options())
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
                leg = RoomLeg(self, peer_id, self.options())
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

    def leg_failed(self, leg: RoomLeg) -> None:
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

    async def quality(self, party: PartySession, event: CallQuality) -> None:
        """`sip_party_quality`: the SIP leg's figures while the call is up (its other leg is the gateway's
        own, to the mixer), when they moved or crossed `quality.poor_mos` (gateway/ops/quality.py)."""
        sip = event.legs.get("sip")
        if sip is not None:
            message = {"type": "sip_party_quality", "call_id": party.call_id, **dict(sip)}
            await self.hub.broadcast(self.room_id, message)

    async def dial(self, session_id: str, user: WebUser, to: str) -> str:
        if self.room_size() >= self.mixer.max_participants:
            raise RoomFull(
                f"the room's mix is full ({self.mixer.max_participants}, rooms.max_mixed)", field="to"
            )
        party = PartySession(self, session_id, user, to, inbound=False)
        party.leg = RoomLeg(self, session_id, self.options())
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

    def adopt(self, session_id: str, user: WebUser, remote: str, inbound: bool, call_id: str) -> PartySession:
        """A SIP party whose call this instance took over from one that died (issue 34): its session
        again, under its id; `take_back` gives it a leg to the mix once the call waits here."""
        party = PartySession(self, session_id, user, remote, inbound)
        party.call_id = call_id
        self.parties[session_id] = party
        return party

    async def take_back(self, party: PartySession, grace: float) -> None:
        """A new leg to the mix for a party taken over: its offer renews the call's web side (the SIP party
        hears the room again); the gateway joins the room (re-opened here), whose browsers connect to it
        as they come back. Nobody back within ``grace``: the party is hung up, as when the last leaves."""
        assert party.call_id is not None
        if self.ended or party.state is PartyState.ENDED or party.id not in self.parties:
            return  # (its call ended meanwhile: the phone hung up after the re-INVITE)
        try:
            party.leg = RoomLeg(self, party.id, self.options())
            offer = await party.leg.web.create_offer(SIP_CODECS)
            await self.driver.reattach(party, party.call_id, sdp.write(offer))
            await self.start()
        except (SignalingError, MediaError, sdp.SdpError) as exc:
            logger.warning("room %s: party %s not taken back: %s", self.room_id, party.call_id, exc)
            if party.leg is not None:
                await party.leg.close()
            await self.hangup_party(party)
            return
        logger.info("room %s: party %s (%s) taken over here", self.room_id, party.call_id, party.remote)
        await asyncio.sleep(grace)
        if not self.ended and not self.hub.browsers(self.room_id) and party.id in self.parties:
            logger.info("room %s: no browser back within %g s: party %s hung up", self.room_id, grace,
                        party.call_id)  # fmt: skip
            await self.hangup_party(party)

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
            party.leg = RoomLeg(self, party.id, self.options())
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
        try:
            await self._close()
        finally:
            self.closed.set()

    async def _close(self) -> None:
        self.clock.stop()
        for party in list(self.parties.values()):
            await self.hangup_party(party)
        for peer_id in list(self.browsers):
            await self.drop_browser(peer_id)
        for viewer_id, (user_id, leg) in list(self.viewers.items()):
            await leg.close()
            await self._announce_watcher("watcher_left", viewer_id, user_id)
        self.viewers.clear()
        self.mixer.close()
        if self.started:
            await self.hub.leave_gateway(self.room_id)
        self.on_done(self)
        logger.info("room %s: no SIP party any more, the gateway left", self.room_id)
