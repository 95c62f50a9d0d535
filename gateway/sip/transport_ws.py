"""SIP over WebSocket (RFC 7118): the transport JsSIP and SIP.js speak, on the gateway's HTTP listener.

A browser opens ``ws[s]://gateway/sip`` asking for subprotocol ``sip`` (RFC 7118 §4.1); the upgrade
is refused (400) without it, and (403) from a foreign Origin, like the JSON WebSocket. Each WebSocket
message is one whole SIP message (§5: no Content-Length needed, so ``Framing.DATAGRAM`` on a reliable
transport). A connection is a *flow* (RFC 5626): it is keyed by the browser's (ip, port), which is
what the transaction layer sees as the :class:`~gateway.sip.transports.transport.Source` and uses to send
back; a request to a browser (an inbound call, a BYE) goes over the flow its REGISTER or INVITE came
on, since a browser cannot be connected to. When a flow closes, ``on_closed`` callbacks learn of it
(the registrar drops its bindings, the calls on it end).

The transport never opens connections; sending to an address without an open flow reports a
:class:`~sipcore.errors.TransportError` to ``on_error`` (a transaction then fails with 503/408).
Text frames carry the messages (what both libraries send and expect); binary frames are accepted too.
A double CRLF is a keep-alive ping answered with a CRLF pong (RFC 5626 §4.4.1, as SIP.js's
keepAliveInterval expects); WebSocket pings (``heartbeat``) close a flow whose browser stopped answering.

Draining (gateway/ops/drain.py): ``close_idle`` closes every flow without a call in progress with 1012
(Service Restart) and refuses new upgrades with 503, so that the library reconnects (through HAProxy,
to another instance) and REGISTERs again there. Neither library reads the close code: SIP.js's
SimpleUser reconnects at once after any close it did not ask for, JsSIP after
``connection_recovery_min_interval`` (2 s unless configured lower).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

from aiohttp import WSMsgType, web

from gateway.logs import RateLimit
from gateway.signaling.origin import origin_allowed
from gateway.sip.transports.transport import (
    ErrorCallback,
    ReceiveCallback,
    Source,
    normalize_address,
    report_error,
)
from sipcore.errors import TransportError
from sipcore.location.routing import Address
from sipcore.syntax.parser import Framing

__all__ = ["FlowClosed", "WsLimits", "WsTransport"]

logger = logging.getLogger(__name__)

SUBPROTOCOL: Final = "sip"
CLOSE_SERVICE_RESTART: Final = 1012  # draining: reconnect (to another instance) and register there
FlowClosed = Callable[[Address], None]


class WsLimits:
    """Bounds per WebSocket flow: message size, how long a browser may stop reading, flows per IP."""

    def __init__(
        self,
        *,
        max_message_bytes: int = 65536,
        send_timeout: float = 10.0,
        heartbeat: float = 20.0,
        max_flows_per_ip: int = 32,
        max_flows: int = 4096,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.send_timeout = send_timeout
        self.heartbeat = heartbeat
        self.max_flows_per_ip = max_flows_per_ip
        self.max_flows = max_flows


class _Flow:
    """One open WebSocket: its writer lock, so that messages go out whole and in order."""

    __slots__ = ("lock", "ws")

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()


class WsTransport:
    """The WS (or WSS) transport: every SIP-over-WebSocket flow on the HTTP listener."""

    def __init__(
        self,
        secure: bool,
        local: Address,
        *,
        allowed_origins: frozenset[str] = frozenset(),
        limits: WsLimits | None = None,
    ) -> None:
        self._name = "WSS" if secure else "WS"
        self._local = local
        self._allowed_origins = allowed_origins
        self.limits = limits or WsLimits()
        self._on_receive: ReceiveCallback | None = None
        self._flows: dict[Address, _Flow] = {}
        self._per_ip: dict[str, int] = {}
        self._closed_callbacks: list[FlowClosed] = []
        self._closing = False
        self.draining = False  # no new flow (503): the gateway is being restarted
        self._refusals = RateLimit()
        self._writes: set[asyncio.Task[None]] = set()

    # --- Transport protocol ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def reliable(self) -> bool:
        return True

    @property
    def framing(self) -> Framing:
        return Framing.DATAGRAM

    @property
    def local(self) -> Address:
        return self._local

    @local.setter
    def local(self, address: Address) -> None:
        """The HTTP listener's real address, once it is bound (port 0 in tests)."""
        self._local = address

    def __repr__(self) -> str:
        return f"<WsTransport {self._name} {self._local[0]}:{self._local[1]} flows={len(self._flows)}>"

    def __str__(self) -> str:
        return f"{self._name} {self._local[0]}:{self._local[1]}"

    def send(self, data: bytes, destination: Address, on_error: ErrorCallback | None = None) -> None:
        flow = self._flows.get(destination)
        if flow is None or flow.ws.closed:
            report_error(on_error, TransportError(f"no WebSocket flow to {destination[0]}:{destination[1]}"))
            return
        self._spawn(self._write(flow, destination, data.decode("utf-8", "replace"), on_error))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._writes.add(task)  # a reference until done (the loop keeps only weak ones)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        self._closing = True
        for flow in list(self._flows.values()):
            with contextlib.suppress(Exception):
                await flow.ws.close(code=1001, message=b"gateway shutting down")

    async def close_idle(self, busy: Callable[[Address], bool]) -> tuple[int, int]:
        """Drain: close (1012) every flow for which `busy(address)` is false (no call in progress on it);
        refuse new flows from now on. How many were closed (their bindings go with them) and kept."""
        self.draining = True
        open_ = [(address, flow.ws) for address, flow in self._flows.items() if not flow.ws.closed]
        idle = [ws for address, ws in open_ if not busy(address)]
        await asyncio.gather(
            *(ws.close(code=CLOSE_SERVICE_RESTART, message=b"gateway draining: reconnect") for ws in idle),
            return_exceptions=True,
        )
        if idle:
            logger.info("draining: %d SIP WebSocket flows without a call closed (1012)", len(idle))
        return len(idle), len(open_) - len(idle)

    # --- wiring ----------------------------------------------------------------------------------
    def start(self, on_receive: ReceiveCallback) -> None:
        """Begin delivering received messages (the transaction layer's ``receive``)."""
        self._on_receive = on_receive

    def on_flow_closed(self, callback: FlowClosed) -> None:
        self._closed_callbacks.append(callback)

    def has_flow(self, address: Address) -> bool:
        return address in self._flows

    @property
    def flows(self) -> int:
        return len(self._flows)

    # --- the aiohttp handler ---------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The ``GET /sip`` upgrade: checks, then one flow until the socket closes."""
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.scheme, request.host, self._allowed_origins):
            logger.warning("refusing a SIP WebSocket from %s: foreign Origin %r", request.remote, origin)
            return web.Response(status=403, text=f"Origin {origin!r} is not allowed (http.allowed_origins)")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if SUBPROTOCOL not in offered:
            return web.Response(status=400, text="SIP over WebSocket needs subprotocol 'sip' (RFC 7118)")
        if self._on_receive is None or self._closing:
            return web.Response(status=503, text="SIP is not running", headers={"Retry-After": "5"})
        if self.draining:  # HAProxy retries the upgrade on another instance (deploy/haproxy.cfg)
            return web.Response(status=503, text="gateway draining", headers={"Retry-After": "1"})
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if not peer:
            return web.Response(status=400, text="no peer address")
        address = normalize_address(tuple(peer))
        refused = self._refuse(address[0])
        if refused is not None:
            return refused
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,),
            heartbeat=self.limits.heartbeat,
            max_msg_size=self.limits.max_message_bytes,
        )
        try:
            await ws.prepare(request)
        except (UnicodeError, ValueError) as exc:
            logger.info("bad SIP WebSocket handshake from %s: %s", address[0], type(exc).__name__)
            return web.Response(status=400, text="bad WebSocket handshake")
        self._flows[address] = _Flow(ws)
        self._per_ip[address[0]] = self._per_ip.get(address[0], 0) + 1
        source = Source(self, *address)
        logger.info("SIP WebSocket flow from %s:%d", *address)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    data = message.data.encode("utf-8")
                elif message.type is WSMsgType.BINARY:
                    data = message.data
                else:
                    break
                if data.strip() == b"":
                    if data == b"\r\n\r\n":  # a keep-alive ping (RFC 5626 §4.4.1): pong, CRLF
                        self._spawn(self._write(self._flows[address], address, "\r\n", None))
                    continue
                self._on_receive(data, source)
        finally:
            self._forget(address)
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    def _refuse(self, ip: str) -> web.Response | None:
        if (
            self._per_ip.get(ip, 0) >= self.limits.max_flows_per_ip
            or len(self._flows) >= self.limits.max_flows
        ):
            if self._refusals.allow(logger, logging.WARNING):
                logger.warning("refusing a SIP WebSocket from %s: too many flows", ip)
            return web.Response(status=429, text="too many SIP WebSockets", headers={"Retry-After": "5"})
        return None

    def _forget(self, address: Address) -> None:
        if self._flows.pop(address, None) is None:
            return
        count = self._per_ip.get(address[0], 1) - 1
        if count > 0:
            self._per_ip[address[0]] = count
        else:
            self._per_ip.pop(address[0], None)
        logger.info("SIP WebSocket flow from %s:%d closed", *address)
        for callback in list(self._closed_callbacks):
            try:
                callback(address)
            except Exception:
                logger.exception("flow-closed callback failed")

    async def _write(
        self, flow: _Flow, destination: Address, text: str, on_error: ErrorCallback | None
    ) -> None:
        async with flow.lock:
            if flow.ws.closed:
                report_error(on_error, TransportError(f"WebSocket flow to {destination[0]} closed"))
                return
            try:
                async with asyncio.timeout(self.limits.send_timeout):
                    await flow.ws.send_str(text)
            except TimeoutError:
                logger.info("SIP WebSocket %s:%d not reading: dropping it", *destination)
                await flow.ws.close(code=1008, message=b"not reading")
                report_error(on_error, TransportError("WebSocket send timed out"))
            except (ConnectionError, RuntimeError) as exc:
                report_error(on_error, TransportError(f"WebSocket send failed: {exc}"))
