"""The gateway's SIP user agent: the transaction user on top of the transaction layer.

``ua = UserAgent(settings)``, ``await ua.start()``, then:

- ``call = await ua.invite(target, offer_sdp, identity)`` places a call
  (:class:`~gateway.sip.useragent.outgoing.OutgoingCall`), ``async for event in call.events()`` reads
  what happens to it;
- incoming INVITEs become :class:`~gateway.sip.useragent.incoming.IncomingCall` objects, handed to the
  ``on_incoming_call`` callback or read with ``async for call in ua.incoming()``;
- the registrations (:class:`~gateway.sip.useragent.registrar_client.RegistrationClient`) keep each
  configured AOR registered; ``ua.registration_states()`` reports them;
- ``ua.adopt(data)`` carries on a call another instance had, from its ``call.handover()`` (issue 34);
- ``await ua.close()`` unregisters, ends every open call (BYE, CANCEL or 503) and closes the
  transports; it is idempotent.

The UA only answers and originates: it never forwards a request (no proxy, no open relay to
the PBX). Requests from sources the :class:`~gateway.sip.transactions.policy.SourcePolicy` does not trust get
403 from the layer, except those inside one of our dialogs. Out of dialog it answers OPTIONS (as an
INVITE would be, with Allow, Accept, Supported: RFC 3261 §11.2) and INVITE; other requests outside a dialog
get 481 (BYE, INFO...), 405 with Allow (a known method not allowed here) or 501 (an unknown one, RFC 3261
§8.2.1, §21.5.2). An INVITE whose body is not SDP gets 415 with Accept, one that would not accept SDP 406.

Via and Contact carry the same address: ``sip.public_address`` when set; else, per address family,
the socket we listen on in that family (:mod:`gateway.sip.useragent.ua_start`: an IPv4 Contact toward an IPv6
PBX or caller would send in-dialog requests astray). Its settings are :mod:`gateway.sip.useragent.ua_settings`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.sip.transactions.client import ClientTransaction
from gateway.sip.transactions.layer import TransactionLayer
from gateway.sip.transactions.policy import SourcePolicy
from gateway.sip.transactions.scheduler import Scheduler
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.transports.resolver import Resolver
from gateway.sip.transports.transport import Source
from gateway.sip.useragent import dialog_sources, ua_adopt
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.keepalive import PbxKeepalive, start_keepalives
from gateway.sip.useragent.outgoing import OutgoingCall
from gateway.sip.useragent.pbx_binding import PbxBinding
from gateway.sip.useragent.registrar_client import RegistrationChanged, RegistrationClient
from gateway.sip.useragent.ua_calls import ACCEPT, TEXT, Call
from gateway.sip.useragent.ua_replaces import replaced_call
from gateway.sip.useragent.ua_settings import ALLOW, INFO_ALWAYS, Listen, UASettings
from gateway.sip.useragent.ua_start import contact_endpoints, default_trusted_sources, family_of
from sipcore.dialogs.dialog import Dialog
from sipcore.dialogs.dialogset import DialogSet
from sipcore.dialogs.inspection import refuse_accept, refuse_body, refuse_method
from sipcore.dialogs.replacing import Refusal
from sipcore.dialogs.requests import Endpoint, build_invite, build_message, build_options
from sipcore.dialogs.session_timer import SessionTimer, TooSmall, uac_headers, uas_decision
from sipcore.errors import DigestError, SIPError
from sipcore.location.routing import Target
from sipcore.registration import RegState
from sipcore.syntax.headers import NameAddr, warning_headers
from sipcore.syntax.message import Request, Response
from sipcore.syntax.uri import URI, SipURI, parse_uri

if TYPE_CHECKING:
    from gateway.identity import SipIdentity

__all__ = ["ALLOW", "Listen", "UASettings", "UAState", "UserAgent"]

logger = logging.getLogger(__name__)

SDP = "application/sdp"
INVITE_BODIES = (SDP,)  # what an INVITE (or re-INVITE) may carry
CallKey = tuple[str, str]  # (Call-ID, our tag)
T = TypeVar("T")


class UAState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class UserAgent:
    """See the module note. Also the layer's :class:`~gateway.sip.transactions.tu.TransactionUser`."""

    def __init__(
        self,
        settings: UASettings,
        *,
        policy: SourcePolicy | None = None,
        scheduler: Scheduler | None = None,
        on_incoming_call: Callable[[IncomingCall], None] | None = None,
        on_registration: Callable[[RegistrationChanged], None] | None = None,
    ) -> None:
        self.settings = settings
        self.state = UAState.NEW
        self._policy = policy
        self._scheduler = scheduler
        self._on_incoming_call = on_incoming_call
        self._on_registration = on_registration
        self._layer: TransactionLayer | None = None
        self._endpoint: Endpoint | None = None  # toward the PBX (or the first listening socket)
        # Out-of-dialog requests over SIP WebSocket go here (REGISTER, INVITE...), not to the PBX side.
        self.web_sip: Callable[[IncomingRequest], None] | None = None
        # Before any call or dialog state is built for an INVITE out of dialog: True when it was answered
        # already (a cluster's 302, gateway/runtime/early_route.py; a 3xx creates no dialog, RFC 3261 §12.1)
        self.route_invite: Callable[[IncomingRequest], Awaitable[bool]] | None = None
        # OPTIONS to a user: what an INVITE would get (§11.2: 404, 480...; None, no hook: 200; sip_inbound)
        self.options_status: Callable[[IncomingRequest], Awaitable[int | None]] | None = None
        # MESSAGE out of dialog (RFC 3428) for web users; None: 405 (gateway/runtime/messages.py)
        self.on_message: Callable[[IncomingRequest], None] | None = None
        # per family, when no sip.public_address is set
        self._endpoints: dict[socket.AddressFamily | None, Endpoint] = {}
        self._dialogs: DialogSet | None = None
        self._registrations: RegistrationClient | None = None
        self._pbx_binding: PbxBinding | None = None
        self._calls: dict[CallKey, Call] = {}
        self._keepalives: dict[str, PbxKeepalive] = {}
        self._lingering: dict[CallKey, tuple[float, Call]] = {}  # ended calls whose 2xx we ACKed: until when
        self._invites: dict[IncomingRequest, IncomingCall] = {}
        self._incoming: asyncio.Queue[IncomingCall] = asyncio.Queue()

    def __repr__(self) -> str:
        return f"<UserAgent {self.state.name} {len(self._calls)} calls>"

    def _set_state(self, new: UAState) -> None:
        logger.info("user agent: %s -> %s", self.state.name, new.name)
        self.state = new

    # --- parts built by start() -------------------------------------------------------------------
    @property
    def layer(self) -> TransactionLayer:
        return _started(self._layer)

    def begin_shutdown(self) -> None:
        """The process stops: transactions still run, but no hop is blocklisted for what the stop cuts
        (the transaction layer's STOPPING); nothing when the UA never started (a port taken at start)."""
        if self._layer is not None:
            self._layer.begin_shutdown()

    @property
    def endpoint(self) -> Endpoint:
        return _started(self._endpoint)

    def endpoint_for(self, host: str | None) -> Endpoint:
        """Our Via/Contact address toward ``host`` (an IP literal; a name or None: the default)."""
        return self._endpoints.get(family_of(host) if host else None) or self.endpoint

    @property
    def dialogs(self) -> DialogSet:
        return _started(self._dialogs)

    @property
    def registrations(self) -> RegistrationClient:
        return _started(self._registrations)

    @property
    def pbx_binding(self) -> PbxBinding:
        """Where the users' credentials may answer challenges (see :mod:`gateway.sip.useragent.pbx_binding`)."""
        return _started(self._pbx_binding)

    @property
    def calls(self) -> tuple[Call, ...]:
        return tuple(self._calls.values())

    def registration_states(self) -> dict[str, str]:
        """Each registered AOR's state (``registered``, ``retry wait``, ``failed``...)."""
        if self._registrations is None:
            return {str(spec.aor): RegState.UNREGISTERED.value for spec in self.settings.registrations}
        return {aor: state.value for aor, state in self._registrations.states().items()}

    def in_dialog(self, request: Request) -> bool:
        """Whether ``request`` belongs to one of our dialogs (accepted from any source)."""
        return self._dialogs is not None and self._dialogs.match_request(request) is not None

    def ours(self, request: Request) -> bool:
        """Whether ``request`` is in one of our dialogs, or an INVITE we sent ourselves: a web user's call
        to another web user of this gateway goes out and comes back in through our own listener
        (gateway/runtime/web_calls.py); its Call-ID is one of our outgoing calls' (random, unguessable)."""
        if self.in_dialog(request):
            return True
        call_id = request.call_id or ""
        return request.method == "INVITE" and any(
            key[0] == call_id and isinstance(call, OutgoingCall) for key, call in self._calls.items()
        )

    def own_address(self) -> tuple[str, str, int]:
        """(transport, host, port) where this UA itself can be reached from this host: its first UDP (else
        TCP) listener, a wildcard address as loopback (for INVITEs it sends itself)."""
        listeners = [t for t in self.layer.transports if t.name in ("UDP", "TCP")]
        if not listeners:
            raise RuntimeError("no UDP or TCP SIP listener")
        chosen = next((t for t in listeners if t.name == "UDP"), listeners[0])
        host, port = chosen.local[0], chosen.local[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        return chosen.name, host, port

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.state is not UAState.NEW:
            raise RuntimeError(f"user agent already {self.state.name}")
        settings = self.settings
        resolver = Resolver(settings.dns)
        policy = self._policy or await default_trusted_sources(settings, resolver, self.ours)
        hops = settings.credential_hops or ((settings.outbound,) if settings.outbound is not None else ())
        self._pbx_binding = await PbxBinding.resolve(
            hops,
            settings.realm_of,  # each PBX's own realm (several PBXs), else pbx_realm
            resolver=resolver,
            supported=frozenset(item.transport.upper() for item in settings.listen),
        )
        first = settings.listen[0]
        layer = TransactionLayer(
            self,
            policy=policy,
            timers=settings.timers,
            scheduler=self._scheduler,
            user_agent=settings.user_agent,
            default_transport=first.transport.upper(),
            supported=settings.option_tags,
            tls=settings.tls,
            tls_names=dict(settings.tls_names),
            resolver=resolver,
            tcp_limits=settings.tcp_limits,
        )
        layer.fd_reserve = settings.fd_reserve
        try:
            opened = await layer.listen(first.transport, first.host, first.port)
            # Via = Contact: the public address if set, else the listening socket of the peer's family
            layer.public_address = settings.public_address
            for item in settings.listen[1:]:
                await layer.listen(item.transport, item.host, item.port or opened.local[1])
        except BaseException:
            await layer.close()
            raise
        self._layer = layer
        self._endpoint, self._endpoints = contact_endpoints(layer, settings, opened)
        self._dialogs = DialogSet(self._endpoint)
        self._registrations = RegistrationClient(
            layer,
            self._endpoint,
            settings.registrations,
            outbound=settings.outbound,
            on_change=self._on_registration,
        )
        self._set_state(UAState.RUNNING)
        logger.info(
            "user agent at %s (%s)", self._endpoint.contact_uri(), ", ".join(str(t) for t in layer.transports)
        )
        self._keepalives = start_keepalives(self.probe, settings)  # one per PBX (keepalive.py)
        if settings.register_at_start:
            self._registrations.start()

    def pbx_state(self, name: str = "default") -> dict[str, object] | None:
        """A PBX keep-alive's view (state, rtt_ms, last_status), when one runs; `pbx_names()` has others."""
        keepalive = self._keepalives.get(name)
        return keepalive.report() if keepalive is not None else None

    def pbx_names(self) -> tuple[str, ...]:
        return tuple(self._keepalives)

    async def close(self, timeout: float | None = None) -> None:
        """Unregister, end the calls (BYE, CANCEL, 503), close the transports; idempotent. `timeout`
        bounds the waits for answers (the gateway's shutdown deadline): when it runs out, the
        transactions still retransmitting are dropped with the transaction layer."""
        if self.state in (UAState.CLOSING, UAState.CLOSED):
            return
        if self.state is UAState.NEW:
            self._set_state(UAState.CLOSED)
            return
        self._set_state(UAState.CLOSING)
        self.layer.begin_shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None

        def left(default: float) -> float:
            return default if deadline is None else max(0.0, min(default, deadline - loop.time()))

        for keepalive in self._keepalives.values():
            await keepalive.stop()
        if self._registrations is not None:
            await self._registrations.stop(left(self.settings.unregister_timeout))
        calls = list(self._calls.values())
        if calls:
            results = await asyncio.gather(
                *(asyncio.wait_for(call.close(), left(5.0)) for call in calls), return_exceptions=True
            )
            for call, result in zip(calls, results, strict=True):
                if isinstance(result, BaseException):
                    logger.warning("sip_call_id=%s not closed cleanly: %r", call.call_id, result)
        await self.layer.close()
        self._set_state(UAState.CLOSED)

    # --- outgoing ---------------------------------------------------------------------------------
    def trusts(self, host: str) -> bool:
        """Whether requests from ``host`` come from the gateway's trust domain (sip.trusted_sources)."""
        trusts = getattr(self.layer.policy, "trusts", None)
        return bool(trusts(host)) if trusts is not None else False

    async def invite(
        self,
        target: str | URI,
        offer_sdp: str,
        identity: SipIdentity | str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        next_hop: Target | None = None,
        endpoint: Endpoint | None = None,
        flow: bool = False,
        call_id: str | None = None,
        content_type: str = "application/sdp",
    ) -> OutgoingCall:
        """Call ``target`` (a SIP URI) from ``identity`` (a web user's SIP identity, whose PBX credentials
        answer digest challenges, or an AOR) with an SDP offer (or a multipart body: ``content_type``).
        ``endpoint``: our Via/Contact (default: toward the next hop); ``flow``: every request of the dialog
        to ``next_hop`` (a browser's WebSocket); ``call_id``: chosen beforehand (logs name it), else new."""
        if self.state is not UAState.RUNNING:
            raise RuntimeError(f"user agent is {self.state.name}: no new calls")
        uri = parse_uri(target) if isinstance(target, str) else target
        from_, digest = ua_adopt.caller(identity)
        timer = uac_headers(self.settings.session_timer) if self.settings.session_timer is not None else ()
        hop = next_hop or self.settings.outbound
        toward = hop.host if hop is not None else (uri.host if isinstance(uri, SipURI) else None)
        invite = build_invite(
            endpoint or self.endpoint_for(toward),
            from_=from_,
            to=NameAddr(uri),
            body=offer_sdp.encode(),
            headers=(*timer, *headers),
            call_id=call_id,
            content_type=content_type,
        )
        call = OutgoingCall(self, invite, hop, digest)
        if flow:
            call.next_hop = hop
        self._calls[(call.call_id, call.local_tag)] = call
        logger.info("sip_call_id=%s INVITE %s from %s", call.call_id, uri, from_)
        call.start()
        return call

    def adopt(self, data: Mapping[str, Any], identity: SipIdentity | None = None) -> ua_adopt.AdoptedCall:
        """Carry on here a call another instance handed over (its ``call.handover()``): ua_adopt (issue 34)."""
        if self.state is not UAState.RUNNING:
            raise RuntimeError(f"user agent is {self.state.name}: no calls adopted")
        call = ua_adopt.adopt(self, data, identity)  # its dialog is in self.dialogs already
        self._calls[(call.call_id, call.local_tag)] = call
        return call

    async def message(
        self, target: str | URI, identity: SipIdentity, text: str, next_hop: Target | None = None
    ) -> Response:
        """Send a page-mode MESSAGE (RFC 3428) from ``identity`` to ``target`` through the PBX (or
        ``next_hop``: the user's own of several); its digest challenge is answered once with the user's
        credentials (only to a PBX); the final response."""
        if self.state is not UAState.RUNNING:
            raise RuntimeError(f"user agent is {self.state.name}: no new requests")
        uri = parse_uri(target) if isinstance(target, str) else target
        from_, digest = ua_adopt.caller(identity)
        hop = next_hop or self.settings.outbound
        ours = self.endpoint_for(
            hop.host if hop is not None else (uri.host if isinstance(uri, SipURI) else None)
        )
        request = build_message(ours, from_=from_, to=NameAddr(uri), text=text)
        handle = await self.layer.request(request, hop)
        final = await handle.final_response()
        if final.status in (401, 407) and digest is not None:
            refusal = self.pbx_binding.refusal(handle.destination, final)
            if refusal is not None:
                logger.warning("MESSAGE to %s: credentials withheld: %s", uri, refusal)
                return final
            try:
                retry = digest.authorize(request, final)
            except DigestError as exc:
                logger.info("MESSAGE to %s not authorized: %s", uri, exc.detail)
                return final
            final = await (await self.layer.request(retry, hop)).final_response()
        return final

    @property
    def info_types(self) -> frozenset[str]:
        """INFO bodies taken in a call: DTMF (dtmf-relay, dtmf), trickle ICE, sip.info_content_types."""
        return frozenset((*INFO_ALWAYS, *self.settings.info_content_types))

    def info_refusal(
        self, request: Request, packages: frozenset[str] = frozenset()
    ) -> tuple[int, tuple[tuple[str, str], ...]] | None:
        """RFC 6086 for an INFO in a call: 469 Bad Info Package for a package we never offered in
        Recv-Info (``packages``: the call's, e.g. trickle-ice in a pass-through call, RFC 8840 §4), with
        our Recv-Info (§4.2.2), 415 with Accept for a body we do not relay; None: take it."""
        package = request.headers.get("Info-Package")
        if package is not None and package.split(";", 1)[0].strip().lower() not in packages:
            return 469, (("Recv-Info", ", ".join(sorted(packages))),)
        mime = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if not request.body or mime in self.info_types:
            return None
        return 415, (("Accept", ", ".join(sorted(self.info_types))),)

    async def options(self, target: str | URI, *, next_hop: Target | None = None) -> Response:
        """Send OPTIONS out of dialog (a keep-alive or capability query); the final response."""
        return await (await self._send_options(target, next_hop)).final_response()

    async def probe(self, target: str, next_hop: Target | None = None) -> Response:
        """The keep-alive's OPTIONS: as ``options``, but given up on (cancelled: the keep-alive's
        timeout) before anything answered, its hop is blocklisted (gateway.sip.transactions.client): the next probe,
        and the calls, try the next SRV target first instead of waiting Timer F on a silent one."""
        handle = await self._send_options(target, next_hop)
        try:
            return await handle.final_response()
        except asyncio.CancelledError:
            transport, destination = handle.transport, handle.destination
            answered = handle.final is not None or handle.provisional is not None
            if self.state is UAState.RUNNING and not answered and transport and destination:
                self.layer.client.suspect(transport, destination)  # (not when the UA stops the keep-alive)
            raise

    async def _send_options(self, target: str | URI, next_hop: Target | None) -> ClientTransaction:
        uri = parse_uri(target) if isinstance(target, str) else target
        hop = next_hop or self.settings.outbound
        ours = self.endpoint_for(
            hop.host if hop is not None else (uri.host if isinstance(uri, SipURI) else None)
        )
        request = build_options(ours, from_=NameAddr(ours.contact_uri()), to=NameAddr(uri))
        return await self.layer.request(request, hop)

    # --- incoming ---------------------------------------------------------------------------------
    async def incoming(self) -> AsyncIterator[IncomingCall]:
        """Incoming calls, as they arrive (when no ``on_incoming_call`` callback was given)."""
        while True:
            yield await self._incoming.get()

    async def next_incoming(self, timeout: float | None = None) -> IncomingCall:
        return await asyncio.wait_for(self._incoming.get(), timeout)

    def session_timer_for(self, request: Request) -> SessionTimer | None:
        """The session timer our 2xx to ``request`` (an INVITE) agrees on (RFC 4028 §9), if any."""
        policy = self.settings.session_timer
        if policy is None:
            return None
        try:
            timer = uas_decision(request, policy)
        except SIPError:
            return None
        return timer if isinstance(timer, SessionTimer) else None

    def capabilities(self) -> tuple[tuple[str, str], ...]:
        """Allow, Accept and Supported (RFC 3261 §11.2, §20.1, §20.5, §20.37)."""
        supported = ", ".join(self.settings.option_tags)
        accept = dict.fromkeys((*ACCEPT, *sorted(self.info_types), TEXT))  # INVITE, UPDATE, INFO, MESSAGE
        return (("Allow", ", ".join(ALLOW)), ("Accept", ", ".join(accept)), ("Supported", supported))

    # --- TransactionUser --------------------------------------------------------------------------
    async def on_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        to = request.to
        if to is not None and to.tag is not None:
            call = self._calls.get((request.call_id or "", to.tag))
            if call is None or call.dialog is None:
                incoming.reply(481)  # RFC 3261 §12.2.2
            elif not self._from_peer(call, incoming.source):
                incoming.reply(403)  # not the dialog's peer: changes nothing (dialog_sources)
            else:
                call.on_request(incoming)
            return
        method = request.method
        if self.web_sip is not None and incoming.source.transport.name in ("WS", "WSS"):
            self.web_sip(incoming)  # a browser's SIP library: its own registrar and calls (gateway/websip)
        elif method == "INVITE":
            route = self.route_invite
            if route is not None and self.state is UAState.RUNNING and await route(incoming):
                return
            if incoming.final is None:  # else CANCELled (487) while the route was looked up
                self._new_call(incoming)
        elif method == "OPTIONS":
            status = await self.options_status(incoming) if self.options_status is not None else None
            if incoming.final is None:  # RFC 3261 §11.2: what an INVITE would get, with our capabilities
                incoming.reply(status or 200, headers=self.capabilities())
        elif method == "MESSAGE" and self.on_message is not None:
            self.on_message(incoming)
        elif method in ("BYE", "INFO", "UPDATE", "PRACK", "REFER", "NOTIFY"):  # REFER only in a dialog
            incoming.reply(481)
        else:
            refusal = refuse_method(method, ALLOW)  # 405 known but not allowed, 501 unknown (§8.2.1)
            status, headers = refusal or (405, (("Allow", ", ".join(ALLOW)),))
            incoming.reply(status, headers=headers)

    def accept_invite(
        self, incoming: IncomingRequest, endpoint: Endpoint, next_hop: Target | None = None
    ) -> IncomingCall | None:
        """The checks every INVITE out of dialog passes (415/406, 422, 503...), then its dialog
        (our Contact from ``endpoint``) and :class:`IncomingCall`; None when it was answered. Not yet
        handed to anyone: :meth:`_new_call` gives PBX calls to the call layer; the browser SIP
        dialect (gateway/websip) keeps its own, with ``next_hop`` its WebSocket flow."""
        if incoming.cancelled:
            incoming.reply(487)
            return None
        if self.state is not UAState.RUNNING:
            incoming.reply(503)
            return None
        # RFC 3261 §8.2.3: a body we cannot read (415), an answer the caller would not accept (406).
        refusal = refuse_body(incoming.request, INVITE_BODIES) or refuse_accept(incoming.request, SDP)
        if refusal is not None:
            logger.info("sip_call_id=%s INVITE refused with %d", incoming.request.call_id, refusal[0])
            incoming.reply(refusal[0], headers=refusal[1])
            return None
        policy = self.settings.session_timer
        try:
            timer = uas_decision(incoming.request, policy) if policy is not None else None
        except SIPError as exc:
            incoming.reply(exc.status or 400, exc.reason_phrase, headers=warning_headers(exc))
            return None
        if isinstance(timer, TooSmall):  # RFC 4028 §9: 422 with our Min-SE, before anyone rings
            logger.info(
                "sip_call_id=%s session interval below our Min-SE %d: 422",
                incoming.request.call_id,
                timer.min_se,
            )
            incoming.reply(422, headers=timer.headers())
            return None
        try:
            dialog = Dialog.from_uas_request(incoming.request, endpoint)
        except SIPError as exc:  # an RFC 2543 INVITE without Contact: 400 saying so (RFC 3261 §20.43)
            incoming.reply(exc.status or 400, exc.reason_phrase, headers=warning_headers(exc))
            return None
        self.dialogs.add(dialog)
        to_uri = incoming.request.to.uri if incoming.request.to is not None else None
        digest = self.registrations.digest_for(to_uri) if isinstance(to_uri, SipURI) else None
        call = IncomingCall(self, incoming, dialog, digest)
        self._calls[(call.call_id, call.local_tag)] = call
        self._invites[incoming] = call
        call.next_hop = next_hop
        return call

    def _new_call(self, incoming: IncomingRequest) -> None:
        trusted = self.trusts(incoming.source.host) or self.ours(incoming.request)  # our own loop's too
        replaced = replaced_call(self._calls, incoming.request, trusted)
        if isinstance(replaced, Refusal):  # RFC 3891 §3: 400, 481, 603, 403, 486
            incoming.reply(replaced.status, replaced.reason)
            return
        call = self.accept_invite(incoming, self.endpoint_for(incoming.source.host))
        if call is None:
            return
        call.replaces = replaced
        logger.info("sip_call_id=%s incoming from %s to %s", call.call_id, call.caller, incoming.request.uri)
        if self._on_incoming_call is not None:
            self._on_incoming_call(call)
        else:
            self._incoming.put_nowait(call)

    def on_cancel(self, incoming: IncomingRequest, cancel: Request) -> None:
        call = self._invites.get(incoming)
        if call is not None:
            call.on_cancel(cancel)
        elif incoming.final is None:
            incoming.reply(487)

    def on_ack(self, ack: Request, source: Source) -> None:
        to = ack.to
        call = self._calls.get((ack.call_id or "", to.tag or "")) if to is not None else None
        if call is not None and self._from_peer(call, source):
            call.on_ack(ack)

    def on_stray_response(self, response: Response, source: Source) -> None:
        from_ = response.from_
        key = (response.call_id or "", from_.tag or "") if from_ is not None else None
        call = self._calls.get(key) if key is not None else None
        if call is None and key is not None:  # ended, but its 2xx may still be retransmitted (64*T1)
            lingering = self._lingering.get(key)
            call = lingering[1] if lingering is not None and lingering[0] > self._now() else None
        if call is not None:
            call.on_stray_2xx(response)

    def _from_peer(self, call: Call, source: Source) -> bool:
        if self.settings.in_dialog_any_source or dialog_sources.from_dialog_peer(
            source, call.peer_hosts, call.dialog, call.next_hop, self.trusts
        ):
            return True
        logger.info(
            "sip_call_id=%s in-dialog request from %s refused: not the dialog's peer", call.call_id, source
        )
        return False

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _forget(self, call: Call) -> None:
        """A call ended: forget it and its dialog. One we ACKed a 2xx for lingers for 64*T1, so that a
        2xx retransmitted after our BYE still gets its ACK (RFC 3261 §13.2.2.4)."""
        key = (call.call_id, call.local_tag)
        self._calls.pop(key, None)
        now = self._now()
        for old in [k for k, (until, _) in self._lingering.items() if until <= now]:
            del self._lingering[old]
        if call.acked_2xx:
            self._lingering[key] = (now + 64 * self.settings.timers.t1, call)
        if isinstance(call, IncomingCall):
            self._invites.pop(call.incoming, None)
        if call.dialog is not None and self._dialogs is not None:
            self._dialogs.discard(call.dialog.id)


def _started(part: T | None) -> T:
    if part is None:
        raise RuntimeError("the user agent is not started")
    return part
