"""JSON-RPC peers calling each other (`offer` with `target_peer_id`): relayed end to end.

The gateway carries no media for such a call: the caller's offer goes to the target peer as an `offer`
notification, the target's `answer {call_id, sdp}` comes back as the caller's result (`{answer,
call_id}`), and `ice_candidate` / `disconnect` with the call's id go to the other end as notifications.
Both peers hold an `RTCPeerConnection` each and their media flows between them (as in rooms), which
keeps the browsers' own codecs, encryption and data channels end to end, and costs the gateway nothing.
A target must have announced `capabilities.incoming_calls: true` on a gateway-authenticated socket.
The call controls (`hold`, `resume`, `dtmf`, `transfer`, `message`) act on a SIP party the gateway
holds a leg to, which a relayed call has not: they are refused with -32004 naming `call_id` (the peers
hold, send digits and chat between themselves, over their own connection).

    caller                           gateway (PeerDirectory)                       target
    offer {sdp, target_peer_id} ->   call id "p-..."           -> notify offer {call_id, sdp, from_peer_id, from}
                                                               <- answer {call_id, sdp}  (result: answered)
    <- result {answer, call_id}
    ice_candidate {call_id, c}  ->                             -> notify ice_candidate {call_id, candidate}
    disconnect {call_id}        ->                             -> notify disconnect {call_id, reason: remote_hangup}

Peer ids belong to users (issue 32 item 2: bob announced alice's `alice-desk` and her own call to it
rang him). The first authenticated user to announce an id holds it while one of her sockets has it
announced; another user's `announce` of it fails with -32008 `peer_id_taken` and the holder is
untouched. Several sockets of the holder may announce it (the latest rings). When the last of them
closes, the id stays reserved for her user for `RESERVE_SECONDS` (a reconnect takes it back; others
still get -32008), then it is free. A socket that announces another id gives up its previous one. The
caller's result names who answered (`answered_by {peer_id, user}`), and a call to another user's peer
obeys the caller's `allow_outbound` as a web call does (gateway/runtime/web_calls.py: the callee's
number or SIP address): refused with -32003 `forbidden` before the target is told anything.

A target that turns the call down (`disconnect {call_id}` while it rings) makes the caller's `offer` fail
with -32000 (`reason: declined`); one that does not answer within `service_timeout`, -32006; a peer whose
socket closes ends its relayed calls (`disconnect {reason: disconnected}` to the other end).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from gateway.identity import WebUser
from gateway.identity.lookup import IdentityMap
from gateway.signaling.errors import Forbidden, NotFound, ServiceError, Timeout
from gateway.signaling.jsonrpc.framing import PeerIdTaken
from gateway.signaling.service import JsonValue

logger = logging.getLogger(__name__)

RESERVE_SECONDS: Final = 60.0  # a released peer id stays its user's this long (a reconnect takes it back)


class RelayEnd(Protocol):
    """One JSON-RPC peer as the directory sees it (`RpcPeer`)."""

    peer_id: str | None

    @property
    def accepts_calls(self) -> bool: ...

    @property
    def user_id(self) -> str: ...

    @property
    def user(self) -> WebUser: ...

    async def notify(self, method: str, params: Mapping[str, JsonValue]) -> None: ...


@dataclass(slots=True)
class RelayedCall:
    call_id: str
    caller: RelayEnd
    callee: RelayEnd
    answer: asyncio.Future[str]

    def other(self, end: RelayEnd) -> RelayEnd:
        return self.callee if end is self.caller else self.caller


@dataclass(frozen=True, slots=True)
class Reservation:
    """A peer id none of its user's sockets holds now, kept for that user until `until` (monotonic)."""

    user_id: str
    until: float


@dataclass(slots=True)
class PeerDirectory:
    """Announced peers by peer id, each id held by one user (see the module note), and their calls."""

    holders: dict[str, list[RelayEnd]] = field(default_factory=dict)  # the latest announce last
    reserved: dict[str, Reservation] = field(default_factory=dict)
    calls: dict[str, RelayedCall] = field(default_factory=dict)

    def owner(self, peer_id: str, now: float) -> str | None:
        """The user who holds `peer_id` (announced, or reserved since its last socket closed)."""
        holders = self.holders.get(peer_id)
        if holders:
            return holders[0].user_id
        reservation = self.reserved.get(peer_id)
        if reservation is None:
            return None
        if reservation.until <= now:
            del self.reserved[peer_id]
            return None
        return reservation.user_id

    def announce(self, peer_id: str, peer: RelayEnd, now: float) -> None:
        """`peer` takes `peer_id`; PeerIdTaken when another user holds it (nothing changes then)."""
        owner = self.owner(peer_id, now)
        if owner is not None and owner != peer.user_id:
            logger.info(  # INFO: one line per refused announce, and the rate limit bounds them
                "JSON-RPC user %s announced peer id %r held by another user: refused", peer.user_id, peer_id
            )
            raise PeerIdTaken(f"peer id {peer_id!r} belongs to another user", field="peer_id")
        if peer.peer_id is not None and peer.peer_id != peer_id:
            self._release(peer.peer_id, peer, now)  # one id per socket: the previous one is given up
        self.reserved.pop(peer_id, None)
        holders = self.holders.setdefault(peer_id, [])
        if peer in holders:
            holders.remove(peer)
        holders.append(peer)
        for stale in [k for k, v in self.reserved.items() if v.until <= now]:
            del self.reserved[stale]

    def _release(self, peer_id: str, peer: RelayEnd, now: float) -> None:
        holders = self.holders.get(peer_id, [])
        if peer in holders:
            holders.remove(peer)
        if not holders:
            self.holders.pop(peer_id, None)
            self.reserved[peer_id] = Reservation(peer.user_id, now + RESERVE_SECONDS)

    def peer(self, peer_id: str) -> RelayEnd | None:
        """The socket a call to `peer_id` rings: its holder's latest announce."""
        holders = self.holders.get(peer_id)
        return holders[-1] if holders else None

    def owns(self, peer: RelayEnd, call_id: str | None) -> bool:
        call = self.calls.get(call_id) if call_id is not None else None
        return call is not None and peer in (call.caller, call.callee)

    def calls_of(self, peer: RelayEnd) -> list[str]:
        return [c.call_id for c in self.calls.values() if peer in (c.caller, c.callee)]

    async def offer(
        self,
        caller: RelayEnd,
        target_peer_id: str,
        sdp: str,
        timeout: float,
        may_call: Callable[[WebUser, WebUser], bool],
    ) -> tuple[str, str, RelayEnd]:
        """Ring the target with the caller's offer if `may_call(caller's user, callee's user)`; (call id,
        the target's answer, the target)."""
        callee = self.peer(target_peer_id)
        if callee is None or callee is caller:
            raise NotFound(f"no announced peer {target_peer_id[:128]!r}", field="target_peer_id")
        if not may_call(caller.user, callee.user):  # allow_outbound, as for every call (module note)
            logger.info(
                "JSON-RPC user %s may not call peer %r of user %s",
                caller.user_id,
                target_peer_id,
                callee.user_id,
            )
            raise Forbidden(
                f"you may not call peer {target_peer_id!r} (allow_outbound)", field="target_peer_id"
            )
        if not callee.accepts_calls:
            raise Forbidden(
                f"peer {target_peer_id!r} takes no calls (incoming_calls)", field="target_peer_id"
            )
        call = RelayedCall(
            "p-" + secrets.token_urlsafe(12), caller, callee, asyncio.get_running_loop().create_future()
        )
        self.calls[call.call_id] = call
        logger.info(
            "JSON-RPC peer %s calls peer %s: %s (relayed)", caller.peer_id, target_peer_id, call.call_id
        )
        await callee.notify("offer", {
            "call_id": call.call_id, "sdp": {"type": "offer", "sdp": sdp},
            "from_peer_id": caller.peer_id, "from": caller.user_id,
        })  # fmt: skip
        try:
            async with asyncio.timeout(timeout):
                answer = await asyncio.shield(call.answer)
        except TimeoutError:
            await self.hangup(caller, call.call_id, "no_answer")
            raise Timeout(f"peer {target_peer_id!r} did not answer in time") from None
        return call.call_id, answer, callee

    async def answer(self, callee: RelayEnd, call_id: str, sdp: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.callee is not callee:
            raise NotFound(f"no call {call_id!r} offered to this peer", field="call_id")
        if call.answer.done():
            raise ServiceError(
                "the call was answered already", code="conflict", field="call_id", http_status=409
            )
        call.answer.set_result(sdp)

    async def candidate(self, sender: RelayEnd, call_id: str, candidate: JsonValue) -> None:
        call = self.calls.get(call_id)
        if call is None or sender not in (call.caller, call.callee):
            raise NotFound(f"no call {call_id!r} of this peer", field="call_id")
        await call.other(sender).notify("ice_candidate", {"call_id": call_id, "candidate": candidate})

    async def hangup(self, sender: RelayEnd, call_id: str, reason: str = "remote_hangup") -> None:
        """`disconnect {call_id}` of either end (idempotent): the other end is told."""
        call = self.calls.pop(call_id, None)
        if call is None:
            return
        if not call.answer.done():  # turned down while ringing: the caller's offer fails
            refused = "declined" if sender is call.callee else "cancelled"
            call.answer.set_exception(ServiceError(f"the call was {refused}", code=refused, http_status=502))
            call.answer.exception()  # retrieved: the caller may have gone already
            if sender is call.caller:
                await call.callee.notify("disconnect", {"call_id": call_id, "reason": "cancelled"})
            return
        await call.other(sender).notify("disconnect", {"call_id": call_id, "reason": reason})

    async def gone(self, peer: RelayEnd, now: float) -> None:
        """A peer's socket closed: its relayed calls end, and its id is released (reserved for its user
        for `RESERVE_SECONDS` once no socket of hers holds it)."""
        if peer.peer_id is not None:
            self._release(peer.peer_id, peer, now)
        for call_id in self.calls_of(peer):
            await self.hangup(peer, call_id, "disconnected")


def may_call_peer(identity: IdentityMap) -> Callable[[WebUser, WebUser], bool]:
    """Whether a caller may call a callee's peer: a relayed call obeys `allow_outbound` as a web call
    does (gateway/runtime/web_calls.py), the callee's number or SIP address; a user's own other peers
    are always hers to call."""

    def may(caller: WebUser, callee: WebUser) -> bool:
        if caller.id == callee.id:
            return True
        number = callee.aor.user or ""
        return identity.may_call(caller, number) or identity.may_call(caller, str(callee.aor))

    return may
