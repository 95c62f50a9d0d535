"""`ThreeWayCalls`: a web user's current call and a held one merged into one conference, mixed here.

How it works. `merge(session, [a, b])` takes two calls of the session, both connected with media
terminated by the gateway (not pass-through): one active and one the web user holds. It makes a
`Conference` with one `Mixer` (gateway/media/codecs/mixer.py, the room mixer) of three participants:
the web user, party a and party b, each hearing the other two. The active call is the carrier: its
web leg keeps carrying the web user's audio, now the mix of both phones. Both calls' bridges lend
their legs to the mix (gateway/media/bridge_mix.py: nothing is forwarded between a bridge's own legs
any more): the carrier's web and SIP legs, the held call's SIP leg only (its web leg is idle: what the
browser sends on it is dropped, nothing is sent to it). The held call is resumed (re-INVITE sendrecv,
`resumed` as usual), so its party's audio reaches the mix. A `MixClock` ticks the mixer every 20 ms.

A conference ends when fewer than two of its calls are left, and the one left is an ordinary call
again (its bridge forwards between its own legs: the held call's web leg carries the web user's audio
if the carrier went). `split(session, call_id)` takes a call out and holds it again (it stays lent
with nothing mixed until its hold is in force, so that its party never hears the web user meanwhile);
a call that ends (a hang-up by either side) leaves by itself (`call_gone`, from the driver). Each
change is told to the session as `merged` / `split` (gateway/signaling/conference.py). A browser that
comes back to the carrier (a reattach: a new web leg, maybe another codec) is put in the mix again and
told `merged` again.

A conference outlives its instance (issue 34): each of its calls' handovers names it (`merge_of`), and
the survivor that takes both calls over makes it again from them (`taken_over`) before the page is
back: the two phones hear each other again as soon as both re-INVITEs are answered, the web user once
the page reattaches the carrier.

This module owns the conferences; it imports the media package's mixer, bridge and leg names, the
runtime's `BridgedMedia`, the signaling's errors and events, and names the driver for typing only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from gateway.calls.states import CallState
from gateway.media.codecs.mix_clock import MixClock
from gateway.media.codecs.mixer import Mixer
from gateway.media.errors import MediaError
from gateway.media.events import Leg
from gateway.runtime.call_media import BridgedMedia, CallMedia
from gateway.signaling.conference import Merged, Split
from gateway.signaling.errors import BadRequest, Conflict, NotFound, SignalingError
from gateway.signaling.service import SessionSink

if TYPE_CHECKING:
    from gateway.runtime.browser_requests import BrowserRequests

logger = logging.getLogger(__name__)

WEB: Final = "web"  # the mixer participant of the web user
HOLD_WAIT: Final = 10.0  # seconds a split call stays muted at most while its hold is being made


@dataclass(slots=True)
class Conference:
    """One merged call (see the module note): its calls (the carrier first) and their bridges."""

    id: str
    session: SessionSink | None  # the one that merged (None: made again from handovers, `taken_over`)
    bridges: dict[str, BridgedMedia]  # call id -> bridge, the carrier first
    mixer: Mixer = field(default_factory=lambda: Mixer(8000, 3))
    clock: MixClock | None = None

    @property
    def call_ids(self) -> tuple[str, ...]:
        return tuple(self.bridges)

    @property
    def carrier(self) -> str:
        return next(iter(self.bridges))

    def start(self) -> None:
        self.clock = MixClock(self.mixer, self.id)
        self.clock.start()

    def stop(self) -> None:
        if self.clock is not None:
            self.clock.stop()
        self.mixer.close()


def _participant(mixer: Mixer, key: str, bridge: BridgedMedia, leg: Leg) -> None:
    """`key` in the mix with `bridge`'s `leg`: what it sends is mixed, what it hears goes out on it."""
    mixer.add(key, bridge.mix_codec(leg), lambda payload, stamp: bridge.send_mixed(leg, payload, stamp))


class ThreeWayCalls:
    """The conferences of the gateway's web users (see the module note)."""

    def __init__(self, driver: BrowserRequests) -> None:
        self._driver = driver
        self._conferences: dict[str, Conference] = {}  # call id -> its conference
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)  # ids unique across instances: a conference may move (taken_over)
        self._tasks: set[asyncio.Task[None]] = set()
        self._resuming: set[str] = set()  # held calls being resumed by their merge
        # calls taken over here whose handovers named a conference: call id -> (its id, its call ids)
        self._taken: dict[str, tuple[str, tuple[str, ...]]] = {}

    def hold_locked(self, call_id: str) -> bool:
        """Whether the web user's hold or resume of `call_id` is refused: it is in a conference (the
        merge's own resume of its held call aside)."""
        return call_id in self._conferences and call_id not in self._resuming

    # -- merge ----------------------------------------------------------------------------------------
    def _bridge(self, session: SessionSink, call_id: str, field: str) -> BridgedMedia:
        if not self._driver.owns_call(session, call_id):
            raise NotFound(f"no call {call_id[:80]!r} for this session", field=field)
        runtime = next((r for r in self._driver.runtimes if r.call_id == call_id), None)
        bridge = runtime.bridge if runtime is not None and not runtime.finished else None
        if bridge is None:
            raise NotFound(f"no call {call_id[:80]!r} for this session", field=field)
        if bridge.passes_through:
            raise Conflict(
                f"call {call_id!r} passes its media through: the gateway has none of it to mix", field=field
            )
        return cast(BridgedMedia, bridge)  # what does not pass through is bridged (call_media.py)

    def _held(self, call_id: str, field: str) -> bool:
        """Whether the web user holds `call_id` (and only she: a call its SIP party holds cannot merge)."""
        machine = self._driver.registry.get(call_id)
        state, busy = machine.state, machine.reinvite is not None
        if state not in (CallState.CONNECTED, CallState.HOLDING) or busy or machine.remote_hold:
            raise Conflict(
                f"call {call_id!r} is {state.value}{', renegotiating' if busy else ''}"
                f"{', held by its party' if machine.remote_hold else ''}: it cannot be merged now",
                field=field,
            )
        return machine.local_hold

    async def merge(self, session: SessionSink, call_ids: Sequence[str], field: str = "call_ids") -> str:
        """Merge the session's active call and its held call `call_ids` (two ids, either order); the
        conference id. The refusals name `field` (the dialect's name of the calls)."""
        if len(call_ids) != 2:
            raise BadRequest("call_ids must name two calls: the active one and a held one", field=field)
        if call_ids[0] == call_ids[1]:
            raise BadRequest("a call cannot be merged with itself", field=field)
        for call_id in call_ids:
            if call_id in self._conferences:
                raise Conflict(f"call {call_id!r} is in a conference already", field=field)
        bridges = {call_id: self._bridge(session, call_id, field) for call_id in call_ids}
        held = [call_id for call_id in call_ids if self._held(call_id, field)]
        if len(held) != 1:
            raise Conflict(
                "one call must be held and the other active"
                + (
                    f": neither {call_ids[0]!r} nor {call_ids[1]!r} is held"
                    if not held
                    else ": both are held"
                ),
                field=field,
            )
        (waiting,) = held
        (carrier,) = [call_id for call_id in call_ids if call_id != waiting]
        conference = Conference(self._new_id(), session, {carrier: bridges[carrier]})
        conference.bridges[waiting] = bridges[waiting]
        mixer = conference.mixer
        try:
            _participant(mixer, WEB, bridges[carrier], Leg.WEB)
            _participant(mixer, carrier, bridges[carrier], Leg.SIP)
            _participant(mixer, waiting, bridges[waiting], Leg.SIP)
        except (MediaError, ValueError) as exc:
            mixer.close()
            raise Conflict(f"the calls cannot be mixed: {exc}", field=field) from None
        self._lend(conference)
        self._resuming.add(waiting)
        try:
            # its party hears the mix
            await self._driver.resume(self._owner(waiting, session) or session, waiting)
        except SignalingError:
            for call_id in conference.call_ids:
                self._conferences.pop(call_id, None)
            conference.stop()
            for bridge in bridges.values():
                bridge.end_mix()
            raise
        finally:
            self._resuming.discard(waiting)
        if len(conference.bridges) < 2:  # one of them ended meanwhile (`split` told it)
            raise Conflict("a call of the merge ended while it was being merged", field=field)
        logger.info("%s: calls %s (carrier) and %s merged", conference.id, carrier, waiting)
        await self._tell(conference, Merged(conference.id, conference.call_ids))
        return conference.id

    def _lend(self, conference: Conference) -> None:
        """The conference's bridges lent to its mix (the carrier's web leg and both SIP legs), its clock
        started; from now on a call's end leaves it."""
        mixer, (carrier, waiting) = conference.mixer, conference.call_ids
        bridges = conference.bridges
        bridges[carrier].lend_to_mix(
            web=lambda payload: mixer.push(WEB, payload),
            sip=lambda payload: mixer.push(carrier, payload),
            web_renewed=lambda: self._web_renewed(conference),
        )
        try:
            bridges[waiting].lend_to_mix(web=None, sip=lambda payload: mixer.push(waiting, payload))
        except MediaError:
            bridges[carrier].end_mix()
            raise
        conference.start()
        for call_id in conference.call_ids:
            self._conferences[call_id] = conference

    def _web_renewed(self, conference: Conference) -> None:
        """The carrier's browser is back on a new web leg: the web user in the mix again (with the new
        leg's codec), and the sessions told `merged` again (the page's calls are in it)."""
        bridge = conference.bridges.get(conference.carrier)
        if bridge is None or len(conference.bridges) < 2:
            return
        conference.mixer.remove(WEB)
        try:
            _participant(conference.mixer, WEB, bridge, Leg.WEB)
        except (MediaError, ValueError) as exc:  # (its codec): the calls go on apart, the page told
            logger.warning("%s: the web user's new leg cannot be mixed: %s", conference.id, exc)
            carrier = conference.carrier
            self._leave(conference, carrier, "unmixable")
            self._spawn(self._tell_left(conference, carrier, "split"))
            return
        logger.info("%s: the web user is back on call %s", conference.id, conference.carrier)
        self._spawn(self._tell(conference, Merged(conference.id, conference.call_ids)))

    def web_frames_mixed(self, call_id: str) -> int | None:
        """The frames the web user's leg has given the mix of `call_id`'s conference since it (last) joined
        it; None: the call is in none."""
        conference = self._conferences.get(call_id)
        return conference.mixer.frames_in(WEB) if conference is not None else None

    # -- across instances (issue 34) --------------------------------------------------------------------
    def merge_of(self, call_id: str) -> dict[str, Any] | None:
        """What `call_id`'s handover says of its conference (None: in none, or one being made or ended)."""
        conference = self._conferences.get(call_id)
        if conference is None or len(conference.bridges) != 2 or self._resuming & set(conference.call_ids):
            return None
        return {"conference_id": conference.id, "call_ids": list(conference.call_ids)}

    def taken_over(self, call_id: str, merge: Mapping[str, Any]) -> None:
        """Call `call_id` was taken over here and its handover named a conference (`merge_of`): once its
        other call is here too, the conference is made again (see the module note)."""
        if self._runtime_bridge(call_id) is None:
            return  # ended meanwhile (call_gone has been)
        ids = tuple(merge["call_ids"])
        self._taken[call_id] = (str(merge["conference_id"]), ids)
        if any(self._taken.get(other, ("", ()))[1] != ids for other in ids):
            return  # the other is not here (yet)
        for other in ids:
            del self._taken[other]
        bridges: dict[str, BridgedMedia] = {}
        for other in ids:
            bridge = self._runtime_bridge(other)
            if bridge is None or bridge.passes_through or other in self._conferences:
                logger.warning("conference of %s not made again: call %s has no mixable media", ids, other)
                return
            bridges[other] = cast(BridgedMedia, bridge)
        wanted = str(merge["conference_id"])
        taken = {conference.id for conference in self._conferences.values()}
        conference = Conference(wanted if wanted not in taken else self._new_id(), None, bridges)
        try:
            for key in ids:
                _participant(conference.mixer, key, bridges[key], Leg.SIP)
            self._lend(conference)  # the web user joins when the page reattaches the carrier (_web_renewed)
        except (MediaError, ValueError) as exc:
            conference.mixer.close()
            logger.warning("conference of %s not made again: %s", ids, exc)
            return
        logger.info("%s: calls %s (carrier) and %s merged again, taken over here", conference.id, *ids)
        if bridges[ids[0]].web_up:  # the page reattached the carrier before the other call was here
            self._web_renewed(conference)

    def _runtime_bridge(self, call_id: str) -> CallMedia | None:
        runtime = next((r for r in self._driver.runtimes if r.call_id == call_id), None)
        return runtime.bridge if runtime is not None and not runtime.finished else None

    def _new_id(self) -> str:
        return f"conf-{self._prefix}-{next(self._ids)}"

    def release(self, call_id: str) -> None:
        """Call `call_id` goes on at another instance (a drain's hand-off): out of its conference without
        a word to the page, which is told `merged` again where it reattaches (see the module note)."""
        self._taken.pop(call_id, None)
        conference = self._conferences.get(call_id)
        if conference is not None:
            self._leave(conference, call_id, "handed over")

    # -- a call leaves ----------------------------------------------------------------------------------
    async def split(self, session: SessionSink, call_id: str, field: str = "call_id") -> None:
        """Take `call_id` out of its conference and hold it again (see the module note)."""
        conference = self._conferences.get(call_id)
        if conference is None or not self._driver.owns_call(session, call_id):
            raise NotFound(f"call {call_id[:80]!r} is in no conference of this session", field=field)
        bridge = conference.bridges[call_id]
        self._leave(conference, call_id, "split")
        bridge.lend_to_mix(web=None, sip=None)  # muted until the hold is in force
        try:
            await self._driver.hold(self._owner(call_id, session) or session, call_id)
        finally:
            self._spawn(self._give_back_when_held(call_id, bridge))
        await self._tell_left(conference, call_id, "split")

    async def _give_back_when_held(self, call_id: str, bridge: BridgedMedia) -> None:
        """The split call's legs go back to its bridge once its hold is in force (or failed, or it ended)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + HOLD_WAIT
        registry = self._driver.registry
        while loop.time() < until and call_id in registry:
            machine = registry.get(call_id)
            if machine.local_hold or (machine.reinvite is None and not machine.want_local_hold):
                break
            await asyncio.sleep(0.05)
        bridge.end_mix()

    def _owner(self, call_id: str, asking: SessionSink | None) -> SessionSink | None:
        """The session that carries `call_id` (an HTTP API session has one call: the other call of a merge
        is another of the user's sessions), else the one asking."""
        registry = self._driver.registry
        machine = registry.get(call_id) if call_id in registry else None
        owner = (
            self._driver.session(machine.session_id) if machine is not None and machine.session_id else None
        )
        return owner if owner is not None else asking

    def call_gone(self, call_id: str) -> None:
        """The driver: call `call_id` ended (either side hung up); it leaves its conference."""
        self._taken.pop(call_id, None)
        conference = self._conferences.get(call_id)
        if conference is not None:
            self._leave(conference, call_id, "ended")
            self._spawn(self._tell_left(conference, call_id, "ended"))

    def _leave(self, conference: Conference, call_id: str, reason: str) -> None:
        """`call_id` out of the mix; with one call left, the conference ends (see the module note)."""
        was_carrier = conference.carrier == call_id
        del conference.bridges[call_id]
        self._conferences.pop(call_id, None)
        conference.mixer.remove(call_id)
        if was_carrier:
            conference.mixer.remove(WEB)
        logger.info("%s: call %s left (%s)", conference.id, call_id, reason)
        if len(conference.bridges) < 2:
            conference.stop()
            for rest, bridge in conference.bridges.items():
                self._conferences.pop(rest, None)
                bridge.end_mix()  # an ordinary call again, on its own web leg
            logger.info("%s: over", conference.id)

    async def _tell_left(self, conference: Conference, call_id: str, reason: str) -> None:
        over = len(conference.bridges) < 2
        await self._tell(
            conference, Split(conference.id, call_id, conference.call_ids, reason, over), call_id
        )

    async def _tell(self, conference: Conference, event: Merged | Split, left: str | None = None) -> None:
        """Every session of the calls concerned hears it (one `/ws` session has both; an HTTP API
        session has one call each)."""
        first = conference.session
        sessions = {first.id: first} if first is not None else {}
        for call_id in (*conference.call_ids, *((left,) if left is not None else ())):
            sink = self._owner(call_id, first)
            if sink is not None:
                sessions.setdefault(sink.id, sink)
        for sink in sessions.values():
            if not sink.closed:
                await sink.send_event(event)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
