"""SIP over WebSocket as a signaling dialect: JsSIP and SIP.js register and call through the one call core.

Every out-of-dialog request that arrives on a WS/WSS flow comes here (``UserAgent.web_sip``):

- REGISTER: digest (``sipcore.auth.digest_server``) against users[].sip_auth, then the registrar; the AOR
  (To) must be the user's own (user id, extension or alias), else 403.
- INVITE: digest too (401, as Asterisk does; both libraries answer 401 and 407 alike), then the
  INVITE becomes an :class:`~gateway.sip.useragent.incoming.IncomingCall` whose in-dialog requests go back over
  its flow, and the call core places the call exactly as for a JSON session: ``dial(session, to,
  offer)`` with the browser's WebRTC offer, under the same outbound policy. Call events come back as
  SIP: ``ringing`` 180, ``early_media`` 183 with the WebRTC answer, ``connected`` 200 with it,
  ``ended`` a final error status (before the answer) or BYE. From the browser: CANCEL, BYE, INFO
  (application/dtmf-relay, application/dtmf) and re-INVITE hold/resume (answered at once, our last
  answer with the direction that mirrors theirs; the PBX side is held or resumed by the call core).
  Video added or dropped mid-call, by the library's re-INVITE or the SIP side's: gateway/websip/video.py.
- OPTIONS: 200 with our capabilities; anything else out of dialog: 481 (BYE, INFO...) or 405/501, whose
  Allow (``WEB_SIP_ALLOW``) lists what a library gets answered.

One :class:`WebSipSession` per (flow, user) is the call core's session (``SessionSink``); it closes when
it has neither bindings nor calls, or when its flow closes: its calls end (BYE to the far end), unless
one is answered and its library registered, when it waits ``web_auth.reconnect_grace`` for the
library's new flow and moves there (RFC 5626, gateway/websip/flows.py).
Inbound calls: a session with a binding is in presence, so a call to its user rings it along with the
user's other sessions. It asks the call core for the WebRTC offer (``request_offer``: a SIP library
can only ring with one) and sends INVITE with it over the flow to each Contact bound there; the
browser's 200 answers the call (the others stop ringing), its 486/603/480 refuses it for this session;
when the call is answered elsewhere or cancelled, our INVITE is cancelled; BYE either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.config.schema import Config
from gateway.identity import WebUser
from gateway.identity.lookup import IdentityMap
from gateway.logs import RateLimit
from gateway.signaling.errors import BadOffer, SignalingError
from gateway.signaling.service import CallService
from gateway.signaling.ws.connection import PresenceRegistry
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.transport_ws import WsTransport
from gateway.sip.useragent.subscriptions import NotifyFront, SubscriptionClient, pbx_place
from gateway.sip.useragent.ua import ALLOW, UserAgent
from gateway.websip.credentials import SipCredentials
from gateway.websip.flows import LostFlows, identities
from gateway.websip.registrar import Binding, Flow, Registrar
from gateway.websip.sessions import WebSipSession
from gateway.websip.statuses import reason_phrase, warning_headers
from gateway.websip.subscriptions import SubscriptionRelay
from sipcore.auth.digest import Algorithm
from sipcore.auth.digest_server import DigestServer, Outcome
from sipcore.dialogs.inspection import refuse_method
from sipcore.dialogs.requests import Endpoint
from sipcore.location.routing import Address, Target
from sipcore.syntax.uri import SipURI

__all__ = ["WebSipService", "WebSipSession"]

logger = logging.getLogger(__name__)

# What a SIP library is told we handle (Allow, RFC 3261 §20.5): the UA's methods. Its REFER in a call's
# dialog transfers the call, and its NOTIFYs answer the REFER we pass on from the SIP party
# (gateway/websip/transfer.py); MESSAGE in a call's dialog is relayed both ways (sessions.py)
WEB_SIP_ALLOW = ALLOW


class WebSipService:
    """The SIP WebSocket dialect: registrar, digest, and the sessions of the browsers' SIP libraries."""

    def __init__(
        self,
        config: Config,
        ua: UserAgent,
        calls: CallService,
        identities: IdentityMap,
        transport: WsTransport,
        presence: PresenceRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        websocket = config.sip.websocket
        assert websocket is not None
        self.ua = ua
        self.calls = calls
        self.identities = identities
        self.presence = presence  # bound sessions are online: inbound calls ring them
        self.transport = transport
        self.credentials = SipCredentials.from_config(config)
        realm = websocket.realm or config.pbx.effective_domain or config.http.host
        algorithms = [Algorithm.from_token(name) for name in websocket.digest_algorithms]
        self.digest = DigestServer(
            realm, self.credentials.ha1, algorithms=[a for a in algorithms if a is not None], clock=time.time
        )
        self.registrar = Registrar(
            clock,
            min_expires=websocket.min_expires,
            max_expires=websocket.max_expires,
            max_bindings=websocket.max_bindings_per_user,
        )
        self.endpoint = Endpoint(
            transport.local[0],
            transport.local[1],
            transport.name,
            user_agent=config.sip.user_agent,
            allow=WEB_SIP_ALLOW,
        )
        self._sessions: dict[tuple[Flow, str], WebSipSession] = {}
        self._present: set[str] = set()  # sessions with a binding, in presence
        self._tasks: set[asyncio.Task[None]] = set()
        self._refusals = RateLimit()
        self._expiry: asyncio.Task[None] | None = None
        self.relay: SubscriptionRelay | None = None  # SUBSCRIBE to the PBX (attach_relay)
        self._pbx_domain = config.pbx.effective_domain
        self._config = config  # each user's own PBX for the relayed SUBSCRIBEs (pbx_place)
        self._websocket = websocket  # and their caps
        # sessions whose flow closed under answered calls, waiting for a new one (flows.py, RFC 5626)
        self.lost = LostFlows(config.web_auth.reconnect_grace, self._lost_for_good)
        # a cluster's: told the identities of a session just held, so that its browser's new flow on
        # another instance is relayed here (gateway/cluster/wiring.py, gateway/signaling/sip_ws.py)
        self.on_held: Callable[[frozenset[str]], None] | None = None

    def start(self) -> None:
        self.ua.web_sip = self.on_request
        self.transport.on_flow_closed(self._flow_closed)
        self._expiry = asyncio.get_running_loop().create_task(self._expire_loop(), name="websip-expiry")
        logger.info(
            "SIP over WebSocket: realm %r, %d user(s) with sip_auth", self.digest.realm, len(self.credentials)
        )

    def attach_relay(self, client: SubscriptionClient, front: NotifyFront, pbx_endpoint: Endpoint) -> None:
        """Relay the libraries' SUBSCRIBEs to the PBX through the lamps' subscription client."""
        hops = dict(self.ua.settings.pbx_targets)
        self.relay = SubscriptionRelay(
            self.ua, client, pbx_endpoint, self.endpoint, self._authenticate, self._pbx_domain,
            place_of=lambda user: pbx_place(self._config, user, hops),  # her own PBX (several PBXs)
            max_per_flow=self._websocket.max_subscriptions_per_flow,
            max_per_user=self._websocket.max_subscriptions_per_user,
        )  # fmt: skip
        front.takers.append(self.relay.take)

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.close()
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        for session in [*self._sessions.values(), *self.lost.drain()]:
            await self._close(session)
        self._sessions.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("SIP WebSocket task failed", exc_info=task.exception())

    # --- requests ------------------------------------------------------------------------------------
    def on_request(self, incoming: IncomingRequest) -> None:
        method = incoming.request.method
        if method == "REGISTER":
            self.spawn(self._register(incoming))
        elif method == "INVITE":
            self.spawn(self._invite(incoming))
        elif method == "SUBSCRIBE" and self.relay is not None:  # relayed to the PBX (subscriptions.py)
            self.spawn(self.relay.subscribe(incoming))
        elif method == "OPTIONS":
            ours = ", ".join(WEB_SIP_ALLOW)
            capabilities = self.ua.capabilities()
            incoming.reply(200, headers=tuple((n, ours if n == "Allow" else v) for n, v in capabilities))
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            incoming.reply(481)
        else:  # a known method we take in a dialog only (MESSAGE): 405 without it in Allow; unknown 501
            allowed = tuple(m for m in WEB_SIP_ALLOW if m != method)
            status, headers = refuse_method(method, allowed) or (405, ())
            incoming.reply(status, headers=headers)

    async def _authenticate(self, incoming: IncomingRequest) -> WebUser | None:
        """Digest (401 with challenges, 403 for wrong credentials); a client or user name that failed too
        often waits, as web logins do (the identity map's LoginThrottle): 403 with Retry-After."""
        client = incoming.source.host
        outcome = self.digest.check(incoming.request)
        username = outcome.username
        try:
            wait = await self.identities.throttle_wait(username or "", client)
        except SignalingError as exc:  # a cluster without Redis: the throttle cannot be read
            logger.warning("SIP WebSocket %s from %s refused: %s", incoming.method, incoming.source, exc)
            incoming.reply(503, "Shared State Unavailable", headers=(("Retry-After", "5"),))
            return None
        if wait > 0 and (not isinstance(outcome, Outcome) or outcome.status == 403):
            self.identities.throttled += 1
            incoming.reply(403, "Too Many Failed Attempts", headers=(("Retry-After", str(math.ceil(wait))),))
            return None
        if isinstance(outcome, Outcome):
            if outcome.status == 403:
                await self.identities.throttle_failed(username or "", client)
                if self._refusals.allow(logger, logging.WARNING):
                    logger.warning(
                        "SIP WebSocket %s from %s refused: %s (user %r)",
                        incoming.method,
                        incoming.source,
                        outcome.reason,
                        username,
                    )
            reason = "Forbidden" if outcome.status == 403 else None
            incoming.reply(outcome.status, reason, headers=outcome.headers)
            return None
        user_id = self.credentials.user_of(outcome.username)
        user = await self.identities.store.get(user_id) if user_id is not None else None
        if user is None:
            incoming.reply(403, "Forbidden")
            return None
        await self.identities.throttle_succeeded(outcome.username, client)
        self.transport.authenticated(incoming.source.address)  # the flow's deadline is over
        return user

    async def _register(self, incoming: IncomingRequest) -> None:
        user = await self._authenticate(incoming)
        if user is None:
            return
        to = incoming.request.to
        if to is None or not isinstance(to.uri, SipURI) or not _owns(user, to.uri):
            incoming.reply(403, "Not Your Address")
            return
        flow = _flow(incoming)
        result = self.registrar.register(incoming.request, user.id, flow)
        incoming.reply(result.status, result.reason, headers=result.headers)
        if result.status != 200:
            return
        bound = [b for b in self.registrar.on_flow(flow) if b.user_id == user.id]
        back = (self.lost.claim(user.id, bound) or self._left_behind(user.id, flow, bound)) if bound else None
        if back is not None:  # its browser came back on a new flow (flows.py): its calls go on there
            self._came_back(back, flow)
        if bound:
            session = await self._session(user, flow)
            session.identities = identities(bound)  # what knows the browser again on a new flow
            if session.id not in self._present:  # a binding: the user is online there (inbound rings it)
                self._present.add(session.id)
                try:
                    await self.presence.add(user.id, session.id)
                except SignalingError as exc:  # a cluster without Redis: the next REGISTER refresh retries
                    self._present.discard(session.id)
                    logger.warning("%s registered over SIP WebSocket, not yet reachable: %s", user.id, exc)
                    return
                logger.info("%s registered over SIP WebSocket from %s", user.id, incoming.source)
        # the flow(s) left without a binding: this one (unregistered), or an outbound instance's old
        # flow whose binding this REGISTER replaced (RFC 5626 §6: a browser that reconnected)
        for (other, user_id), gone in list(self._sessions.items()):
            if user_id == user.id and not any(b.user_id == user.id for b in self.registrar.on_flow(other)):
                await self._absent(gone)
                self.session_idle(gone)

    async def _invite(self, incoming: IncomingRequest) -> None:
        if incoming.cancelled:
            incoming.reply(487)
            return
        user = await self._authenticate(incoming)
        if user is None:
            return
        uri = incoming.request.uri
        target = (uri.user or str(uri)) if isinstance(uri, SipURI) else str(uri)
        flow = _flow(incoming)
        leg = self.ua.accept_invite(
            incoming, self.endpoint, Target(flow.transport, flow.address[0], flow.address[1])
        )
        if leg is None:
            return
        session = await self._session(user, flow)
        try:
            call_id = await self.calls.dial(session, target, leg.offer, transfer_of=session.referred(target))
        except SignalingError as exc:
            status = exc.http_status if isinstance(getattr(exc, "http_status", None), int) else 400
            # 429 (a per-user cap, gateway/calls/caps.py): 486 Busy Here, the reason in a Warning
            code = {403: 403, 404: 404, 429: 486, 503: 503}.get(
                status, 488 if "sdp" in str(exc).lower() else 400
            )
            code = exc.sip_status if isinstance(exc, BadOffer) else code  # 400 not SDP, 488 unusable
            logger.info("sip_call_id=%s from %s to %r refused: %s", leg.call_id, user.id, target, exc)
            leg.reject(code, reason_phrase(str(exc)), headers=warning_headers(code, str(exc)))
            self.session_idle(session)
            return
        logger.info(
            "call=%s: %s calls %r over SIP WebSocket (SIP call-id %s)", call_id, user.id, target, leg.call_id
        )
        session.adopt(call_id, leg)
        await session.follow(call_id, leg)

    # --- sessions ------------------------------------------------------------------------------------
    async def _session(self, user: WebUser, flow: Flow) -> WebSipSession:
        key = (flow, user.id)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = WebSipSession(self, user, flow)
            await self.calls.session_opened(session)
        return session

    async def _absent(self, session: WebSipSession) -> None:
        """The session has no binding left: inbound calls stop ringing it."""
        if session.id in self._present:
            self._present.discard(session.id)
            await self.presence.remove(session.user.id, session.id)

    async def _close(self, session: WebSipSession) -> None:
        await self._absent(session)
        await session.close()

    def _left_behind(self, user_id: str, flow: Flow, bound: list[Binding]) -> WebSipSession | None:
        """The session with answered calls that the browser of ``bound`` left on another flow still
        open (a network change: the old socket is not known dead yet, flows.py), taken off it."""
        known = identities(bound)
        for key, session in list(self._sessions.items()):
            if (
                key[1] == user_id
                and key[0] != flow
                and session.identities & known
                and session.answered_calls()
            ):
                return self._sessions.pop(key)
        return None

    def _came_back(self, session: WebSipSession, flow: Flow) -> None:
        old = session.flow.address
        key = (flow, session.user.id)
        if key in self._sessions:  # the library called on the new flow before registering it: rare
            self.spawn(self._close(self._sessions[key]))
        session.move_to(flow)
        self._sessions[key] = session
        session.flow_back()
        logger.info(
            "%s's SIP library is back on %s:%d (was %s:%d): %d call(s) go on",
            session.user.id,
            *flow.address,
            *old,
            len(session.answered_calls()),
        )

    def _lost_for_good(self, session: WebSipSession) -> None:
        self.spawn(self._close(session))

    def session_idle(self, session: WebSipSession) -> None:
        """Close a session with no call and no binding left."""
        if session.legs or session.ringing or session.outgoing or session.closed:
            return
        if self.lost.release(session):  # its calls ended while it waited for a new flow
            self.spawn(self._close(session))
            return
        if any(b.user_id == session.user.id for b in self.registrar.on_flow(session.flow)):
            return
        if self._sessions.get((session.flow, session.user.id)) is session:
            del self._sessions[(session.flow, session.user.id)]
            self.spawn(self._close(session))

    def _flow_closed(self, address: Address) -> None:
        for flow in {key[0] for key in self._sessions} | {Flow(self.transport.name, address)}:
            if flow.address != address:
                continue
            dropped = self.registrar.flow_closed(flow)
            if self.relay is not None:
                self.relay.flow_closed(flow)
            if dropped:
                logger.info("SIP WebSocket %s:%d closed: %d binding(s) removed", *address, len(dropped))
            for key in [k for k in self._sessions if k[0] == flow]:
                session = self._sessions.pop(key)
                if self.lost.hold(session, dropped):  # its calls wait for a new flow (flows.py)
                    session.flow_lost()
                    if self.on_held is not None:
                        self.on_held(self.lost.known_of(session))
                    self.spawn(self._absent(session))  # not rung on a closed flow meanwhile
                else:
                    self.spawn(self._close(session))

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(5)
            for binding in self.registrar.expire():
                session = self._sessions.get((binding.flow, binding.user_id))
                logger.info("binding of %s expired: %s", binding.user_id, binding.contact.uri)
                if session is not None and not any(
                    b.user_id == binding.user_id for b in self.registrar.on_flow(binding.flow)
                ):
                    await self._absent(session)
                    self.session_idle(session)

    async def session_again(self, user: WebUser, session_id: str, known: frozenset[str]) -> WebSipSession:
        """A session of a dead instance made again here under its id, with no flow yet, for the calls a
        survivor takes over (gateway/websip/takeover.py); once it carries them (`take_back`), `hold`
        keeps it waiting for the library's new flow, recognised by ``known``. Its further calls find it
        again (one session per library, as on the dead instance)."""
        again = self.lost.held(session_id) or next(
            (s for s in self._sessions.values() if s.id == session_id), None
        )  # (held, or moved to the library's flow already)
        if again is not None and again.user.id == user.id:
            return again
        nowhere = Flow(self.transport.name, ("0.0.0.0", 0))  # no flow matches it: the library's comes
        session = WebSipSession(self, user, nowhere, session_id)
        session.identities = known
        await self.calls.session_opened(session)
        return session

    def hold(self, session: WebSipSession) -> bool:
        """Keep a session made again (`session_again`) for the grace, waiting for its library's flow;
        False when it cannot wait (no grace, no answered call). A library that registered its new flow
        here already (its REGISTER came before the takeover ended) has its session moved there at once."""
        if self.lost.holds(session):
            return True  # a further call of it, waiting with it
        if self._sessions.get((session.flow, session.user.id)) is session:
            session.flow_back()  # a further call of it, on its library's flow already: its media too
            return True
        flow = self._flow_of(session)
        if flow is not None:
            self._came_back(session, flow)
            self.spawn(self._present_again(session))
            return True
        if not self.lost.hold_known(session, session.identities):
            return False
        if self.on_held is not None:  # a library's new flow on another instance is relayed here
            self.on_held(session.identities)
        return True

    def _flow_of(self, session: WebSipSession) -> Flow | None:
        """The flow on which ``session``'s browser is registered here now, if any."""
        for binding in self.registrar.bindings(session.user.id):
            if identities([binding]) & session.identities:
                return binding.flow
        return None

    async def _present_again(self, session: WebSipSession) -> None:
        if session.id not in self._present:
            self._present.add(session.id)
            with contextlib.suppress(SignalingError):  # the next REGISTER refresh tries again
                await self.presence.add(session.user.id, session.id)

    def carried(self) -> frozenset[str]:
        """What recognises the browsers whose answered calls are here (`flows.identities`): held ones
        waiting for a new flow, and those on a flow still open (a network change: their new flow may
        come before the old one is known dead)."""
        open_ones = (s.identities for s in self._sessions.values() if s.answered_calls())
        return self.lost.known().union(*open_ones)

    @property
    def sessions(self) -> int:
        """Open sessions, those waiting for a new flow included."""
        return len(self._sessions) + len(self.lost)

    def flow_busy(self, address: Address) -> bool:
        """A call in progress (ringing, or answered) on the flow from `address`: a drain keeps it open."""
        return any(
            s.legs or s.ringing or s.outgoing
            for (flow, _), s in self._sessions.items()
            if flow.address == address
        )


def _flow(incoming: IncomingRequest) -> Flow:
    return Flow(incoming.source.transport.name, incoming.source.address)


def _owns(user: WebUser, uri: SipURI) -> bool:
    names = {user.id, user.aor.user or "", *(a.split("@", 1)[0].split(":", 1)[-1] for a in user.aliases)}
    return uri.user is not None and uri.user in names
