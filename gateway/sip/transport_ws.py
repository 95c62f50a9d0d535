"""SIP over WebSocket (RFC 7118): the transport JsSIP and SIP.js speak, on the gateway's HTTP listener.

This module is the SIP side of it and has no socket code (only gateway/signaling imports aiohttp): the
WebSocket upgrade and the socket's life run on the signaling layer's shared session loop
(gateway/signaling/sip_ws.py, wired to this transport by gateway/app.py; neither imports the other),
which hands each open WebSocket over as a `FlowSocket` (`open_flow`), its messages (`received`) and
its end (`flow_closed`). There the upgrade is refused (400) without
subprotocol ``sip`` (RFC 7118 §4.1), (403) from a foreign Origin, (503) while draining and (429) past
the caps of flows, as every dialect's are (docs/signaling.md, *Limits*).

Each WebSocket message is one whole SIP message (§5: no Content-Length needed, so ``Framing.DATAGRAM``
on a reliable transport). A connection is a *flow* (RFC 5626): it is keyed by the browser's (ip, port),
which is what the transaction layer sees as the :class:`~gateway.sip.transports.transport.Source` and uses to send
back; a request to a browser (an inbound call, a BYE) goes over the flow its REGISTER or INVITE came
on, since a browser cannot be connected to. When a flow closes, ``on_closed`` callbacks learn of it
(the registrar drops its bindings, the calls on it end).

The transport never opens connections; sending to an address without an open flow reports a
:class:`~sipcore.errors.TransportError` to ``on_error`` (a transaction then fails with 503/408).
Text frames carry the messages (what both libraries send and expect); binary frames are accepted too.
A double CRLF is a keep-alive ping answered with a CRLF pong (RFC 5626 §4.4.1, as SIP.js's
keepAliveInterval expects); WebSocket pings (the session loop's heartbeat) close a flow whose browser
stopped answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol

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

__all__ = ["FlowClosed", "FlowSocket", "WsTransport"]

logger = logging.getLogger(__name__)

CLOSE_GOING_AWAY: Final = 1001
FlowClosed = Callable[[Address], None]


class FlowSocket(Protocol):
    """One open WebSocket as the transport sees it (the signaling layer's session socket)."""

    @property
    def closed(self) -> bool: ...

    async def send_text(self, text: str) -> bool:
        """Write one message whole (one writer at a time); False when it could not be."""
        ...

    async def close(self, code: int, message: bytes = b"") -> None: ...

    def authenticated(self) -> None:
        """A digest succeeded on this flow: the session loop's authentication deadline ends for it."""
        ...


class WsTransport:
    """The WS (or WSS) transport: every SIP-over-WebSocket flow on the HTTP listener."""

    def __init__(self, secure: bool, local: Address) -> None:
        self._name = "WSS" if secure else "WS"
        self._local = local
        self._on_receive: ReceiveCallback | None = None
        self._flows: dict[Address, FlowSocket] = {}
        self._closed_callbacks: list[FlowClosed] = []
        self._closing = False
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
        if flow is None or flow.closed:
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
                await flow.close(CLOSE_GOING_AWAY, b"gateway shutting down")

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

    @property
    def accepting(self) -> bool:
        """Whether a new flow may open: the transaction layer is attached and the transport not closing."""
        return self._on_receive is not None and not self._closing

    # --- the flows, from the signaling layer's socket loop ---------------------------------------
    def open_flow(self, peer: tuple[object, ...], socket: FlowSocket) -> Address:
        """A WebSocket from socket address `peer` is open: its flow, keyed by (ip, port)."""
        address = normalize_address(peer)
        self._flows[address] = socket
        logger.info("SIP WebSocket flow from %s:%d", *address)
        return address

    def authenticated(self, address: Address) -> None:
        """A request on the flow from `address` passed digest authentication (gateway/websip): the flow
        is no longer closed at the authentication deadline (sip.websocket.auth_timeout)."""
        flow = self._flows.get(address)
        if flow is not None:
            flow.authenticated()

    def received(self, address: Address, data: bytes) -> None:
        """One WebSocket message of the flow from `address`: a SIP message, or a keep-alive."""
        if data.strip() == b"":
            if data == b"\r\n\r\n" and address in self._flows:  # keep-alive ping (RFC 5626 §4.4.1)
                self._spawn(self._write(self._flows[address], address, "\r\n", None))  # pong: CRLF
            return
        if self._on_receive is not None:
            self._on_receive(data, Source(self, *address))

    def flow_closed(self, address: Address) -> None:
        if self._flows.pop(address, None) is None:
            return
        logger.info("SIP WebSocket flow from %s:%d closed", *address)
        for callback in list(self._closed_callbacks):
            try:
                callback(address)
            except Exception:
                logger.exception("flow-closed callback failed")

    async def _write(
        self, flow: FlowSocket, destination: Address, text: str, on_error: ErrorCallback | None
    ) -> None:
        if flow.closed:
            report_error(on_error, TransportError(f"WebSocket flow to {destination[0]} closed"))
            return
        try:
            sent = await flow.send_text(text)
        except (ConnectionError, RuntimeError) as exc:
            report_error(on_error, TransportError(f"WebSocket send failed: {exc}"))
            return
        if not sent:  # the browser stopped reading (send_timeout): the flow was dropped
            report_error(on_error, TransportError(f"WebSocket send to {destination[0]} failed"))
