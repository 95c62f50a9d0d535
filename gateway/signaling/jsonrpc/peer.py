"""One JSON-RPC 2.0 peer (one WebSocket at `/jsonrpc`): its methods carried out over the `CallService`, the
same call core the softphone's WebSocket protocol drives; the call's events back as notifications.

How it works: a peer authenticates at the upgrade (headers, `?api_key=` / `?token=`) or with `announce`
(`credentials`); until then only `announce` and `ping` are served (others: -32001). Its first `offer`
(or `announce`) opens its session with the call service. `offer` places a call to `to` (or
`metadata.dial`, else the credentials' default destination) and answers `{answer: {type, sdp},
call_id}` as soon as the gateway's WebRTC answer exists, before the far end picks up. Then the call is
told as notifications (`progress`, `disconnect`, `ice_candidate`, `offer`...: notifications.py).

An announced peer with `capabilities.incoming_calls: true` is online for its user: SIP calls to the user
ring it with an `offer` notification, which it takes with `answer {call_id, sdp}` or turns down with
`disconnect {call_id}`. `disconnect` without call_id ends all its calls. Closing the socket ends them
too, except answered ones of an announced peer, which wait for its new socket (resume.py); a new
socket's `announce` of the id takes them from a socket that lingers (a network change) at once; in a
cluster it is relayed to the peer's instance, or served by the survivor of a dead one (resume.py).
An `offer` with `target_peer_id` calls another announced peer instead, relayed end to end without the
call service (gateway/signaling/jsonrpc/relay.py).

In a call the controls (controls.py) act on `call_id`, or on the peer's only call; the SIP party's own
REFER comes as `transfer_requested {to}`, which the peer carries out with `offer {to, transfer_of:
call_id}`. A call relayed to a peer has no such controls (they are the peers' own): -32004 naming `call_id`.

`offer {call_id, sdp}` for one of the peer's calls is an ICE restart (issue 34: its RTCPeerConnection's
new offer after `restartIce()`, a new ice-ufrag), or from a new RTCPeerConnection new media on the same
SIP leg, or for a pass-through call the far end's answer to our re-INVITE (renew.py): `{answer, call_id}`.
An offer that restarts nothing (the same ice-ufrag) is refused (-32602 naming `sdp`). When a call's media is lost it waits
`reconnect_grace` for such an offer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast

from gateway.identity import WebUser
from gateway.signaling import events as sig
from gateway.signaling.api_auth import ApiPrincipal
from gateway.signaling.errors import (
    BadRequest,
    Conflict,
    NotFound,
    RateLimited,
    ServiceError,
    SignalingError,
    Timeout,
    Unauthorized,
)
from gateway.signaling.jsonrpc import framing as rpc
from gateway.signaling.jsonrpc.context import RpcContext
from gateway.signaling.jsonrpc.controls import control
from gateway.signaling.jsonrpc.notifications import notification_of
from gateway.signaling.jsonrpc.params import (
    Announce,
    AnswerParams,
    CandidateParams,
    ControlParams,
    DisconnectParams,
    OfferParams,
    basic_credentials,
    params_of,
)
from gateway.signaling.jsonrpc.relay import may_call_peer
from gateway.signaling.jsonrpc.renew import Renewals
from gateway.signaling.jsonrpc.resume import KEPT, Relayed, relay_elsewhere
from gateway.signaling.limits import TokenBucket
from gateway.signaling.service import JsonValue, peer_family

logger = logging.getLogger(__name__)

MAX_CALLS: Final = 4  # calls one peer may have at once
# The session loop's concurrent runner (SessionSocket.run): the work, its lane, whether it is urgent.
Run = Callable[[Callable[[], Awaitable[None]], str | None, bool], bool]


class RpcPeer:
    """A `SessionSink` for the call service, fed with WebSocket frames (see the module note)."""

    def __init__(
        self,
        context: RpcContext,
        send: Callable[[str], Awaitable[None]],
        principal: ApiPrincipal | None = None,
        remote: str = "",
        *,
        take: Callable[[], bool] = lambda: True,
        login_failed: Callable[[], None] = lambda: None,
        run: Run | None = None,
        too_many: Callable[[], SignalingError] | None = None,
        kick: Callable[[], Awaitable[None]] | None = None,
        session_id: str | None = None,
    ) -> None:
        self._context = context
        # carries its socket on to another instance, replaying the frame in hand (a cluster: resume.py
        # `relay_elsewhere`); set by its dialect per frame, only for a lone announce of a fresh peer
        self.relay: Callable[[str], Awaitable[bool | None]] | None = None
        self._send = send
        self._run = run  # the session loop's concurrent runner (None: every frame in turn)
        self._too_many = too_many
        self._kick = kick  # closes its socket (4010): a newer socket of the peer took it over
        self._take = take  # the session loop's rate limit, charged per call (a batch: each of its calls)
        self._login_failed = login_failed  # the session loop counts them (max_failed_logins: close 4001)
        self._remote = remote
        self._principal = principal
        self._id = session_id or "r-" + secrets.token_urlsafe(12)  # (given: made again, takeover.py)
        self.peer_id: str | None = None
        self._opened = False
        self._online = False
        self._closed = False
        self._answers: dict[str, asyncio.Future[str]] = {}
        self._calls: set[str] = set()
        self._answered: set[str] = set()  # of _calls, those answered (a detached peer keeps only these)
        self._kept: list[str] | None = None  # detached (resume.py): what it would have been told
        self.successor: RpcPeer | None = None  # the detached peer this socket's announce resumed
        self._renewals = Renewals()  # `offer {call_id, sdp}` waiting for a new web leg (renew.py)
        self.renews_media = True  # its calls wait for such an offer when their media is lost
        self._ringing: set[str] = set()  # inbound calls offered to this peer, not answered yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._dtmf_budget = TokenBucket(1.0, context.limits.dtmf_burst, context.monotonic)  # as /ws's

    # --- SessionSink --------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def user(self) -> WebUser:
        if self._principal is None:
            raise Unauthorized("not authenticated")
        return self._principal.user

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def api_key(self) -> str | None:
        """The id of the API key the peer authenticated with (its own caps count the peer's calls)."""
        return self._principal.key_id if self._principal is not None else None

    @property
    def authenticated(self) -> bool:
        return self._principal is not None

    def idle(self, busy: Callable[[str], bool]) -> bool:
        """No call in progress: none of the call core (`busy(id)`, ringing or not) and none relayed to
        another peer; a drain closes the socket then (gateway/signaling/ws/endpoint.py)."""
        return not self._opened or (not busy(self._id) and not self._context.directory.calls_of(self))

    @property
    def takeover_peer(self) -> str | None:  # `PeerSink`: a survivor makes it again by its id
        return self.peer_id

    # --- RelayEnd (relay.py) -------------------------------------------------------------------
    @property
    def accepts_calls(self) -> bool:
        return self._online and not self._closed

    @property
    def user_id(self) -> str:
        return self.user.id

    async def notify(self, method: str, params: Mapping[str, JsonValue]) -> None:
        if not self._closed:
            await self._notify(method, params)

    def web_answer(self, call_id: str, sdp: str) -> None:
        """The gateway's WebRTC answer to our offer, as soon as it exists (the driver's early answer)."""
        future = self._answers.get(call_id)
        if future is None:
            future = self._answers[call_id] = asyncio.get_running_loop().create_future()
        if not future.done():
            future.set_result(sdp)

    async def send_event(self, event: sig.Event) -> None:
        if self._closed:
            return
        self._renewals.heard(event)  # an `offer {call_id, sdp}` waiting for its answer (renew.py)
        match event:
            case sig.Incoming(call_id=call_id):
                self._ringing.add(call_id)
                self._spawn(self._want_offer(call_id))
                return
            case sig.Offer(call_id=call_id) if call_id not in self._ringing:
                return
            case sig.Connected(call_id=call_id, sdp=sdp) | sig.EarlyMedia(call_id=call_id, sdp=sdp):
                if isinstance(event, sig.Connected):
                    self._answered.add(call_id)
                if sdp is not None and call_id in self._answers:
                    self.web_answer(call_id, sdp)  # a pass-through route: the far end's own answer
            case sig.Ended(call_id=call_id, reason=reason, message=message, sip_status=status):
                self._ended(call_id, reason, message, status)
        told = notification_of(event)
        if told is not None:
            await self._notify(*told)
        else:
            logger.debug("JSON-RPC peer %s: %s not told", self._id, type(event).__name__)
        if self._kept is not None and not self._calls:  # its last call ended while it was away
            await self.finish()

    def _ended(self, call_id: str, reason: str, message: str, status: int | None) -> None:
        self._calls.discard(call_id)
        self._answered.discard(call_id)
        self._ringing.discard(call_id)
        future = self._answers.pop(call_id, None)
        if future is not None and not future.done():
            detail = f"{message} (SIP {status})" if status is not None else message
            future.set_exception(ServiceError(detail or reason, code=reason, http_status=502))

    async def _want_offer(self, call_id: str) -> None:
        """An inbound call rings: ask for the gateway's offer (it comes as `offer`), others ring on."""
        try:
            await self._context.calls.request_offer(self, call_id)
        except SignalingError as exc:
            logger.info("JSON-RPC peer %s: no offer for %s: %s", self._id, call_id, exc)
            self._ringing.discard(call_id)

    # --- frames in -----------------------------------------------------------------------------------
    async def refuse(self, error: SignalingError, rpc_id: rpc.RpcId = None) -> None:
        """A frame the session loop did not hand over (too large, rate limited): its error, with the id
        of the request refused (``rpc_id``, null when unknown: §5)."""
        await self._send(rpc.encode(rpc.error_from(error, rpc_id).to_json()))

    async def receive(self, text: str | bytes) -> None:
        """One WebSocket frame (already within the size limit: the session loop checked it): its
        requests handled in order, the replies sent as one frame. A single request of an authenticated
        peer runs beside the others in flight instead (`framing.lane_of`; a batch stays one unit, in order)."""
        frame = rpc.decode(text)
        if self._run is not None and self.authenticated and not frame.batch and len(frame.calls) == 1:
            call = frame.calls[0]
            beside, lane = rpc.lane_of(call)
            if beside:
                await self._run_call(call, lane)
                return
        replies = rpc.Replies(frame.batch)
        for error in frame.errors:
            replies.add(error.to_json())
        for call in frame.calls:
            reply = await self._handle(call)
            if reply is not None and not call.notification:
                replies.add(reply)
        encoded = replies.encoded()
        if encoded is not None:
            await self._send(encoded)

    async def _run_call(self, call: rpc.Call, lane: str | None) -> None:
        """One request handed to the session loop's runner; its response sent when it is done."""

        async def work() -> None:
            reply = await self._handle(call)
            if reply is not None and not call.notification:
                await self._send(rpc.encode(reply))

        assert self._run is not None
        if not self._run(work, lane, call.method in rpc.URGENT) and not call.notification:
            error = self._too_many() if self._too_many is not None else RateLimited("too many requests")
            await self._send(rpc.encode(rpc.error_from(error, call.id).to_json()))

    async def _handle(self, call: rpc.Call) -> dict[str, JsonValue] | None:
        if call.method not in rpc.METHODS:
            return rpc.RpcError(
                rpc.METHOD_NOT_FOUND, f"Method not found: {call.method[:40]}", call.id
            ).to_json()
        try:
            if not self._take():  # `max_rate_limited` refusals in a row close the socket (1008)
                raise RateLimited("too many messages: slow down")
            value = await self._method(call.method, params_of(call.method, call.params))
        except Relayed:
            return None  # the instance it was carried on to answers
        except SignalingError as exc:
            return rpc.error_from(exc, call.id).to_json()
        except Exception:
            logger.exception("JSON-RPC peer %s: %s failed", self._id, call.method)
            return rpc.RpcError(rpc.INTERNAL_ERROR, "Internal error", call.id).to_json()
        return rpc.result(call.id, value)

    async def _method(self, method: str, params: Any) -> JsonValue:
        match params:
            case Announce():
                return await self._announce(params)
            case None:
                return {"pong": True}
        if self._principal is None:
            raise Unauthorized("authenticate first: announce with credentials, or credentials at the upgrade")
        await self._open()
        match params:
            case OfferParams():
                return await self._offer(params)
            case AnswerParams(call_id=call_id, sdp=sdp) if self._context.directory.owns(self, call_id):
                await self._context.directory.answer(self, call_id, sdp)
                return {"call_id": call_id, "status": "answered"}
            case CandidateParams(call_id=call_id, candidate=candidate) if self._context.directory.owns(
                self, call_id
            ):
                assert call_id is not None
                value = cast(JsonValue, candidate.to_json()) if candidate is not None else None
                await self._context.directory.candidate(self, call_id, value)
                return {"call_id": call_id, "status": "received"}
            case AnswerParams(call_id=call_id, sdp=sdp):
                if call_id not in self._ringing:
                    raise NotFound(f"no call {call_id!r} offered to this peer", field="call_id")
                await self._context.calls.answer(self, call_id, sdp)
                self._ringing.discard(call_id)
                self._calls.add(call_id)
                self._answered.add(call_id)
                return {"call_id": call_id, "status": "answered"}
            case CandidateParams(call_id=call_id, candidate=candidate):
                target = self._call_of(call_id)
                await self._context.calls.add_candidate(self, target, candidate)
                return {"call_id": target, "status": "received"}
            case DisconnectParams(call_id=call_id, reason=reason):
                return await self._disconnect(call_id, reason)
            case ControlParams():
                return await self._control(params)
        raise BadRequest(f"unknown method {method!r}", field="method")

    def _call_of(self, call_id: str | None, name: str = "call_id") -> str:
        if call_id is not None:
            if call_id not in self._calls and call_id not in self._ringing:
                raise NotFound(f"no call {call_id!r} of this peer", field=name)
            return call_id
        if len(self._calls) != 1:
            raise BadRequest("call_id is required when the peer has no or several calls", field="call_id")
        return next(iter(self._calls))

    def _gateway_call(self, call_id: str | None, action: str, name: str = "call_id") -> str:
        """The peer's call a control acts on; one relayed to another peer has no SIP party to hold, send
        digits to, transfer or chat with (its peers do that between themselves), and is refused."""
        if self._context.directory.owns(self, call_id):
            raise Conflict(
                f"call {call_id!r} is relayed peer to peer, not the gateway's: no {action} there", field=name
            )
        return self._call_of(call_id, name)

    async def _control(self, params: ControlParams) -> JsonValue:
        """`hold`, `resume`, `dtmf`, `transfer`, `message`, `merge`, `split`, `record` (controls.py)."""
        action = params.action
        call_id = self._gateway_call(params.call_id, action, "call_ids" if action == "merge" else "call_id")
        other = (
            params.other
            if action in ("merge", "split")
            else params.replaces
            if action == "transfer"
            else None
        )
        if other:
            other = self._gateway_call(other, action, "call_ids" if action != "transfer" else "replaces")
        limits = self._context.limits
        return await control(
            self._context.calls, self, params, call_id, other, self._dtmf_budget, limits.dtmf_burst
        )

    async def _announce(self, params: Announce) -> JsonValue:
        context = self._context
        if params.credentials is not None:
            if self._principal is not None:
                raise Conflict("already authenticated", field="credentials")
            c = params.credentials
            try:
                if c.user is not None and c.secret is not None:
                    value = "Basic " + basic_credentials(c.user, c.secret)
                    self._principal = await context.credentials.authenticate(value, None, self._remote)
                else:
                    bearer = f"Bearer {c.token}" if c.token is not None else None
                    self._principal = await context.credentials.authenticate(bearer, c.api_key, self._remote)
            except Unauthorized:
                self._login_failed()
                raise
        if self._principal is None:
            raise Unauthorized("announce needs credentials (api_key, token, or user and secret)")
        for old in list(context.directory.holders.get(params.peer_id, [])):  # lingering sockets (resume.py)
            if isinstance(old, RpcPeer) and old is not self and old.user_id == self.user.id and old.busy:
                await old.abandon()
        detached = context.detached.claim(self.user.id, params.peer_id)
        if detached is None and context.relay_to is not None and self.relay is not None:
            await relay_elsewhere(peer_family(self.user.id, params.peer_id), context.relay_to, self.relay)
            detached = context.detached.claim(self.user.id, params.peer_id)  # taken over here meanwhile
        if isinstance(detached, RpcPeer):  # its socket went with calls up: this one takes it over
            return await detached.resume(self, params)
        return await self._announced(params)

    async def _announced(self, params: Announce) -> dict[str, JsonValue]:
        context = self._context
        context.directory.announce(params.peer_id, self, context.monotonic())  # may refuse: -32008
        self.peer_id = params.peer_id
        await self._open()
        capabilities = params.capabilities if isinstance(params.capabilities, Mapping) else {}
        if capabilities.get("incoming_calls") is True and not self._online:
            await context.presence.add(self.user.id, self._id)
            self._online = True
        logger.info("JSON-RPC peer %s announced as %r by %s", self._id, params.peer_id, self.user.id)
        return {
            "peer_id": params.peer_id,
            "session_id": self._id,
            "user": self.user.id,
            "incoming_calls": self._online,
            "ice_servers": [cast(JsonValue, s.to_json()) for s in context.ice_servers.for_user(self.user.id)],
        }

    async def resume(self, socket: RpcPeer, params: Announce) -> JsonValue:
        """This detached peer taken over by ``socket``'s, whose `announce` named its id (resume.py): its
        sending, limits and credentials; its dialect hands frames here (`successor`), then `flush`."""
        self._send, self._run, self._too_many = socket._send, socket._run, socket._too_many
        self._take, self._login_failed, self._remote = socket._take, socket._login_failed, socket._remote
        self._principal, self._kick = socket._principal, socket._kick
        try:
            result = await self._announced(params)
        except SignalingError:
            self._context.detached.hold(self)  # not taken after all (the id changed hands): waits on
            raise
        socket.successor = self
        logger.info("JSON-RPC peer %s resumed as %r: %d call(s)", self._id, params.peer_id, len(self._calls))
        call_ids: list[JsonValue] = [*sorted(self._calls)]
        return {**result, "resumed": True, "call_ids": call_ids}

    @property
    def fresh(self) -> bool:
        """Neither announced nor with a session yet: its socket may still be relayed (endpoint.py)."""
        return not self._opened and self.peer_id is None

    async def take_over_call(self, peer_id: str, call_id: str) -> None:
        """A call of this peer's carried on here after its instance died (takeover.py). The peer made
        again for it waits with it for its client (detached); one made already and resumed since (its
        second call) tells its client: `progress {call_id, event: taken_over}` (renew its media)."""
        self._calls.add(call_id)
        self._answered.add(call_id)
        if self._opened:  # (a detached one's client finds it among its resume's `call_ids`)
            if self._kept is None:
                await self._notify("progress", {"call_id": call_id, "event": "taken_over"})
            return
        self.peer_id, self._kept = peer_id, []
        await self._open()
        self._context.detached.hold(self)

    def forget_call(self, call_id: str) -> None:
        """`PeerSink`: the call goes on at another instance (a drain handed it over): not ours to wait for."""
        self._calls.discard(call_id)
        self._answered.discard(call_id)

    @property
    def busy(self) -> bool:
        return bool(self._calls & self._answered)

    async def abandon(self) -> None:
        """Its socket is taken over by a newer one of the same peer: detached, then that socket closed."""
        await self.close()
        if self._kick is not None:
            await self._kick()

    def sends_with(self, send: Callable[[str], Awaitable[None]]) -> bool:
        return self._send is send

    async def flush(self) -> None:
        """Send what this peer was not told while detached (after `resume`'s result)."""
        kept, self._kept = self._kept or [], None
        for text in kept:
            await self._send(text)

    async def _open(self) -> None:
        if not self._opened:
            self._opened = True
            await self._context.calls.session_opened(self)

    async def _offer(self, params: OfferParams) -> JsonValue:
        principal = self._principal
        assert principal is not None  # _method checked it
        if params.call_id is not None:
            return await self._restart(params.call_id, params.sdp)
        if params.target_peer_id is not None:  # another announced peer: relayed end to end
            if len(self._calls) + len(self._context.directory.calls_of(self)) >= MAX_CALLS:
                raise Conflict(f"at most {MAX_CALLS} calls per peer", field="target_peer_id")
            timeout = self._context.limits.service_timeout
            call_id, answer, callee = await self._context.directory.offer(
                self,
                params.target_peer_id,
                params.sdp,
                timeout,
                may_call_peer(self._context.credentials.identity),
            )
            answered_by: JsonValue = {"peer_id": params.target_peer_id, "user": callee.user_id}
            return {
                "answer": {"type": "answer", "sdp": answer},
                "call_id": call_id,
                "answered_by": answered_by,
            }
        to = params.to or principal.default_dial
        if not to:
            raise BadRequest("to is required (no default destination is configured for you)", field="to")
        if len(self._calls) + len(self._answers) >= MAX_CALLS:
            raise Conflict(f"at most {MAX_CALLS} calls per peer", field="to")
        call_id = await self._context.calls.dial(self, to, params.sdp, (), params.transfer_of)
        self._calls.add(call_id)
        future = self._answers.get(call_id)
        if future is None:
            future = self._answers[call_id] = asyncio.get_running_loop().create_future()
        try:
            # Awaited directly, not through asyncio.shield, as the HTTP offer API's handler: shield's
            # outer future woke this request one loop iteration late, behind the web leg's ICE start and
            # other calls' work (issue 14 goal 3). A timeout or a closed socket cancels the future,
            # popped below (the call is hung up or closed with the socket).
            async with asyncio.timeout(self._context.limits.service_timeout):
                answer = await future
        except TimeoutError:
            await self._hangup(call_id)
            raise Timeout("no answer from the call layer in time") from None
        finally:
            self._answers.pop(call_id, None)
        logger.info("JSON-RPC peer %s: call %s to %r answered", self._id, call_id, to)
        return {"answer": {"type": "answer", "sdp": answer}, "call_id": call_id}

    async def _restart(self, call_id: str, sdp: str) -> JsonValue:
        """`offer {call_id, sdp}`: ICE restarted in place, or new media for the call (renew.py)."""
        target = self._gateway_call(call_id, "ICE restart")
        answer = await self._renewals.offer(self._context.calls, self, target, sdp)
        logger.info("JSON-RPC peer %s: call %s has its media again", self._id, target)
        return {"answer": {"type": "answer", "sdp": answer}, "call_id": target}

    async def _disconnect(self, call_id: str | None, reason: str | None) -> JsonValue:
        directory = self._context.directory
        if directory.owns(self, call_id):
            assert call_id is not None
            await directory.hangup(self, call_id)
            return {"call_ids": [call_id], "status": "disconnected"}
        relayed = directory.calls_of(self) if call_id is None else []
        for relayed_id in relayed:
            await directory.hangup(self, relayed_id)
        targets = [self._call_of(call_id)] if call_id is not None else sorted(self._calls | self._ringing)
        for target in targets:
            await self._hangup(target)
        logger.info("JSON-RPC peer %s disconnect %s: %s", self._id, targets + relayed, reason or "-")
        return {"call_ids": [*targets, *relayed], "status": "disconnected"}

    async def _hangup(self, call_id: str) -> None:
        try:
            if call_id in self._ringing:
                await self._context.calls.reject(self, call_id, 603)
            else:
                await self._context.calls.hangup(self, call_id)
        except NotFound:
            pass  # ended meanwhile
        self._calls.discard(call_id)
        self._ringing.discard(call_id)

    # --- out -------------------------------------------------------------------------------------------
    async def _notify(self, method: str, params: Mapping[str, JsonValue]) -> None:
        text = rpc.encode(rpc.notification(method, params))
        if self._kept is None:
            await self._send(text)
        else:  # detached: told when it resumes
            self._kept = [*self._kept[-(KEPT - 1) :], text]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """The socket ended: its calls end (session_closed), it leaves presence; idempotent. With
        answered calls and an announced id it is detached instead (resume.py): they go on meanwhile."""
        if self._closed or self._context.detached.holds(self):
            return
        detach = self._opened and self.busy and self._context.detached.hold(self)
        self._closed, self._kept = not detach, (self._kept or []) if detach else None
        for task in list(self._tasks):
            task.cancel()
        for future in self._answers.values():
            future.cancel()
        await self._context.directory.gone(self, self._context.monotonic())
        if self._online and self._principal is not None:
            self._online = False
            await self._context.presence.remove(self._principal.user.id, self._id)
        if detach:
            for call_id in sorted((self._calls - self._answered) | self._ringing):
                await self._hangup(call_id)  # not answered: the page cannot take these back
            return
        await self._closed_calls()

    async def finish(self) -> None:
        """A detached peer closes for good (its grace ran out, its calls ended, the gateway stops)."""
        if self._closed:
            return
        self._closed = True
        self._kept = None
        self._context.detached.release(self)
        await self._closed_calls()

    async def _closed_calls(self) -> None:
        if self._opened:
            try:
                await self._context.calls.session_closed(self)
            except Exception:
                logger.exception("JSON-RPC peer %s: session_closed failed", self._id)

    def __repr__(self) -> str:
        return f"RpcPeer({self._id!r}, peer_id={self.peer_id!r})"
