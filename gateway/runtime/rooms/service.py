"""`RoomMediaService`: `RoomMedia` (gateway/signaling/rooms/media.py) for the whole gateway: a
`Conference` per room with SIP parties, the WHEP players of a room's mix, and `inbound` for
`CallDriver.room_calls` (a SIP call to one of `rooms.numbers` joins that room).

This module owns the service; it imports the rooms package's conference and legs, config's
`RoomsSection`, identity, the media package's mixer and leg options, the signaling's errors, hub and
relay types, and names the driver for typing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final

from gateway.config.rooms import RoomsSection
from gateway.identity import Found, IdentityError, SipAddress, WebUser
from gateway.media.codecs.mixer import Mixer
from gateway.media.webrtc.webrtc_leg import WebLegOptions
from gateway.runtime.rooms.conference import Conference
from gateway.runtime.rooms.party import PartySession, PartyState
from gateway.signaling.errors import NotFound, ServiceError, SignalingError
from gateway.signaling.rooms.core import Relay
from gateway.signaling.rooms.media import RoomHub

if TYPE_CHECKING:
    from gateway.runtime.driver import CallDriver

logger = logging.getLogger(__name__)

ROOM_DOMAIN: Final = "rooms.invalid"  # the AOR host of a room's own user (RFC 6761 §6.4: never resolves)
# seconds a call to a room waits for the room's last conference to finish leaving it (its browsers' legs closing)
CLOSING_WAIT: Final = 5.0


class RoomMediaService:
    """`RoomMedia` (gateway/signaling/rooms/media.py) for the whole gateway: a `Conference` per room with
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
        self._prefix = secrets.token_hex(3)

    def attach(self, hub: RoomHub) -> None:
        self._hub = hub
        if self.settings.numbers:
            self.driver.room_calls = self.inbound
            self.driver.room_guard = self._guard
            if self.settings.enabled:  # a web user's call to one joins the room here, not at the PBX
                self.driver.room_numbers = frozenset(number for number, _ in self.settings.numbers)

    def _guard(self, user: WebUser, destination: str) -> None:
        """`CallDriver.room_guard`: a web user's call to a room's number needs the join permission."""
        if self._hub is not None:
            self._hub.check_call(user.id, destination)

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
            if conference is not None:  # the last party just went: the gateway is still leaving the room
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conference.closed.wait(), CLOSING_WAIT)
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
        # unique across instances: a party's session moves to a survivor under its id (adopt_party)
        return f"room-{room_id}-{self._prefix}-{next(self._ids)}"

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
        """WHEP (gateway/signaling/whip/whep.py): a player of an open room's mix; (its id, the answer)."""
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

    def watchers(self, room_id: str) -> list[dict[str, str]]:
        conference = self._conferences.get(room_id)
        return conference.watchers() if conference is not None and not conference.ended else []

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

    # -- SIP parties outliving their instance (issue 34; gateway/runtime/continuity/takeover.py) -----------
    def party_of(self, session: object) -> dict[str, Any] | None:
        """A room party's part of its call's handover: the room, its far end, whether it called in (and
        the room's own address it called), the room's owner; None for any other session."""
        if not isinstance(session, PartySession) or session.state is not PartyState.CONNECTED:
            return None
        conference = session.conference
        if conference.ended or self._hub is None:
            return None
        room = {"room_id": conference.room_id, "remote": session.remote, "inbound": session.inbound,
                "owner": self._hub.owner(conference.room_id)}  # fmt: skip
        if session.inbound:
            room["aor"] = str(session.user.aor)
        return room

    def room_user(self, room: Mapping[str, Any]) -> WebUser:
        """The room's own user, which answered a call to one of its numbers (`inbound`)."""
        room_id = str(room["room_id"])
        return WebUser(f"room:{room_id}", f"Room {room_id}", SipAddress.parse(str(room["aor"])))

    async def adopt_party(
        self, user: WebUser, room: Mapping[str, Any], call_id: str, session_id: str
    ) -> bool:
        """A room party's call taken over here: its session again, in the room's conference (made here,
        the room re-opened by the gateway peer with its owner once the party has its leg: `party_back`)."""
        if self._hub is None or not self.settings.enabled:
            return False
        if self.driver.session(session_id) is not None:
            logger.warning("room %s: party session %s is here already", room["room_id"], session_id)
            return False
        conference = await self._conference(str(room["room_id"]))
        if conference.owner is None:
            conference.owner = room.get("owner")
        party = conference.adopt(session_id, user, str(room["remote"]), bool(room["inbound"]), call_id)
        await self.driver.session_opened(party)
        return True

    def party_back(self, call_id: str) -> None:
        """The party's call waits here (taken over): its leg to the mix is made again (Conference.take_back)."""
        for conference in self._conferences.values():
            party = next((p for p in conference.parties.values() if p.call_id == call_id), None)
            if party is not None:
                self.spawn(conference.take_back(party, self.driver.reconnects.grace))
                return

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
