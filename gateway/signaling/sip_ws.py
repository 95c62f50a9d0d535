"""SIP over WebSocket's upgrades (RFC 7118, `GET /sip` or `sip.websocket.path`) on the shared session loop.

The SIP side (flows, the transaction layer's transport) is gateway/sip/transport_ws.py, which has no
socket code; this module is the only aiohttp of SIP over WebSocket. Neither imports the other (the
layers: signaling and sip are independent): this module drives a `SipFlows`, which gateway/app.py
wires to the transport, and hands it each socket as the transport's `FlowSocket`. A browser's library (JsSIP, SIP.js)
asks for subprotocol ``sip`` (RFC 7118 §4.1): without it, 400; a foreign Origin, 403; SIP not running,
503. Then the session loop (gateway/signaling/session_loop.py) runs the flow with the limits every
dialect shares. SIP over WebSocket has no login message (RFC 7118 carries SIP as it is; a REGISTER's or
INVITE's digest, RFC 3261 §22, is answered 401/403 by SIP itself): its "login" is the first digest that
succeeds on the flow (gateway/websip/service.py tells the transport, which tells the flow's socket:
`authenticated`). A flow without one within `sip.websocket.auth_timeout` (15 s) is closed 4008, and
flows awaiting it are capped as `/ws` sockets awaiting login are (`max_awaiting_login_per_ip`,
`max_awaiting_login`; issue 32: 1,568 idle flows with no SIP at all were alive after 70 s). Flows are
also counted for their whole life (`max_sip_flows_per_ip`, `max_sip_flows`): past any cap, 429. There
is no failed-login close (a wrong digest gets 403 and counts in the login throttle) and no message rate
limit (SIP has no answer for it on a flow; the transaction layer's own bounds apply), and a message
above `max_message_bytes` closes the flow (1009: SIP has no `too_large` to send instead). The heartbeat, `send_timeout` (a
browser that stops reading is dropped; the write reports a transport error), one writer at a time,
shutdown (1001) and the drain are the loop's.

Draining (gateway/ops/drain.py): `close_idle` closes every flow without a call in progress with 1012
(Service Restart) and refuses new upgrades with 503, so that the library reconnects (through HAProxy,
to another instance) and REGISTERs again there. Neither library reads the close code: SIP.js's
SimpleUser reconnects at once after any close it did not ask for, JsSIP after
``connection_recovery_min_interval`` (2 s unless configured lower).

In a cluster, a flow whose first message is a REGISTER naming a browser whose answered calls another
instance holds (its old flow closed there, or is not yet known dead: gateway/cluster/wiring.py
`sip_relay_to`) is relayed to that instance (ws/relay.py, subprotocol ``sip``), every message both ways:
its calls follow it to the relayed flow there (gateway/websip/flows.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from aiohttp import web

from gateway.signaling.errors import SignalingError
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.origin import OriginPolicy
from gateway.signaling.session_loop import (
    Busy,
    SessionRules,
    SessionSocket,
    SocketRegistry,
    origin_refusal,
    serve,
)
from gateway.signaling.ws.relay import WsRelay
from sipcore.location.routing import Address

logger = logging.getLogger(__name__)

SUBPROTOCOL: Final = "sip"
RULES: Final = SessionRules(
    "SIP", per_message_rate=False, answers_too_large=False, protocols=(SUBPROTOCOL,), flows=True
)
DEFAULT_AUTH_TIMEOUT: Final = 15.0
TRY_AGAIN_LATER: Final = 1013  # RFC 6455 §7.4.1: the instance holding the flow's calls is busy

# A cluster's: where a flow's first message must be carried on to (the base URL of the instance whose
# calls it brings back), or None (served here). gateway/cluster/wiring.py `sip_relay_to`.
# ``unreachable``: the URL found dead just before (its calls may be going to a survivor).
RelayTo = Callable[[bytes, str | None], Awaitable[str | None]]


class SipFlows(Protocol):
    """The SIP side of SIP over WebSocket as this module drives it: gateway/sip/transport_ws.py's
    `WsTransport` (wired by gateway/app.py; signaling and sip do not import each other)."""

    @property
    def accepting(self) -> bool:
        """Whether a new flow may open (SIP is running)."""
        ...

    def open_flow(self, peer: tuple[object, ...], socket: SessionSocket) -> Address:
        """A WebSocket from socket address `peer` is open: its flow's key."""
        ...

    def received(self, address: Address, data: bytes) -> None: ...

    def flow_closed(self, address: Address) -> None: ...


class SipFlowDialect:
    """The loop's `Dialect` for one SIP WebSocket: its messages go to the transport's flow."""

    def __init__(
        self,
        flows: SipFlows,
        peer: tuple[object, ...],
        socket: SessionSocket,
        relay_to: RelayTo | None = None,
        path: str = "/sip",
    ) -> None:
        self._flows = flows
        self._peer = peer
        self._socket = socket
        self._address: Address | None = None
        self._relay_to = relay_to  # None once the first message has been seen
        self._path = path
        self._relay: WsRelay | None = None  # carried on to the instance where its calls are

    @property
    def logged_in(self) -> bool:
        # a digest succeeded on the flow (SIP's own, RFC 3261 §22), or the flow is the owner's to check
        return self._relay is not None or self._socket.is_authenticated

    def idle(self, busy: Busy) -> bool:
        return self._address is None or not busy(self._address)

    async def on_open(self) -> None:
        self._address = self._flows.open_flow(self._peer, self._socket)

    async def on_message(self, data: str | bytes) -> None:
        if self._relay is not None:
            await self._relay.send(data)
            return
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if self._relay_to is not None:
            relay_to, self._relay_to = self._relay_to, None
            if await self._relayed(relay_to, raw):
                return
        if self._address is not None:
            self._flows.received(self._address, raw)

    async def _relayed(self, relay_to: RelayTo, first: bytes) -> bool:
        """A cluster: the library's REGISTER on its new WebSocket, whose calls another instance holds (its
        old flow closed there, or is not yet known dead after a network change), is carried on to that
        instance with every message after it, both ways (ws/relay.py): the calls' dialogs move to the
        relayed flow there (gateway/websip/flows.py). Whether it was (or the socket is closing)."""
        target = await relay_to(first, None)
        tried: set[str] = set()
        while target is not None and target not in tried:
            relay = WsRelay(self._socket, target, self._path, protocols=(SUBPROTOCOL,))
            if await relay.open(first.decode("utf-8", "replace")):
                self._relay = relay
                return True
            if relay.refused:  # that instance lives but refuses now (its limits): the library tries again
                self._socket.close_with(TRY_AGAIN_LATER)
                return True
            tried.add(target)  # dead: where its calls went instead (a survivor's takeover)
            target = await relay_to(first, target)
        return False  # served here

    async def on_refused(self, error: SignalingError, message: str | bytes | None = None) -> None:
        pass  # the authentication deadline (then 4008): SIP has nothing to say; no rate limit (RULES)

    async def on_close(self) -> None:
        if self._relay is not None:
            await self._relay.close()
        if self._address is not None:
            self._flows.flow_closed(self._address)


class SipWsEndpoint:
    """The upgrades of SIP over WebSocket on one or two listeners (the HTTP one, `sip.websocket.listen`)."""

    def __init__(
        self,
        transport: SipFlows,
        *,
        allowed_origins: OriginPolicy | None = None,
        limits: SignalingLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
    ) -> None:
        self.transport = transport
        self.limits = limits or SignalingLimits()
        self.rules = dataclasses.replace(RULES, login_timeout=auth_timeout)
        self.sockets = SocketRegistry("SIP WebSocket flows")
        self._allowed_origins = allowed_origins or OriginPolicy(frozenset())
        self._monotonic = monotonic
        self.relay_to: RelayTo | None = None  # a cluster's (gateway/cluster/wiring.py)
        self.relay_path = "/sip"  # sip.websocket.path, on the instances a flow is relayed to

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The ``GET /sip`` upgrade: checks, then one flow until the socket closes."""
        refusal = origin_refusal(request, self._allowed_origins)
        if refusal is not None:
            return refusal
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if SUBPROTOCOL not in offered:
            return web.Response(status=400, text="SIP over WebSocket needs subprotocol 'sip' (RFC 7118)")
        if not self.transport.accepting:
            return web.Response(status=503, text="SIP is not running", headers={"Retry-After": "5"})
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if not peer:
            return web.Response(status=400, text="no peer address")
        flows, peername, relay_to, path = self.transport, tuple(peer), self.relay_to, self.relay_path
        return await serve(
            request,
            rules=self.rules,
            sockets=self.sockets,
            limits=self.limits,
            open_dialect=lambda socket: SipFlowDialect(
                flows, peername, socket, None if socket.relayed else relay_to, path
            ),
            monotonic=self._monotonic,
        )

    async def close_idle(self, busy: Callable[[Address], bool]) -> tuple[int, int]:
        """Drain: close (1012) every flow for which `busy(address)` is false (no call in progress on it);
        refuse new flows from now on. How many were closed (their bindings go with them) and kept."""
        return await self.sockets.close_idle(busy)
