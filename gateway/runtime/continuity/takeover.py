"""Calls that outlive their gateway instance (issue 34 item 3): the handover an instance keeps of each
call, and a survivor carrying the call on from it.

How it works: at every heartbeat a cluster instance writes, beside each live call's record, its
*handover* (gateway/cluster/live_calls.py): the call machine's records (`CallMachine.to_dict`), the SIP
leg's dialog (`Call.handover`: RFC 3261 §12 dialog state, the SDPs), the SIP side of the media bridge
(`handover`: our last SDP and its o= version, the negotiated codec) and the login that may take the call
back (its token family and user). Only calls that can be carried on are written: connected or holding,
no re-INVITE or transfer under way (a pass-through call too: its media flows end to end and outlives the
instance, the survivor takes its signaling over), a SIP leg that is not a browser's WebSocket flow, carried by a login that reconnects (a
`/ws` session with a token: the softphone page), by an HTTP API session that renews its media, by a
JSON-RPC peer with an announced id (`PeerSink`), or by a SIP library over WebSocket (`FlowSink`: its
dialog goes in the handover too, gateway/websip/takeover.py).

When an instance's lease lapses, the survivor that claims its calls (live_calls.py) hands each handover
to `take_over`: the machine is adopted into this instance's registry (its monotonic times moved onto
this instance's clock), the SIP dialog into this UA (`UserAgent.adopt`), a new bridge resumes the SIP
side on this instance's own RTP socket and its offer goes to the SIP party in an in-dialog re-INVITE
(with this instance's Contact: a target refresh, RFC 3261 §12.2, so the far end's BYE comes here); the
SIP party hears the reconnecting fill meanwhile. The call then waits for its login as a detached call
does (`TakenOver`: a whole `reconnect_grace`): the page, reconnected through HAProxy, logs in with its
token (relayed here when it lands elsewhere: the detached login's owner in Redis) and `reattach`es. An
HTTP API session is made again here under its ids (`HttpIds`, owned here in Redis), and the client's next
offer with its `session_id` renews the call's media as after a lost network. A JSON-RPC peer is made
again here, detached, under its session id (`on_rpc_peer`: gateway/signaling/jsonrpc/resume.py): its
client's `announce` of the id resumes it, and its `offer {call_id, sdp}` renews the media. A SIP
library's session is made again here under its id with the library's dialog (`on_web_sip`), waiting
for the library's new flow; its next re-INVITE renews the media. A room's SIP party is made again where its
room lives (here, taken for this instance, or the handover sent on to the instance a browser brought
the room to: `_room_elsewhere`), with a new leg to the room's mix (gateway/runtime/rooms/). A call of a three-way
conference names it in its handover (`merge`): the survivor that holds both its calls makes it again
(gateway/runtime/merge/three_way.py `taken_over`). A call that cannot be taken
over (an unknown user, the re-INVITE refused) gets BYE and its lost record. A drain hands its calls over
the same way, to a live instance at once (`take_over_all`; `release` forgets them on the drained one),
making before it breaks for a page's call: the drained instance keeps carrying the call's media
(`_overlap`), the taker re-INVITEs the SIP party only once the page's new connection brings its audio
(`_move_sip`, HANDED_WAIT at most), telling the drained one first (`on_moving`: POST /cluster/moved), which
then lets go of the media; neither the page nor the SIP party hears a gap longer than that round trip. A
SIP library's call too: the drained instance forgets the library's dialog without a BYE and closes its
idle flow with 1012; the library reconnects and REGISTERs again here (or is relayed here), our
re-INVITE gets its new media (gateway/websip/takeover.py), and only then is the SIP party moved
(LIBRARY_WAIT at most: the library's own reconnect timer comes first).

This module imports the call layer, the runtime's own modules, the signaling's session types and the SIP
UA; the cluster calls it through the functions it is given (gateway/cluster/wiring.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

from gateway.calls.boundary.events import TakenOver
from gateway.calls.errors import CallError
from gateway.calls.records import Attachment
from gateway.calls.states import CallState
from gateway.media.errors import MediaError
from gateway.runtime.call_media import CallMedia
from gateway.runtime.call_runtime import CallRuntime
from gateway.runtime.continuity.handover import (
    Handover,
    HandoverError,
    HttpIds,
    Owner,
    RoomParty,
    RpcIds,
)
from gateway.runtime.offers import HttpSession
from gateway.runtime.passthrough import HANDOVER_KIND as PASSTHROUGH
from gateway.signaling.service import FlowSink, PeerSink, peer_family, session_key
from gateway.sip.useragent.ua_calls import Call as SipCall
from gateway.sip.useragent.ua_calls import CallState as SipCallState
from sipcore.syntax.reason import ReasonValue

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine
    from gateway.identity import WebUser
    from gateway.runtime.driver_core import DriverCore

logger = logging.getLogger(__name__)

REINVITE_SECONDS: Final = 8.0  # the SIP party's answer to the takeover's re-INVITE (a live one: ms)
# A drain's hand-off makes before it breaks: the taking instance moves the SIP party (its re-INVITE) once
# the page's new connection brings its audio (or after HANDED_WAIT s), while the drained one carries the
# call's media on meanwhile, until the SIP party's audio stops coming there (OVERLAP_QUIET s without a
# packet: it moved) or OVERLAP_MAX s.
HANDED_WAIT: Final = 3.0
# a SIP library's call: its library reconnects by itself (JsSIP after its recovery timer, 2 s at least),
# REGISTERs again and is asked for its new media a second later (gateway/websip/takeover.py)
LIBRARY_WAIT: Final = 6.0
OVERLAP_QUIET: Final = 0.5
OVERLAP_MAX: Final = 8.0
BACK_POLL: Final = 0.02  # s between looks at a bridge waiting for its browser's audio, or for its end
PAIR_WAIT: Final = 10.0  # s the calling end of a dialog with itself waits for the answering end's takeover
PAIR_KEEP: Final = 60.0  # s that end's outcome is kept for it
# what the SIP party of a call no instance could carry on is told with our BYE (RFC 3326): an ISDN
# "temporary failure", which PBXes log and map (Asterisk's hangup cause 41), not a normal clearing
NOT_CARRIED_ON: Final = ReasonValue("Q.850", 41, "Call not carried on after a gateway failure")


def _steady(machine: CallMachine) -> bool:
    """Whether nothing is under way that a handover cannot carry (a re-INVITE, a transfer, a reattach)."""
    return (
        machine.state in (CallState.CONNECTED, CallState.HOLDING)
        and machine.renegotiation.phase is None
        and machine.transfer.out is None
        and machine.transfer.into is None
        and not machine.transfer.replacing
        and machine.attachment is not Attachment.REATTACHING
    )


def _renewed_here(handover: Handover) -> bool:
    """Whether a call a drain handed here makes before it breaks: its SIP party moved here only once the
    client's new media arrives (`_move_sip`). A page's reattach, an HTTP API session's new offer (told
    `web_lost` cause `moved`: `HttpSession.moved`) and a JSON-RPC peer's `offer {call_id, sdp}` once its
    announce resumed it each bring new media from a new connection while the old one still plays, and so
    does a SIP library's answer to our re-INVITE once it is back on a flow (its old ICE and DTLS still
    playing meanwhile). Not a WHIP resource (its client cannot renew on cue), a room's party, a
    conference's call or a dialog with itself (moved at once, as after a death)."""
    if handover.merge is not None or handover.pair is not None or handover.room is not None:
        return False
    if handover.media_intact:
        return False
    return handover.http is None or not handover.http.whip


class Takeovers:
    """The driver's side of calls moving between instances: their handovers, and taking them over."""

    def __init__(self, driver: DriverCore) -> None:
        self._driver = driver
        self.taken = 0  # calls carried on here from instances that died
        # one (wall, monotonic) reading for every handover this process writes: a survivor moves the
        # machine's monotonic times by it, and a call's handover stays the same text from beat to beat
        # unless the call changed (the ledger rewrites only what changed)
        self._clocks = (time.time(), time.monotonic())
        self._pairs: dict[str, asyncio.Future[bool]] = {}  # dialogs with itself: their answering end here
        self._overlaps: dict[str, asyncio.Task[None]] = {}  # handed-over calls' media still carried here
        # a cluster (gateway/cluster/wiring.py): tells the drained instance that handed us calls that their
        # SIP parties move here now (its id, the call ids), so that it stops sending them media first
        self.on_moving: Callable[[str, list[str]], Awaitable[None]] | None = None
        # an HTTP API session made again here, by its key (signaling.service.session_key): a cluster
        # records that it is owned here now (gateway/cluster/wiring.py)
        self.on_http_session: Callable[[str], None] | None = None
        # makes a JSON-RPC peer again here, detached, for a call taken over (user, its ids, the call id):
        # False when it cannot wait (gateway/signaling/jsonrpc/resume.py; set by gateway/app.py)
        self.on_rpc_peer: Callable[[WebUser, RpcIds, str], Awaitable[bool]] | None = None
        # makes a SIP library's session again here, with its dialog, waiting for the library's new flow
        # (user, the handover's `websip`, the call id): False when it cannot (gateway/websip/takeover.py)
        self.on_web_sip: Callable[[WebUser, Mapping[str, Any], str], Awaitable[bool]] | None = None
        # a call's three-way conference, for its handover, and the conference made again once a survivor
        # holds both its calls (gateway/runtime/merge/three_way.py; set by gateway/runtime/driver.py)
        self.merge_of: Callable[[str], Mapping[str, Any] | None] = lambda call_id: None
        self.on_merged_call: Callable[[str, Mapping[str, Any]], None] | None = None
        self.on_released: Callable[[str], None] | None = None
        # a room's SIP party (gateway/runtime/rooms/service.py; set by gateway/app.py): its handover's
        # `room` part; the room's own user for one that called in; the party made again here (user, room
        # part, call id, session id); its media renewed once the call waits here
        self.room_party_of: Callable[[object], Mapping[str, Any] | None] = lambda session: None
        self.room_user: Callable[[Mapping[str, Any]], WebUser] | None = None
        self.on_room_party: Callable[[WebUser, Mapping[str, Any], str, str], Awaitable[bool]] | None = None
        self.room_party_back: Callable[[str], None] | None = None
        # a cluster (gateway/cluster/wiring.py): the base URL of the instance a room lives on when another
        # (None: here, taken for this one), and a handover sent on to it (the ids it took)
        self.room_home: Callable[[str], Awaitable[str | None]] | None = None
        self.forward: Callable[[str, dict[str, str]], Awaitable[list[str] | None]] | None = (
            None  # None: unknown
        )

    def _owner(self, runtime: CallRuntime) -> Owner | None:
        """(login family, user, HTTP session or JSON-RPC peer ids) of what may take runtime's call back,
        when another instance could carry the call on; else None."""
        driver, machine = self._driver, runtime.machine
        if machine is None or runtime.finished or not _steady(machine) or driver.reconnects.grace <= 0:
            return None  # (no reconnect grace: no browser would come back for it)
        call, media = runtime.sip.call, runtime.bridge
        if (
            call is None
            or call.ended
            or call.state is not SipCallState.CONFIRMED
            or call.next_hop is not None
        ):
            return None  # not confirmed, or a browser's SIP WebSocket flow: it cannot move
        if media is None:
            return None
        session = driver.session(machine.session_id) if machine.session_id else None
        if isinstance(session, HttpSession):  # an HTTP API session renews its media by a new offer
            if session.closed:
                return None
            # (a WHIP resource's client publishes again to the same destination: signaling/whip/whip.py)
            whip = not session.renews_media
            ids = HttpIds(session.public_id, session.id, session.progress.dial, session.api_key, whip)
            return "", session.user.id, ids
        if isinstance(session, PeerSink):  # a JSON-RPC peer: its announce of the id takes it back
            peer_id = session.takeover_peer
            if peer_id is None or session.closed or self.on_rpc_peer is None:
                return None
            user_id = session.user.id
            return peer_family(user_id, peer_id), user_id, RpcIds(session.id, peer_id)
        if isinstance(session, FlowSink):  # a SIP library: its dialog goes too, and its flow comes back
            library = session.handover(runtime.call_id) if self.on_web_sip is not None else None
            return None if library is None or session.closed else ("", session.user.id, library)
        room = self.room_party_of(session)
        if room is not None and session is not None:  # a room's SIP party: made again where the room is
            return "", session.user.id, RoomParty(room)
        owner = driver.reconnects.owner(runtime.call_id, session)
        return None if owner is None else (owner[0], owner[1], None)

    def handover_of(self, runtime: CallRuntime) -> Handover | None:
        """Runtime's handover, when its call can be carried on by another instance; else None."""
        owner, machine, call, media = self._owner(runtime), runtime.machine, runtime.sip.call, runtime.bridge
        if owner is None or machine is None or call is None or media is None:
            return None
        try:
            media_state = media.handover()
        except MediaError:  # not steady yet (the SIP side's answer still being applied): a later beat
            return None
        if media_state is None:
            return None
        record = machine.to_dict()
        if record.get("attachment") == Attachment.AWAY.value:  # (its web leg is this instance's: elsewhere
            record["attachment"] = (
                Attachment.DETACHED.value
            )  # the call waits for a new one; older ones read it)
        return Handover(
            runtime.call_id, record, call.handover(), media_state, owner[0], owner[1],
            *self._clocks, owner[2] if isinstance(owner[2], HttpIds) else None,
            owner[2] if isinstance(owner[2], RpcIds) else None,
            owner[2] if isinstance(owner[2], Mapping) else None, self.merge_of(runtime.call_id),
            owner[2].data if isinstance(owner[2], RoomParty) else None,
        )  # fmt: skip

    def handovers(self, *, only: Collection[str] | None = None) -> dict[str, str]:
        """call id -> handover JSON, for each call of this instance that another could carry on. With
        ``only``: those calls' (and the other end of a dialog with itself that one of them is: a pair is
        written whole)."""
        runtimes = self._driver.runtimes
        if only is not None:
            dialogs = {r.sip.call.call_id for r in runtimes if r.call_id in only and r.sip.call is not None}
            runtimes = tuple(
                r for r in runtimes
                if r.call_id in only or (r.sip.call is not None and r.sip.call.call_id in dialogs)
            )  # fmt: skip
        made: dict[str, Handover] = {}
        for runtime in runtimes:
            try:
                handover = self.handover_of(runtime)
            except Exception:  # one call's odd state must not stop the others' handovers
                logger.exception("call=%s no handover", runtime.call_id)
                continue
            if handover is not None:
                made[runtime.call_id] = handover
        # both ends of a dialog with itself (a web-to-web call), each with a handover: carried on as one
        ends = Counter(str(h.sip.get("call_id")) for h in made.values() if h.room is None)
        return {
            call_id: (
                dataclasses.replace(h, pair=str(h.sip.get("call_id")))
                if h.room is None and ends[str(h.sip.get("call_id"))] == 2
                else h
            ).to_json()
            for call_id, h in made.items()
        }

    def never_carried(self, call_ids: Collection[str]) -> set[str]:
        """Those of `call_ids` that no other instance would carry on as they are now: over, or with no
        browser or session that would come back for them (a WHIP call, no reconnect grace)."""
        runtimes = {r.call_id: r for r in self._driver.runtimes if r.call_id in call_ids}
        return {c for c in call_ids if c not in runtimes or self._owner(runtimes[c]) is None}

    def families(self) -> frozenset[str]:
        """The logins (token families) whose calls here another instance could carry on: a page of one
        of them that reconnects to another instance is relayed here, or to whoever takes them over
        (cluster/wiring.py)."""
        found = set()
        for runtime in self._driver.runtimes:
            owner = self._owner(runtime)
            if owner is not None and owner[0]:
                found.add(owner[0])
        return frozenset(found)

    async def take_over(self, call_id: str, line: str, instance_id: str, *, handed: bool = False) -> bool:
        """Carry on call `call_id` of dead instance `instance_id` from its handover JSON `line`: True
        when it goes on here (or, a room's SIP party, at the instance its room lives on), False when it
        could not (its lost record is then written by the caller). ``handed``: another instance handed it
        here (a drain, or a room's party sent on): it is not sent on again."""
        try:
            handover = Handover.from_json(line)
        except HandoverError as exc:
            logger.warning("call=%s of instance %s: unreadable handover (%s)", call_id, instance_id, exc)
            return False
        if handover.call_id != call_id:
            return False
        if handover.pair is None:
            return await self._take_over(handover, line, instance_id, handed)
        # an end of a dialog with itself: the answering end first, the calling end once it is here
        answering = handover.sip.get("kind") == "incoming"
        mine = self._pair(handover.pair, "answering" if answering else "calling")
        taken = False
        try:
            taken = await self._take_over(handover, line, instance_id, handed)
        finally:
            if not mine.done():
                mine.set_result(taken)
        if taken and answering:  # without its calling end's re-INVITE, nothing would ever end it
            self._driver.spawn(self._calling_end_or_give_up(call_id, handover.pair))
        return taken

    def _pair(self, sip_call_id: str, end: str) -> asyncio.Future[bool]:
        """Whether that end of dialog `sip_call_id` (a web-to-web call's) is carried on here."""
        key = f"{end} {sip_call_id}"
        future = self._pairs.get(key)
        if future is None:
            future = self._pairs[key] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(PAIR_KEEP, self._pairs.pop, key, None)
        return future

    async def _calling_end_or_give_up(self, call_id: str, sip_call_id: str) -> None:
        """The answering end of a dialog with itself, carried on here: given up (BYE, no record) unless
        its calling end is carried on too."""
        try:
            calling = await asyncio.wait_for(
                asyncio.shield(self._pair(sip_call_id, "calling")), PAIR_WAIT * 2
            )
        except TimeoutError:
            calling = False
        runtime = next((r for r in self._driver.runtimes if r.call_id == call_id and not r.finished), None)
        if not calling and runtime is not None:
            logger.warning("call=%s: its dialog's calling end was not carried on: given up", call_id)
            await self._give_up(runtime)

    async def _take_over(self, handover: Handover, line: str, instance_id: str, handed: bool) -> bool:
        driver, call_id = self._driver, handover.call_id
        if call_id in driver.registry or not driver.accepting:
            return False
        if handover.room is not None:
            elsewhere = await self._room_elsewhere(handover, line, handed)
            if elsewhere is not None:
                return elsewhere
        adopted = await self._adopt(handover, instance_id)
        if adopted is None:
            return False
        runtime, user = adopted
        kept = any(part is not None for part in (handover.http, handover.rpc, handover.websip, handover.room))
        later = handed and _renewed_here(handover)
        try:
            moving = await self._resume(runtime, handover, later=later)
        except Exception as exc:
            logger.warning("call=%s of instance %s not taken over: %s", call_id, instance_id, exc)
            await self._give_up(runtime)
            return False
        if not await self._session_again(runtime, user, handover):
            await self._give_up(runtime)
            return False
        driver.adopt_runtime(runtime)
        if handover.http is not None:  # its session again, under its ids: the client renews its media
            ids = handover.http
            session = driver.adopt_http(
                user, ids.public_id, ids.id, call_id, dial=ids.dial, api_key=ids.api_key, whip=ids.whip
            )
            if later:  # (said here too: a client polling its session is answered from here now)
                session.moved()
            if self.on_http_session is not None:  # owned here now (a cluster's record: forwarded here)
                self.on_http_session(session_key(user.id, ids.public_id))
        if not kept:  # a page's: its login takes it back
            driver.reconnects.adopt(call_id, handover.family, user.id)
        await runtime.feed(TakenOver(instance_id, session_kept=kept, media_intact=handover.media_intact))
        if not kept:  # its page may have logged in here already
            await driver.tell_waiting(call_id)
        self._carried_on(call_id, handover)
        if moving is not None:
            library = handover.websip is not None
            wait = LIBRARY_WAIT if library else HANDED_WAIT
            driver.spawn(self._move_sip(runtime, *moving, instance_id, wait, one_connection=library))
        self.taken += 1
        driver.steady(call_id)  # its handover written here soon: this instance may die too
        logger.warning("call=%s of instance %s taken over here", call_id, instance_id)
        return True

    async def _adopt(self, handover: Handover, instance_id: str) -> tuple[CallRuntime, WebUser] | None:
        """The handover's call machine adopted here, in a runtime of its own, and its user; None when it
        cannot be (an unknown user, an odd record)."""
        driver, call_id, room = self._driver, handover.call_id, handover.room
        if room is not None and room["inbound"] and self.room_user is not None:
            user: WebUser | None = self.room_user(room)  # the room's own user: it answered the call
        else:
            user = await driver.identity.store.get(handover.user)
        if user is None:
            logger.warning("call=%s of instance %s: no user %r here", call_id, instance_id, handover.user)
            return None
        try:
            machine_data = handover.machine_here(time.time(), time.monotonic())
            machine = driver.registry.adopt(machine_data, {user.id: user}.get)
        except (CallError, ValueError, KeyError, TypeError) as exc:
            logger.warning("call=%s of instance %s: its state cannot be read (%s)", call_id, instance_id, exc)
            return None
        if machine.direction is None:  # a connected call always has one: an odd record
            driver.registry.discard(call_id)
            return None
        runtime = CallRuntime(call_id, machine.direction, driver)
        runtime.machine = machine
        runtime.web_user = user.id
        return runtime, user

    def _carried_on(self, call_id: str, handover: Handover) -> None:
        """A call taken over waits here: a room's party gets its leg to the mix again, a conference's
        call is merged again once the other is here too."""
        if handover.room is not None and self.room_party_back is not None:
            self.room_party_back(call_id)
        if handover.merge is not None and self.on_merged_call is not None:
            try:  # the call goes on here whatever becomes of its conference
                self.on_merged_call(call_id, handover.merge)
            except Exception:
                logger.exception("call=%s: its conference not made again", call_id)

    async def take_over_all(self, instance_id: str, handovers: Mapping[str, str]) -> list[str]:
        """A draining instance's calls handed here (call id -> handover JSON): the ids carried on here."""
        outcomes = await asyncio.gather(
            *(self.take_over(call_id, line, instance_id, handed=True) for call_id, line in handovers.items()),
            return_exceptions=True,
        )
        taken = [call_id for call_id, ok in zip(handovers, outcomes, strict=True) if ok is True]
        return self._whole_pairs(handovers, taken)

    def _whole_pairs(self, handovers: Mapping[str, str], taken: list[str]) -> list[str]:
        """Of the calls `taken` here, those whose dialog with itself was taken over whole: an end whose
        other end was not is dropped here unheard (the sender keeps both: one dialog, one instance)."""
        pairs: dict[str, list[str]] = {}
        for call_id, line in handovers.items():
            with contextlib.suppress(HandoverError):
                pair = Handover.from_json(line).pair
                if pair is not None:
                    pairs.setdefault(pair, []).append(call_id)
        whole = list(taken)
        for ends in pairs.values():
            here = [call_id for call_id in ends if call_id in taken]
            if len(here) == len(ends):
                continue
            for call_id in here:  # forgotten here unheard, as a call handed on is (its dialog the sender's)
                logger.warning(
                    "call=%s: the other end of its dialog was not taken here: left to the sender", call_id
                )
                whole.remove(call_id)
                self.release(call_id)
        return whole

    def release(self, call_id: str) -> None:
        """Call `call_id` goes on at the instance this one handed it to (a drain): forget it here without a
        word to anyone: no BYE (the dialog is the other's), no `ended` to the page (its socket closes with
        1012 once idle, and it takes the call back there), no record (the other writes it)."""
        runtime = next((r for r in self._driver.runtimes if r.call_id == call_id), None)
        if runtime is None:
            return
        runtime.unrecorded = True
        driver = self._driver
        if self.on_released is not None:  # out of its conference quietly (the page hears of it there)
            self.on_released(call_id)
        if call_id in driver.registry:
            machine = driver.registry.get(call_id)
            session = driver.session(machine.session_id) if machine.session_id else None
            if isinstance(session, HttpSession):  # owned there now: its requests are forwarded there
                session.moved()  # its client renews its media there, its old connection playing meanwhile
                driver.forget_http(session)
            elif isinstance(session, PeerSink):  # a JSON-RPC peer: its client takes the call back there
                session.forget_call(call_id)
            elif isinstance(session, FlowSink):  # a SIP library: its dialog is the other's now, its flow
                session.forget_call(call_id)  # closes as idle and its library comes back there
            driver.registry.discard(call_id)
        if runtime.sip.call is not None:
            runtime.sip.call.release()
        bridge = runtime.media.bridge
        if bridge is not None and not bridge.passes_through:  # its media carried on until the SIP party moved
            runtime.media.bridge = None
            bridge.orphan()
            task = asyncio.get_running_loop().create_task(self._overlap(call_id, bridge))
            self._overlaps[call_id] = task
            task.add_done_callback(lambda _: self._overlaps.pop(call_id, None))
        runtime.run_commands([])  # the worker wakes, finds the call gone, closes its media and ends
        logger.info("call=%s handed over: it goes on at another instance", call_id)

    async def _overlap(self, call_id: str, bridge: CallMedia) -> None:
        """A handed-over call's bridge, carrying its media until the SIP party's audio stops coming here
        (the taking instance's re-INVITE moved it) or OVERLAP_MAX; then closed."""
        loop = asyncio.get_running_loop()
        started = heard_at = loop.time()
        received = -1
        try:
            while loop.time() - started < OVERLAP_MAX and loop.time() - heard_at < OVERLAP_QUIET:
                stats = bridge.stats()
                count = stats.sip_to_web.received if stats is not None else received
                if count != received:
                    received, heard_at = count, loop.time()
                await asyncio.sleep(BACK_POLL * 5)
        except (MediaError, asyncio.CancelledError):
            pass  # (cancelled: `moved`)
        finally:
            await bridge.close()
        logger.info("call=%s handed over: its media here closed after %.2f s", call_id, loop.time() - started)

    def moved(self, call_ids: list[str]) -> None:
        """The instance these calls were handed to moves their SIP parties now: their media here ends."""
        for call_id in call_ids:
            task = self._overlaps.get(call_id)
            if task is not None:
                task.cancel()  # (its `finally` closes the bridge)

    async def overlaps_done(self) -> None:
        """Every handed-over call's media carried here has ended (a drained instance exits after)."""
        if self._overlaps:
            await asyncio.wait(set(self._overlaps.values()), timeout=OVERLAP_MAX + 1.0)

    async def _session_again(self, runtime: CallRuntime, user: WebUser, handover: Handover) -> bool:
        """The session carrying a call taken over, made again here when it is not a page's (whose login
        comes back by itself): a JSON-RPC peer, detached, whose client's `announce` of the id (here, or
        relayed here) takes the call back and whose `offer {call_id, sdp}` renews the media; a SIP
        library's session under its id with the library's dialog, waiting for the library's new flow
        (its REGISTER, relayed here by any instance), whose next re-INVITE renews the media
        (gateway/websip/takeover.py). False when it cannot wait here."""
        made: Awaitable[bool] | None = None
        if handover.rpc is not None and self.on_rpc_peer is not None:
            made = self.on_rpc_peer(user, handover.rpc, runtime.call_id)
        elif handover.websip is not None and self.on_web_sip is not None:
            made = self.on_web_sip(user, handover.websip, runtime.call_id)
        elif handover.room is not None and self.on_room_party is not None and runtime.machine is not None:
            made = self.on_room_party(user, handover.room, runtime.call_id, runtime.machine.session_id or "")
        if made is None:  # nothing to make, or no way to
            return handover.rpc is None and handover.websip is None and handover.room is None
        try:
            return await made
        except Exception:
            logger.exception("call=%s: its session cannot wait here", runtime.call_id)
            return False

    async def _room_elsewhere(self, handover: Handover, line: str, handed: bool) -> bool | None:
        """A room's SIP party whose room lives on another instance (its browsers came back there first):
        sent on to it (True: taken there); None: the room is here (taken for this instance if free).
        False, the party's SIP side told BYE: rooms are off here, or the instance refused it (one handed
        here is refused, never sent on again: its sender BYEs, a drain leaves it where it is)."""
        call_id, room = handover.call_id, handover.room
        assert room is not None
        if self.on_room_party is None:  # (rooms off here)
            logger.warning("call=%s: a room's party, and rooms are off here", call_id)
            return False if handed else await self._bye_only(handover)
        if self.room_home is None:
            return None
        home = await self.room_home(str(room["room_id"]))
        if home is None:
            return None
        if handed or self.forward is None:
            logger.warning(
                "call=%s: its room %s lives on another instance: not taken over", call_id, room["room_id"]
            )
            return False
        taken = await self.forward(home, {call_id: line})
        if taken is None:  # no answer: it may have taken it (its re-INVITE out): no BYE of ours
            logger.warning(
                "call=%s: its room %s lives at %s, which did not answer", call_id, room["room_id"], home
            )
            return False
        if call_id in taken:
            logger.warning(
                "call=%s: its room %s lives at %s: taken over there", call_id, room["room_id"], home
            )
            return True
        logger.warning("call=%s: its room %s lives at %s, which refused it", call_id, room["room_id"], home)
        return await self._bye_only(handover)

    async def _bye_only(self, handover: Handover) -> bool:
        """A call no instance carries on: its SIP party hears BYE (not dead air until a keepalive fails),
        with the user's credentials for a challenge; the BYE's transaction runs its course (Timer F),
        which ends the adopted call here."""
        identity = await self._driver.identity.sip_identity(handover.user) if handover.user else None
        try:
            call = self._driver.ua.adopt(dict(handover.sip), identity)
        except Exception as exc:  # the dialog cannot be read, or it is here already
            logger.info("call=%s not told BYE after a failed takeover: %s", handover.call_id, exc)
            return False
        try:
            await call.bye(NOT_CARRIED_ON)
        except Exception as exc:  # the far end is gone too
            logger.info("call=%s BYE after a failed takeover: %s", handover.call_id, exc)
            if not call.ended:
                call.release()  # (forgotten here: no session timer on a dialog we tried to end)
        return False

    async def _resume(
        self, runtime: CallRuntime, handover: Handover, *, later: bool = False
    ) -> tuple[SipCall, CallMedia, str] | None:
        """This UA adopts the dialog, a new bridge resumes the SIP side here, the re-INVITE moves it
        (``later``, a bridge's: not yet, the call, its bridge and the re-INVITE's offer returned for
        `_move_sip`; else None). A
        dialog with itself (`pair`: a web-to-web call through the dead instance's own listener) becomes
        one with this instance on both ends: the answering end resumes without a re-INVITE, the calling
        end's re-INVITE (once that one is here) reaches it at this instance's listener, and its answer
        gives each end the other's new media address."""
        driver = self._driver
        # the web user's PBX credentials answer challenges to our requests in the call, as invite()'s do
        identity = await driver.identity.sip_identity(handover.user)
        sip = dict(handover.sip)
        answering = handover.pair is not None and sip.get("kind") == "incoming"
        if handover.pair is not None:
            sip["dialog"] = self._to_self(sip["dialog"])
            if not answering and not await asyncio.wait_for(
                asyncio.shield(self._pair(handover.pair, "answering")), PAIR_WAIT
            ):
                raise CallError("the other end of its dialog was not carried on here")
        call = driver.ua.adopt(sip, identity)
        runtime.sip.attach(call)
        media: CallMedia
        if handover.media.get("kind") == PASSTHROUGH:  # the media flows end to end: the signaling moves
            media = runtime.media.passthrough_media()
        else:
            media = runtime.media.bridge = driver.new_bridge(runtime.call_id, runtime.media.on_event)
        offer = await media.resume_sip(dict(handover.media))
        if answering:  # (its other end's re-INVITE brings the new addresses)
            media.drop_reoffer()
            return None
        if later and not media.passes_through:
            return call, media, offer
        await self._reinvite(call, media, offer)
        return None

    @staticmethod
    async def _reinvite(call: SipCall, media: CallMedia, offer: str) -> None:
        result = await asyncio.wait_for(call.reinvite(offer), REINVITE_SECONDS)
        if not result.ok:
            raise CallError(f"the SIP party refused the re-INVITE: {result.status} {result.reason}")
        await media.answer_to_reoffer(result.sdp)

    async def _move_sip(
        self,
        runtime: CallRuntime,
        call: SipCall,
        bridge: CallMedia,
        offer: str,
        instance_id: str,
        wait: float = HANDED_WAIT,
        *,
        one_connection: bool = False,
    ) -> None:
        """A call a drain handed here: its SIP party re-INVITEd here once the client's new media brings
        the browser's audio (`wait` s at most: HANDED_WAIT, LIBRARY_WAIT for a SIP library's call), so
        that neither side hears a gap: until then the drained instance carries the call's media as
        before. A client with `one_connection` (a SIP library: our answer goes to the RTCPeerConnection
        that plays the drained instance's media, which it stops as it takes a new DTLS association) is
        moved as soon as its new web leg is negotiated: the SIP party's re-INVITE then goes while the
        browser's ICE and DTLS come up, rather than after."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        machine = runtime.machine

        def back() -> bool:
            if bridge.web_present:
                return True
            return one_connection and machine is not None and machine.attachment is Attachment.ATTACHED

        while not back() and loop.time() < deadline and not call.ended:
            await asyncio.sleep(BACK_POLL)
        if call.ended or runtime.finished:
            return
        if self.on_moving is not None:  # the drained instance stops sending the SIP party our call's media
            await self.on_moving(instance_id, [runtime.call_id])
        try:
            await self._reinvite(call, bridge, offer)
        except Exception as exc:
            logger.warning("call=%s handed here not moved: %s", runtime.call_id, exc)
            await self._give_up(runtime)
            return
        logger.info(
            "call=%s handed here: its SIP party moved (%s)", runtime.call_id,
            "the browser back" if back() else f"the browser not back within {wait:g} s",
        )  # fmt: skip

    def _to_self(self, dialog: Mapping[str, Any]) -> dict[str, Any]:
        """A dialog of the dead instance with itself: its remote target at this instance's own listener
        (its user part kept), no route set."""
        transport, host, port = self._driver.ua.own_address()
        target = str(dialog.get("remote_target", ""))
        user = target.partition(":")[2].partition("@")[0] if "@" in target else ""
        literal = f"[{host}]" if ":" in host else host
        suffix = "" if transport == "UDP" else f";transport={transport.lower()}"
        at = f"{user}@" if user else ""
        return {**dialog, "remote_target": f"sip:{at}{literal}:{port}{suffix}", "route_set": []}

    async def _give_up(self, runtime: CallRuntime) -> None:
        """A call that could not be carried on: the SIP party hears BYE, nothing of it stays here."""
        call = runtime.sip.call
        if call is not None and not call.ended:
            try:
                await call.bye(NOT_CARRIED_ON)
            except Exception as exc:  # the far end is gone too: nothing more to tell it
                logger.info("call=%s BYE after a failed takeover: %s", runtime.call_id, exc)
        runtime.unrecorded = True  # the caller records it as lost
        self._driver.registry.discard(runtime.call_id)
        runtime.run_commands([])  # the worker wakes, finds the call gone, closes its media and ends
        await runtime.stop(1.0)
