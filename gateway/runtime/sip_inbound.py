"""`SipInbound`: what the SIP user agent brings the driver: new INVITEs, registrations, MESSAGEs.

A new INVITE is resolved through the identity map (presence tells who is online; a room's number goes
to the rooms; a cluster may redirect it, 302) and becomes `SipIncomingInvite` for a new call's runtime,
or a refusal (busy, 480, 503 while draining); an INVITE with Replaces goes to the call whose SIP leg it
names (RFC 3891). Registration changes and the PBX keep-alive's state are told to the sessions, an
out-of-dialog MESSAGE to the web user's sessions (RFC 3428), at most `limits.message_rate` of them
(486 with Retry-After beyond: runtime/message_rate.py). This module imports what `DriverCore`
does; it is composed with `DriverCore` (its calls, sessions and UA), not a base of it.
"""

from __future__ import annotations

import logging

import sdp
from gateway.calls import (
    CallError,
)
from gateway.calls.boundary import events as ev
from gateway.calls.boundary.caller import MAX_HEADER_VALUE, CallerDetails
from gateway.calls.setup.busy import busy_refusal
from gateway.calls.states import CallDirection
from gateway.config import Config
from gateway.config.pbxs import PbxPlan
from gateway.config.routes import MediaMode, media_mode
from gateway.config.values import WebCalls
from gateway.identity.model import Found, InboundResult, NotOnline
from gateway.ops import logctx
from gateway.runtime.driver_core import DriverCore
from gateway.runtime.messages import inbound_refusal, text_of
from gateway.signaling.errors import SignalingError
from gateway.signaling.events import MessageReceived, PbxState, SipRegistration
from gateway.sip import UserAgent
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.registrar_client import RegistrationChanged
from gateway.sip.useragent.ua_calls import Call as SipCall
from sipcore import identity as identity_headers

logger = logging.getLogger(__name__)


class SipInbound:
    """The SIP UA's callbacks (see the module note), over the driver's calls and sessions."""

    def __init__(self, driver: DriverCore, config: Config) -> None:
        self._driver = driver
        self._pass_headers = config.sip.pass_headers  # custom headers passed both ways (allow-list)
        self._pbx_domain = config.pbx.effective_domain
        self._pbx_plan = PbxPlan.from_config(config)  # which PBX an INVITE came from (config/pbxs.py)
        self._web_calls = config.calls.web_calls

    def attach_ua(self, ua: UserAgent) -> None:
        """Take the UA's requests: new INVITEs (`on_incoming_call`, given to the UA when it is made),
        OPTIONS, out-of-dialog MESSAGEs and the routes decided before a call is built."""
        ua.on_message = self.on_message
        ua.route_invite = self._driver.early.route
        ua.options_status = self.options_status

    async def options_status(self, incoming: IncomingRequest) -> int | None:
        """RFC 3261 §11.2: an OPTIONS to a user gets the status an INVITE to her would: 503 while
        draining (to the gateway itself too: an edge proxy's probe then takes the instance out), 404
        for no such user, 480 when she is not online; None (200) when she could be called. One to the
        gateway itself (no user part: a PBX's keep-alive) is otherwise answered 200."""
        request = incoming.request
        if not self._driver.accepting:
            return 503
        user = getattr(request.uri, "user", None)
        if not user:
            return None
        if user.replace("%23", "#") in self._driver.room_numbers:  # a room's: callable (opens with an INVITE)
            return None
        to_uri = str(request.to.uri) if request.to is not None else None
        try:
            target = await self._driver.identity.resolve_inbound(str(request.uri), to_uri)
        except SignalingError as exc:  # the shared state is unreachable, as an INVITE would find it
            logger.info("OPTIONS to %s: %s", request.uri, exc)
            return 503
        return target.sip_status

    def on_incoming_call(self, call: IncomingCall) -> None:
        """The UA's callback for a new INVITE (sync): resolve and start the call in a task."""
        if not self._driver.accepting:
            call.reject(503, "Service Unavailable")
            return
        if call.replaces is not None:
            self._driver.spawn(self._replacing(call, call.replaces))
            return
        self._driver.spawn(self._incoming(call, self._driver.early.take(call.incoming)))

    async def _replacing(self, call: IncomingCall, old: SipCall) -> None:
        """An INVITE with Replaces the UA accepted (RFC 3891 §3) goes to the call whose SIP leg it names;
        a leg of no call of ours (a SIP library's call over WebSocket) gets 481."""
        runtime = next((r for r in self._driver.runtimes if r.sip.call is old and not r.finished), None)
        if runtime is None or runtime.sip.replacing is not None:
            call.reject(481 if runtime is None else 491)
            return
        caller = call.caller
        runtime.sip.replacing = call
        logctx.add_sip_call_id(runtime.log_context, call.call_id)
        event = ev.SipReplacingInvite(
            str(caller.uri) if caller is not None else "sip:anonymous@anonymous.invalid",
            caller.display_name if caller is not None else None,
            call.offer or None,
        )
        try:
            await runtime.feed(event)
        except CallError as exc:
            logger.info("call=%s INVITE with Replaces refused: %s", runtime.call_id, exc)
            if runtime.sip.replacing is call:
                runtime.sip.replacing = None
            if not call.ended:
                call.reject(481)

    def _caller_details(self, call: IncomingCall) -> CallerDetails:
        """What the INVITE says of the caller beyond From: the asserted identity only from a peer the
        gateway trusts (RFC 3325 §5), diversions, and the allow-listed custom headers."""
        headers = call.request.headers
        trusted = self._driver.ua.trusts(call.source.host)
        asserted = identity_headers.asserted_identity(headers) if trusted else None
        passed = []
        for name in self._pass_headers:
            value = headers.get(name)
            if value is not None and len(value) <= MAX_HEADER_VALUE and value.isprintable():
                passed.append((name, value))
        return CallerDetails(
            asserted.uri if asserted is not None else None,
            asserted.display_name if asserted is not None else None,
            tuple((d.uri, d.reason) for d in identity_headers.diversions(headers)),
            tuple(passed),
        )

    async def _incoming(self, call: IncomingCall, routed: InboundResult | None = None) -> None:
        with logctx.bind_call(logctx.CallContext(sip_call_ids=(call.call_id,))):
            await self._incoming_call(call, routed)

    async def _incoming_call(self, call: IncomingCall, routed: InboundResult | None) -> None:
        """`routed`: the target EarlyRoutes resolved (and did not redirect), else resolved here."""
        try:
            request_uri = str(call.request_uri)
            callee = call.callee
            to_uri = str(callee.uri) if callee else None
            target = routed
            if target is None:
                room = (
                    await self._driver.room_calls(request_uri, to_uri)
                    if self._driver.room_calls is not None
                    else None
                )
                target = (
                    room
                    if room is not None
                    else await self._driver.identity.resolve_inbound(
                        request_uri, to_uri, pbx=self._pbx_plan.source_pbx(call.source.host)
                    )
                )
            caller = call.caller
            if (
                routed is None
                and isinstance(target, (NotOnline, Found))
                and self._driver.inbound_redirect is not None
            ):
                try:
                    contacts = await self._driver.inbound_redirect(call, target)
                except SignalingError as exc:  # the shared state is unreachable: the edge tries another
                    logger.warning("call=%s %s: %s", call.call_id, target.target, exc)
                    call.reject(503, "Cluster State Unavailable")
                    return
                if contacts:  # RFC 3261 §21.3.3: online on other instances (too); the edge proxy follows
                    logger.info(  # (several Contacts: it forks to all of them)
                        "call=%s %s is on other instances: 302 %s", call.call_id, target.target, contacts
                    )
                    call.reject(
                        302, "Moved Temporarily", headers=tuple(("Contact", f"<{c}>") for c in contacts)
                    )
                    return
            if isinstance(target, Found):
                busy = busy_refusal(self._driver.registry, target, self._pbx_domain)
                if busy is not None:
                    logger.info(
                        "call=%s %s busy: %d %s", call.call_id, target.target, busy.status, busy.contact or ""
                    )
                    headers = (("Contact", f"<{busy.contact}>"),) if busy.contact is not None else ()
                    call.reject(busy.status, headers=headers)
                    return
            from_uri = str(caller.uri) if caller is not None else "sip:anonymous@anonymous.invalid"
            event = ev.SipIncomingInvite(
                request_uri,
                from_uri,
                caller.display_name if caller is not None else None,
                call.offer or None,
                target,
                details=self._caller_details(call),
                passthrough=self._inbound_passthrough(
                    from_uri, call.offer or None, self._driver.ua.ours(call.request)
                ),
            )
            call_id, commands = self._driver.registry.incoming(event)
        except Exception:
            logger.exception("call=%s incoming INVITE could not be handled", call.call_id)
            if not call.ended:
                call.reject(500, "Server Internal Error")
            return
        runtime = self._driver.start_runtime(call_id, CallDirection.INBOUND, commands)
        runtime.attach_sip(call)

    def _inbound_passthrough(self, caller: str, offer: str | None, looped: bool) -> bool:
        """Pass the caller's WebRTC offer to the browser: its route says so, or it is a web user's call
        looped through our own listener under `calls.web_calls: p2p` (the two browsers then talk
        directly; the gateway only carries the signaling, trickle ICE in INFO included)."""
        if offer is None:
            return False
        wanted = media_mode(self._driver.routes, caller) is MediaMode.PASSTHROUGH
        return (wanted or (looped and self._web_calls is WebCalls.P2P)) and _webrtc_offer(offer)

    def on_registration(self, change: RegistrationChanged) -> None:
        """The UA's callback: record the state (for /healthz and later logins) and tell the user's sessions."""
        self._driver.registrations[change.aor] = change.new.value
        self._driver.registration_reasons[change.aor] = change.reason
        failed = change.new.value in ("failed", "retry wait")
        logger.log(
            logging.WARNING if failed else logging.INFO,
            "registration of %s: %s -> %s (%s)",
            change.aor,
            change.old.value,
            change.new.value,
            change.reason,
        )
        event = SipRegistration(change.aor, change.new.value, change.reason)
        for session in self._driver.sessions:
            if session.user.aor.aor == change.aor and not session.closed:
                self._driver.spawn(session.send_event(event))

    def pbx_changed(self, state: str, name: str = "default") -> None:
        """A PBX keep-alive's state changed (gateway/ops/health.py): the sessions of that PBX's users
        hear `pbx` (`default`, the `pbx:` section, is every user's but those of other `pbxs:`)."""
        states = self._driver.pbx_states
        if state == states.get(name):
            return
        states[name] = state
        if name == "default":
            self._driver.pbx_state = state
        event = PbxState(state)
        for session in self._driver.sessions:
            if not session.closed and session.user.pbx == name:
                self._driver.spawn(session.send_event(event))

    def on_message(self, incoming: IncomingRequest) -> None:
        """The UA's callback for a MESSAGE out of dialog (sync): deliver it in a task."""
        self._driver.spawn(self._message_in(incoming))

    async def _message_in(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        refusal = inbound_refusal(request)
        if refusal is not None:
            incoming.reply(refusal[0], refusal[1], headers=refusal[2])
            return
        to = request.to
        target = await self._driver.identity.resolve_inbound(
            str(request.uri), str(to.uri) if to is not None else None
        )
        if not isinstance(target, Found):
            incoming.reply(target.sip_status)
            return
        sender = request.from_
        sender_uri = str(sender.uri).split(";", 1)[0] if sender is not None else ""
        wait = self._driver.messages_in.admit(sender_uri, (user.id for user in target.users))
        if wait is not None:  # a flood: shown to nobody (runtime/message_rate.py: why 486)
            logger.debug(
                "MESSAGE from %s to %s refused: over limits.message_rate", sender_uri[:80], target.target
            )
            incoming.reply(486, "Busy Here", headers=(("Retry-After", str(int(wait))),))
            return
        event = MessageReceived(
            str(sender.uri) if sender is not None else "sip:anonymous@anonymous.invalid",
            sender.display_name if sender is not None else None,
            text_of(request),
        )
        delivered = 0
        for session_ids in target.sessions.values():
            for session_id in session_ids:
                session = self._driver.session(session_id)
                if session is not None and not session.closed:
                    await session.send_event(event)
                    delivered += 1
        incoming.reply(200 if delivered else 480)


def _webrtc_offer(offer: str) -> bool:
    """Whether a SIP offer's first audio m-line is WebRTC media: DTLS-SRTP (RFC 5764) with ICE (RFC 8839)."""
    try:
        description = sdp.parse(offer)
    except sdp.SdpError:
        return False
    for index, media in enumerate(description.media):
        if media.media == "audio" and media.port != 0:
            return sdp.is_dtls_srtp(description, index) and description.ice_for(index) is not None
    return False
