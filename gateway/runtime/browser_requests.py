"""`BrowserRequests`: the driver's `CallService` (gateway/signaling/service.py): what browsers ask.

Each request of a session (WebSocket JSON, JSON-RPC, SIP over WebSocket, a room's party) becomes a
call event fed to the call's runtime, and the machine's refusal a signaling error: dial (checked
against the dial policy, a web user of ours routed through our own listener), answer, reject,
hang up, hold, DTMF, INFO, chat, transfer, trickled candidates, and a session's opening, closing and
reattaching (runtime/continuity/reconnect.py). This module imports what `DriverCore` does and builds on it.
"""

from __future__ import annotations

import contextlib
import logging

import sdp
from gateway.calls import (
    CallError,
    InvalidValue,
    custom_headers,
)
from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.caps import CallLimitReached
from gateway.calls.reasons import EndReason, reject_kind
from gateway.calls.setup.outbound import allowed_target
from gateway.calls.setup.pbx_route import dial_domain
from gateway.calls.states import CallDirection
from gateway.config.routes import MediaMode, media_mode
from gateway.config.values import WebCalls
from gateway.identity import WebUser
from gateway.identity.model import SipIdentity
from gateway.media.bridge_settings import web_certificate
from gateway.media.errors import MediaError
from gateway.media.webrtc.offer_check import check_web_offer
from gateway.ops import logctx
from gateway.runtime.driver_core import DriverCore
from gateway.runtime.merge import ThreeWayCalls
from gateway.runtime.messages import MAX_MESSAGE_BYTES
from gateway.runtime.recordings import parse_action
from gateway.runtime.web_calls import WebCallRefused, room_route, web_route
from gateway.signaling.errors import BadOffer, BadRequest, Conflict, Forbidden, NotFound, ServiceError
from gateway.signaling.events import Answer, Calls, PbxState, SipRegistration
from gateway.signaling.service import KeyedSink, SessionSink
from sipcore.errors import SIPError
from sipcore.syntax.headers import new_call_id

logger = logging.getLogger(__name__)


class BrowserRequests(DriverCore):
    """The browser sessions' requests (see the module note)."""

    three_way: ThreeWayCalls  # set by CallDriver

    async def session_opened(self, session: SessionSink) -> None:
        self._sessions[session.id] = session
        logger.info("session %s of %s opened", session.id, session.user.id)
        state = self.pbx_states.get(session.user.pbx)  # her own PBX's (several PBXs, config/pbxs.py)
        if state is not None:
            await session.send_event(PbxState(state))
        aor = session.user.aor.aor
        if aor in self.registrations:  # the user's SIP identity is registered by the gateway
            await session.send_event(
                SipRegistration(aor, self.registrations[aor], self.registration_reasons.get(aor, ""))
            )
        for event in self.user_states(session.user.id):  # busy lamps, voicemail (runtime/lamps/)
            await session.send_event(event)
        for other in self.reconnects.lingering(session, self._sessions.values()):  # a network change
            logger.info(
                "session %s of %s replaced by %s: its calls wait for it",
                other.id,
                session.user.id,
                session.id,
            )
            await other.replaced()
        waiting = self.reconnects.waiting(session)  # calls of this login whose browser went: `reattach`
        if waiting:
            await session.send_event(Calls(waiting))

    async def session_closed(self, session: SessionSink) -> None:
        """Each call of the session hears WebDisconnected in its own task (as registry.session_closed)."""
        for call_id in self.registry.calls_of(session.id):
            runtime = self._runtimes.get(call_id)
            if runtime is None:
                continue
            try:
                await runtime.feed(self.reconnects.leaving(session, call_id, runtime))
            except CallError as exc:
                logger.info("call=%s disconnect of %s: %s", call_id, session.id, exc)
        for call_id in self.reconnects.abandoned(session):  # a logout: its login's waiting calls end
            machine = self.registry.get(call_id) if call_id in self.registry else None
            runtime = self._runtimes.get(call_id)
            if machine is not None and machine.session_id is not None and runtime is not None:
                with contextlib.suppress(CallError):
                    await runtime.feed(ev.WebDisconnected(machine.session_id))
        self._sessions.pop(session.id, None)
        logger.info("session %s of %s closed", session.id, session.user.id)

    async def reattach(self, session: SessionSink, call_id: str, sdp: str | None) -> None:
        """`reattach`: a call of the session's login whose browser went, or its own call's new media."""
        self._runtime(call_id)
        # a pass-through call's offer goes to its far end (gateway/calls/connected/reconnect.py)
        passthrough = self.passthrough(call_id)
        if sdp is not None:
            await self._check_web_offer(sdp, passthrough=passthrough)
        elif self.end_to_end(call_id):
            passthrough = True
        elif not self._web_leg_kept(call_id):  # (its media is the gateway's: a new web leg needs an offer)
            raise BadRequest(
                "sdp is required: this call's media goes through the gateway and its web leg is gone",
                field="sdp",
            )
        self.reconnects.claim(session, call_id)
        await self._feed(call_id, ev.WebReattach(session.id, sdp, passthrough))
        self.reconnects.reattached(call_id)

    def _web_leg_kept(self, call_id: str) -> bool:
        """Whether call `call_id` lost only its session, its web leg still up here (away): a reattach may
        take it back without an offer, its audio never stopped."""
        machine = self.registry.get(call_id) if call_id in self.registry else None
        return machine is not None and machine.away

    async def dial(
        self,
        session: SessionSink,
        to: str,
        sdp: str,
        headers: tuple[tuple[str, str], ...] = (),
        transfer_of: str | None = None,
    ) -> str:
        if not self._accepting:
            raise ServiceError("the gateway is shutting down", code="unavailable", http_status=503)
        if transfer_of is not None and not self.owns_call(session, transfer_of):
            raise NotFound(f"no call {transfer_of!r} for this session", field="transfer_of")
        try:
            chosen = custom_headers(dict(headers), self._pass_headers)
        except CallError as exc:
            raise BadRequest(str(exc), field="headers") from None
        if not sdp.strip():
            raise BadRequest("the call needs an offer (SDP)", field="sdp")
        referring = self.registry.get(transfer_of) if transfer_of is not None else None
        replaces, own = referring.transfer_in_replaces if referring is not None else ("", False)
        if replaces:  # the REFER was an attended transfer: the INVITE replaces the consultation (RFC 3891)
            chosen = (*chosen, ("Replaces", replaces))
        if self.room_guard is not None and not own:  # a room's number: the user must be let into that room
            self.room_guard(session.user, to)
        # a Replaces naming a call of ours: to the Refer-To URI at our own listener, as a web call goes
        route = referring.transfer_in if own and referring is not None else None
        room = None if own else await self._room_route(session.user, to)  # a room's number: its mix
        route = route or room or await self._web_route(session.user, to)
        target = route or allowed_target(session.user, to, dial_domain(self.registry.settings, session.user))
        passthrough = (route is not None and room is None and self._web_calls is WebCalls.P2P) or (
            isinstance(target, str) and media_mode(self.routes, target) is MediaMode.PASSTHROUGH
        )
        await self._check_web_offer(sdp, passthrough=passthrough)
        # the call's tasks log with its ids (gateway/ops/logctx.py): its SIP Call-ID, chosen now for its
        # INVITE, from the first line on
        sip_call_id, context = new_call_id(), logctx.CallContext()
        logctx.add_sip_call_id(context, sip_call_id)  # indexed: the UA's own lines name the Call-ID
        with logctx.bind_call(context):
            try:
                key = session.api_key if isinstance(session, KeyedSink) else None
                grace = self.dial_grace(session)
                dial = ev.WebDial(
                    session.id, session.user, to, sdp, chosen, route=route, api_key=key, grace=grace
                )
                call_id, commands = self.registry.dial(dial)
            except CallLimitReached as exc:  # before any SIP or port: HTTP 429, an `error`, SIP 486
                logger.info("call to %r of %s refused: %s", to, session.user.id, exc)
                raise ServiceError(str(exc), code=exc.limit, http_status=429) from None
            except CallError as exc:
                raise BadRequest(str(exc), field="to") from None
            if call_id not in self.registry:  # refused at once by policy: no SIP at all
                error = next((c for c in commands if isinstance(c, cmd.NotifyError)), None)
                message = error.message if error is not None else "the call was refused"
                if error is not None and error.code == "destination_not_allowed":
                    raise Forbidden(message, field="to")
                raise BadRequest(message, field="to", code=error.code if error is not None else None)
            if self.web_trace is not None:  # the browser's offer, in the call's trace (gateway/ops)
                self.web_trace(call_id, "in", dial, session)
            runtime = self.start_runtime(call_id, CallDirection.OUTBOUND, commands, sip_call_id)
        runtime.transfer_of = transfer_of  # the call a REFER asked for: its progress goes to the referrer
        return call_id

    def dial_grace(self, session: SessionSink) -> float | None:
        """How long a call of ``session``'s waits for lost media when its dialect has a grace of its own
        (HttpOffers: the HTTP API's); None: web_auth.reconnect_grace."""
        return None

    def owns_call(self, session: SessionSink, call_id: str) -> bool:
        """Whether call `call_id` is one of `session`'s (a transfer's other call must be: `transfer_of`,
        `replaces`; HttpOffers widens it to the user's other HTTP sessions)."""
        return call_id in self.registry and session.id in self.registry.get(call_id).sessions

    async def _check_web_offer(self, offer: str, *, passthrough: bool) -> None:
        """A browser's offer (a dial's, a re-offer's) checked in full before anything is dialled or sent
        (issue 32): what the web leg will do with it, aiortc's parse and answer included
        (gateway/media/webrtc/offer_check.py). A pass-through call's offer goes to the far end as it is:
        parsed only."""
        try:
            if passthrough:
                sdp.parse(offer)
                return
            settings = self._bridge_settings("-")
            await check_web_offer(
                offer,
                settings.web_codecs,
                video=bool(settings.video_codecs),
                data_channel=settings.data_channel,
                certificate=web_certificate(settings.dtls_certificates),
            )
        except sdp.SdpError as exc:
            logger.info("browser offer refused: %s", exc)
            named = f" ({exc.field})" if exc.field else ""
            status = 400 if exc.sip_status == 400 else 488
            raise BadOffer(f"invalid SDP{named}: {exc}", sip_status=status) from None

    async def _room_route(self, user: WebUser, to: str) -> str | None:
        """A room's number (`rooms.numbers`) the user's outbound policy lets her dial: the room at our own
        listener (runtime/web_calls.py `room_route`), where the call joins the room's mix; in a cluster the
        instance the room lives on, tagged (never redirected on); else None."""
        if not self.room_numbers or self._ua is None:
            return None
        route = room_route(self._ua, self.room_numbers, to)
        allowed = allowed_target(user, to, dial_domain(self.registry.settings, user))
        if route is None or not isinstance(allowed, str):
            return None
        if self.room_redirect is not None:
            home = await self.room_redirect(route)
            return home if home is not None else route + self.cluster_route_tag
        return route

    async def _web_route(self, caller: WebUser, to: str) -> str | None:
        """A web user of ours whom `to` names: her Request-URI through our own SIP listener (None: the
        usual way, through the PBX; gateway/runtime/web_calls.py)."""
        if self._web_calls is WebCalls.PBX or self._ua is None:
            return None
        try:
            return await web_route(
                self.identity,
                self._ua,
                caller,
                to,
                pbx=self._has_pbx,
                elsewhere=self.cluster_web_route,
                tag=self.cluster_route_tag,
            )
        except WebCallRefused as exc:
            if exc.forbidden:
                raise Forbidden(str(exc), field="to") from None
            raise BadRequest(str(exc), field="to", code="bad_destination") from None

    async def answer(self, session: SessionSink, call_id: str, sdp: str | None) -> None:
        """Without `sdp`: accept the ringing call (the gateway's offer follows as `offer`); with it:
        the browser's answer to that offer."""
        if sdp is None:
            await self._feed(call_id, ev.WebAccept(session.id))
        else:
            await self._feed(call_id, ev.WebSdpAnswer(session.id, sdp))

    async def request_offer(self, session: SessionSink, call_id: str) -> None:
        """A ringing session that needs the gateway's offer to ring (a SIP library); it comes as `offer`,
        and `answer(sdp=...)` with the browser's answer takes the call."""
        await self._feed(call_id, ev.WebOfferWanted(session.id))

    async def reject(self, session: SessionSink, call_id: str, status: int) -> None:
        await self._feed(call_id, ev.WebReject(session.id, reject_kind(status)))

    async def cancel(self, session: SessionSink, call_id: str) -> None:
        await self._feed(call_id, ev.WebHangup(session.id))

    async def hangup(self, session: SessionSink, call_id: str) -> None:
        """`hangup`: the session's call, or a call of its login waiting for a browser (the page hung it
        up while its socket was down, webrtc-client.js): that call is not taken back, it ends."""
        if self.reconnects.waits_for(session, call_id):
            logger.info("call=%s hung up by session %s of its login", call_id, session.id)
            await self._feed(call_id, ev.WebHangup(session.id, of_login=True))
            return
        await self._feed(call_id, ev.WebHangup(session.id))

    async def reoffer(self, session: SessionSink, call_id: str, sdp: str) -> None:
        """`offer` mid-call: the browser's own new offer. One that restarts ICE is answered at once, as
        `answer` (restart_web_ice); any other (video added or dropped) goes to the SIP side first
        (escalation.py)."""
        restarted = await self.restart_web_ice(session, call_id, sdp)  # an unknown call: NotFound
        if restarted is not None:
            await session.send_event(Answer(call_id, restarted))
            return
        await self._check_web_offer(sdp, passthrough=self.passthrough(call_id))
        await self._feed(call_id, ev.WebReoffer(session.id, sdp))

    async def restart_web_ice(self, session: SessionSink, call_id: str, offer: str) -> str | None:
        """The browser's new offer for its call restarts ICE (a new ice-ufrag, RFC 8839 §4.4.1.1.1):
        restarted in place on the web leg (same DTLS, the SIP side untouched), the answer returned. None
        when the offer keeps the ICE session, or the media is not the gateway's (pass-through). A changed
        DTLS fingerprint is `bad_request` (a new association: `reattach`); a web leg that cannot restart
        now (not connected, lost) `conflict` with code `ice_restart`."""
        runtime = self._runtime(call_id)
        if not self.owns_call(session, call_id):
            raise NotFound(f"no call {call_id!r} for this session", field="call_id")
        bridge = runtime.bridge
        if bridge is None or bridge.passes_through:
            return None
        if self.registry.get(call_id).web_lost:  # its web leg was given up: only new media brings it back
            raise Conflict(
                "ICE restart refused: the call's web media was given up", field="sdp", code="ice_restart"
            )
        try:
            return await bridge.restart_from_web(offer)
        except sdp.SdpError as exc:
            raise BadOffer(f"ICE restart refused: {exc}") from None
        except MediaError as exc:
            logger.info("call=%s ICE restart refused: %s", call_id, exc)
            raise Conflict(f"ICE restart refused: {exc}", field="sdp", code="ice_restart") from None

    def web_media_lost(self, session: SessionSink, call_id: str) -> bool:
        """Whether the session's call ``call_id`` waits for new web media (`WebRenewalService`): its web
        leg was lost, or its instance died and it was taken over here with its session (a SIP library's:
        runtime/continuity/takeover.py). NotFound for a call not the session's."""
        self._runtime(call_id)
        if not self.owns_call(session, call_id):
            raise NotFound(f"no call {call_id!r} for this session", field="call_id")
        return self.registry.get(call_id).web_lost

    async def hold(self, session: SessionSink, call_id: str) -> None:
        self._not_merged(call_id)
        await self._feed(call_id, ev.WebHold(session.id))

    async def resume(self, session: SessionSink, call_id: str) -> None:
        self._not_merged(call_id)
        await self._feed(call_id, ev.WebResume(session.id))

    def _not_merged(self, call_id: str) -> None:
        if self.three_way.hold_locked(call_id):
            raise Conflict(f"call {call_id!r} is in a conference: split it off first", field="call_id")

    async def merge(self, session: SessionSink, call_ids: list[str]) -> str:
        """Three-way calls (`MergeService`, gateway/runtime/merge/three_way.py)."""
        return await self.three_way.merge(session, call_ids)

    async def split(self, session: SessionSink, call_id: str) -> None:
        await self.three_way.split(session, call_id)

    async def record(self, session: SessionSink, call_id: str, action: str) -> dict[str, object]:
        """`record`: the session's own call only (gateway/runtime/recordings.py)."""
        if not self.owns_call(session, call_id):
            raise NotFound(f"no call {call_id!r} for this session", field="call_id")
        return self.recordings.control(call_id, parse_action(action))

    async def dtmf(self, session: SessionSink, call_id: str, digits: str, duration_ms: int | None) -> None:
        await self._feed(call_id, ev.WebDtmf(session.id, digits, duration_ms))

    async def info(self, session: SessionSink, call_id: str, content_type: str, body: str) -> None:
        if content_type not in self._info_types:
            allowed = ", ".join(sorted(self._info_types)) or "none"
            raise BadRequest(
                f"content_type {content_type!r} is not in sip.info_content_types ({allowed})",
                field="content_type",
            )
        await self._feed(call_id, ev.WebInfo(session.id, content_type, body))

    async def call_message(self, session: SessionSink, call_id: str, body: str) -> None:
        """Chat in call `call_id`: SIP MESSAGE in its dialog (gateway/calls/connected/chat.py)."""
        try:
            event = ev.WebMessage(body, session.id)
        except InvalidValue as exc:
            raise BadRequest(str(exc), field="body") from None
        await self._feed(call_id, event)

    async def message(self, session: SessionSink, to: str, body: str) -> int:
        """MESSAGE to `to` (RFC 3428), checked as a call to `to` would be; the final SIP status."""
        user = session.user
        target = allowed_target(user, to, dial_domain(self.registry.settings, user))  # her PBX's domain
        if isinstance(target, tuple):
            code, text = target
            if code is EndReason.DESTINATION_NOT_ALLOWED:
                raise Forbidden(f"You may not send messages to {to.strip()}", field="to")
            raise BadRequest(text, field="to")
        if self._ua is None or len(body.encode("utf-8")) > MAX_MESSAGE_BYTES:
            raise BadRequest(f"body must be at most {MAX_MESSAGE_BYTES} bytes", field="body")
        identity = SipIdentity(user.aor, user.display_name, user.credentials)
        try:
            hop = dict(self._ua.settings.pbx_targets).get(user.pbx)  # several PBXs: her own (pbxs.py)
            response = await self._ua.message(target, identity, body, hop)
        except (SIPError, RuntimeError, ValueError) as exc:
            logger.info("MESSAGE from %s to %s not sent: %s", user.id, target, exc)
            return 503
        logger.info("MESSAGE from %s to %s: %d", user.id, target, response.status)
        return response.status

    async def transfer(
        self, session: SessionSink, call_id: str, to: str | None, replaces: str | None
    ) -> None:
        """Transfer call `call_id`: blind to `to`, or attended to the far end of the session's other
        connected call `replaces` (docs/signaling.md `transfer`)."""
        if replaces is not None:
            if replaces == call_id or not self.owns_call(session, replaces):
                raise NotFound(f"no other call {replaces!r} for this session", field="replaces")
            if not self.registry.get(replaces).replaceable:
                raise Conflict(f"call {replaces!r} is not connected", field="replaces")
        try:
            room = await self._room_route(session.user, to) if to is not None else None
            event = ev.WebTransfer(session.id, session.user, to, replaces, route=room)
        except CallError as exc:
            raise BadRequest(str(exc), field="to") from None
        await self._feed(call_id, event)

    async def add_candidate(
        self, session: SessionSink, call_id: str, candidate: sdp.IceCandidateInit | None
    ) -> None:
        runtime = self._runtime(call_id)
        if session.id not in self.registry.get(call_id).sessions:
            raise NotFound(f"no call {call_id!r} for this session", field="call_id")
        runtime.add_candidate(candidate)
