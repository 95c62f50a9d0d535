"""The client side of the transaction layer (RFC 3261 §8.1, §9.1, §17.1, §18.1).

:class:`ClientSide` keeps the client transactions by key and sends what the TU sends: requests
in new client transactions (with our top Via), CANCELs, and stateless messages (ACK to 2xx).

``handle = await layer.request(request)`` starts a client transaction; the responses can then be
awaited either as an async iterator (provisional responses, then the final one) or with
:meth:`ClientTransaction.final_response`. When the transaction fails locally the final response
is synthetic, as pjsip and Kamailio report it: 408 Request Timeout after Timer B/F, 503 Service
Unavailable on a transport error; :attr:`ClientTransaction.failure` then says which.

Failover (RFC 3263 §4.3): the next hop is located through DNS (:class:`~gateway.sip.transports.resolver.Resolver`)
into an ordered list; a request that times out, meets a transport error (ICMP unreachable, a refused
connection, :class:`~sipcore.errors.Unreachable`) or gets 503 is sent again as a new transaction (same
request, new Via branch) to the next hop of the list. The handle reports only the last attempt's
outcome; no failover once a CANCEL was asked for or a provisional response other than 100 arrived.

Dead destinations are remembered (Kamailio's dst_blocklist): a hop that met a transport error, let an
INVITE time out without answering anything (not even 100: a proxy sends it at once for an INVITE, not
for a BYE it forwards to a dead UA), or that the PBX keep-alive found silent (:meth:`ClientSide.suspect`)
goes to the end of every hop list for ``BLOCKLIST_SECONDS``, or until a response comes from it.
Otherwise each call to a name whose first SRV target is blackholed (a host down, a firewall dropping: no
ICMP) would wait Timer B (32 s) before trying the next, and a keep-alive shorter than Timer F would never
reach it. Nothing is removed: blocklisted hops come after the others, the one suspected longest ago
first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING

from gateway.sip.transactions.server import Entry
from gateway.sip.transactions.stats import retransmission
from gateway.sip.transports.transport import Source, Transport, format_host
from gateway.sip.transports.transport_tcp import TcpTransport
from sipcore.errors import SIPError, TransportError
from sipcore.location.routing import Address, Target, request_target, response_address
from sipcore.syntax.message import (
    REASON_PHRASES,
    Headers,
    Message,
    Request,
    Response,
    TransactionKey,
    client_transaction_key,
    make_response,
)
from sipcore.transaction import Event, InviteClientTransaction, NonInviteClientTransaction, Notice

if TYPE_CHECKING:
    from gateway.sip.transactions.layer import TransactionLayer

__all__ = ["ClientSide", "ClientTransaction", "build_cancel"]

logger = logging.getLogger(__name__)


def build_cancel(request: Request) -> Request:
    """CANCEL for ``request`` (RFC 3261 §9.1): same Request-URI, Call-ID, From, To, CSeq number,
    the top Via only (so the same branch) and the same Route headers; method CANCEL."""
    items: list[tuple[str, str]] = []
    via = request.headers.get("Via")
    if via is not None:
        items.append(("Via", via))
    items.append(("Max-Forwards", "70"))
    for name in ("From", "To", "Call-ID"):
        value = request.headers.get(name)
        if value is not None:
            items.append((name, value))
    cseq = request.cseq
    if cseq is not None:
        items.append(("CSeq", f"{cseq.seq} CANCEL"))
    items += [("Route", value) for value in request.headers.get_all("Route")]
    return Request("CANCEL", request.uri, Headers(tuple(items)))


class ClientTransaction:
    """Responses of one outgoing request, as they arrive."""

    def __init__(
        self,
        request: Request,
        transport: Transport | None,
        destination: Address | None,
        canceller: Callable[[ClientTransaction], None],
        failover: Callable[[ClientTransaction, Response, Notice | None], bool] | None = None,
    ) -> None:
        self.request = request
        self.transport = transport
        self.destination = destination
        self.provisional: Response | None = None
        self.final: Response | None = None
        self.failure: Notice | None = None
        self.cancel_requested = False
        self.cancel_transaction: ClientTransaction | None = None
        self._canceller = canceller
        self._failover = failover
        # RFC 3263 §4.3: where the request goes next when this attempt fails (see ClientSide.failover)
        self.alternatives: list[tuple[Transport, Address]] = []
        self.attempts = 1
        self._queue: asyncio.Queue[Response] = asyncio.Queue()
        self._final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        state = self.final.status if self.final is not None else "pending"
        return f"<ClientTransaction {self.request.method} {self.request.call_id} {state}>"

    @property
    def method(self) -> str:
        return self.request.method

    async def final_response(self) -> Response:
        """The final response (possibly a synthetic 408/503), skipping provisional ones."""
        return await asyncio.shield(self._final)

    def __aiter__(self) -> AsyncIterator[Response]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[Response]:
        while True:
            response = await self._queue.get()
            yield response
            if response.status >= 200:
                return

    def cancel(self) -> None:
        """Cancel an INVITE (RFC 3261 §9.1): the CANCEL goes out once a provisional response has
        arrived (at once if one has); nothing happens once the final response is in."""
        self._canceller(self)

    # Called by the layer.
    def deliver(self, response: Response) -> None:
        if self.final is not None:
            return
        if response.status == 503 and self._failover is not None and self._failover(self, response, None):
            return
        if response.status < 200:
            self.provisional = response
        else:
            self.final = response
            self._final.set_result(response)
        self._queue.put_nowait(response)

    def fail(self, response: Response, notice: Notice, *, shutdown: bool = False) -> None:
        """The request failed locally (``response`` is synthetic); ``shutdown``: cut by the gateway's
        stop, which the log says (a BYE at Ctrl-C to a phone that stopped with it: issue 67 item 13)."""
        if self.final is None:
            if not shutdown:
                logger.info("sip_call_id=%s %s failed: %s", self.request.call_id, self.method, notice.value)
            if self._failover is not None and self._failover(self, response, notice):
                return
            if shutdown:
                where = ""
                if self.transport is not None and self.destination is not None:
                    host, port = self.destination[:2]
                    where = f" to {self.transport.name} {format_host(host)}:{port}"
                said = response.reason != REASON_PHRASES.get(
                    response.status
                )  # e.g. "Destination Unreachable..."
                cause = notice.value + (f": {response.reason}" if said else "")
                logger.info(
                    "sip_call_id=%s %s%s not answered before the shutdown (%s)",
                    self.request.call_id, self.method, where, cause,
                )  # fmt: skip
            self.failure = notice
            self._failover = None
            self.deliver(response)


BLOCKLIST_SECONDS = 60.0  # how long a dead hop goes last (Kamailio's dst_blocklist_expire default)
BLOCKLIST_SIZE = 1024  # hops remembered at most (the oldest go first)


class ClientSide:
    """Client transactions by key (RFC 3261 §17.1.3), and what the TU sends (§8.1, §9.1, §18.1)."""

    def __init__(self, layer: TransactionLayer) -> None:
        self.layer = layer
        self.entries: dict[TransactionKey, Entry] = {}
        # hops that did not answer (module note): (transport name, address) -> until (scheduler time)
        self.blocklist: dict[tuple[str, Address], float] = {}

    # inbound
    def receive(self, response: Response, source: Source) -> None:
        try:
            key = client_transaction_key(response)
        except SIPError as exc:
            logger.debug("dropped response from %s: %s", source, exc.detail)
            return
        entry = self.entries.get(key)
        if entry is None:
            self.stray(response, source)
            return
        ours, theirs = entry.txn.request.top_via, response.top_via
        if ours is not None and theirs is not None and ours.sent_by != theirs.sent_by:
            # RFC 3261 §18.1.2: a response whose top Via sent-by is not ours is discarded.
            logger.debug("dropped response from %s: Via sent-by %s is not ours", source, theirs.sent_by)
            return
        if entry.txn.state.name == "COMPLETED":  # a final response again: its ACK is resent (§17.1.1.2)
            with retransmission("ack"):
                self.layer.handle(entry, Event.received(response), source)
            return
        self.layer.handle(entry, Event.received(response), source)

    def stray(self, response: Response, source: Source) -> None:
        cseq = response.cseq
        if 200 <= response.status < 300 and cseq is not None and cseq.method == "INVITE":
            self.layer.tu.on_stray_response(response, source)
        else:
            logger.debug("dropped stray %d %s from %s", response.status, response.call_id, source)

    def pass_up(self, entry: Entry, response: Response, source: Source | None) -> None:
        if self.blocklist:  # it answers after all (a late response to an attempt given up on)
            self.blocklist.pop((entry.transport.name, entry.destination), None)
        handle = self.current(entry)
        if handle is None:
            return
        if handle.final is None:
            handle.deliver(response)
            if response.status < 200 and handle.cancel_requested and handle.cancel_transaction is None:
                self._send_cancel(handle)
        elif source is not None:
            self.stray(response, source)  # 2xx retransmissions and forks while Accepted

    # outbound
    def prepare(self, request: Request, transport: Transport) -> Request:
        """The request with our top Via (replacing any), Max-Forwards and User-Agent."""
        layer = self.layer
        headers = request.headers.remove("Via").prepend("Via", str(layer.via_for(transport)))
        if "Max-Forwards" not in headers:
            headers = headers.add("Max-Forwards", "70")
        if layer.user_agent and "User-Agent" not in headers:
            headers = headers.add("User-Agent", layer.user_agent)
        return Request(request.method, request.uri, headers, request.body)

    async def routes(self, target: Target) -> list[tuple[Transport, Address]]:
        """Where a request to ``target`` may go, in order (RFC 3263 §4): the located hops we have a
        transport for (name and address family). Raises TransportError when there is none."""
        layer = self.layer
        supported = {t.name for t in layer.transports}
        if target.transport_given and target.transport not in supported:
            raise TransportError(f"no {target.transport} transport to reach {target}")
        out: list[tuple[Transport, Address]] = []
        for hop in await layer.resolver.locate(target, supported):
            transport = layer.transport_for(hop.transport, hop.address[0])
            if transport is None:
                continue
            if isinstance(transport, TcpTransport) and transport.client_ssl is not None:
                # RFC 5922 §4.1, §7.1: the certificate must carry the domain the target was reached by
                transport.server_names[hop.address[0]] = layer.tls_names.get(target.host, target.host)
            out.append((transport, hop.address))
        if not out:
            raise TransportError(f"no transport of the right kind and address family for {target}")
        if self.blocklist:
            # stable: DNS's order among the live ones; the blocklisted after them, the one suspected
            # longest ago first (it may be back: every hop blocklisted does not mean DNS's order)
            out.sort(key=self._blocked_until)
        return out

    def _blocked_until(self, route: tuple[Transport, Address]) -> float:
        """0 for a live hop; for a blocklisted one, when its entry ends (sooner: suspected longer ago)."""
        transport, address = route
        return self.blocklist[(transport.name, address)] if self.blocked(transport, address) else 0.0

    def suspect(self, transport: Transport, address: Address) -> None:
        """``address`` did not answer over ``transport``: it goes last in hop lists for a while."""
        key = (transport.name, address)
        if not self.blocked(transport, address):
            logger.info(
                "%s %s:%d did not answer: tried last for %g s", transport.name, *address, BLOCKLIST_SECONDS
            )
        self.blocklist.pop(key, None)
        self.blocklist[key] = self.layer.scheduler.now() + BLOCKLIST_SECONDS
        while len(self.blocklist) > BLOCKLIST_SIZE:
            del self.blocklist[next(iter(self.blocklist))]

    def blocked(self, transport: Transport, address: Address) -> bool:
        key = (transport.name, address)
        until = self.blocklist.get(key)
        if until is None:
            return False
        if until <= self.layer.scheduler.now():
            del self.blocklist[key]
            return False
        return True

    async def route(self, target: Target) -> tuple[Transport, Address]:
        return (await self.routes(target))[0]

    async def request(self, request: Request, destination: Target | None) -> ClientTransaction:
        target = destination or request_target(request, self.layer.default_transport)
        try:
            routes = await self.routes(target)
        except TransportError as exc:
            logger.info("sip_call_id=%s %s not sent: %s", request.call_id, request.method, exc.detail)
            handle = ClientTransaction(request, None, None, self.cancel)
            handle.fail(make_response(request, 503), Notice.TRANSPORT_ERROR)
            return handle
        transport, address = routes[0]
        handle = self.start(self.prepare(request, transport), transport, address, failover=True)
        handle.alternatives = routes[1:]
        return handle

    def start(
        self, request: Request, transport: Transport, address: Address, *, failover: bool = False
    ) -> ClientTransaction:
        """Start a client transaction for a request that already has its top Via; with
        ``failover`` its handle may move to ``alternatives`` (RFC 3263 §4.3)."""
        handle = ClientTransaction(
            request, transport, address, self.cancel, self.failover if failover else None
        )
        self._attempt(handle, request, transport, address)
        return handle

    def _attempt(
        self, handle: ClientTransaction, request: Request, transport: Transport, address: Address
    ) -> None:
        kind = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        txn = kind(request, reliable=transport.reliable, timers=self.layer.timers)
        handle.request, handle.transport, handle.destination = request, transport, address
        entry = Entry(client_transaction_key(request), txn, transport, address, client=handle)
        self.entries[entry.key] = entry
        self.layer.run(entry, txn.start(self.layer.scheduler.now()))

    def current(self, entry: Entry) -> ClientTransaction | None:
        """The handle of ``entry`` when ``entry`` is its live attempt (after a failover, the earlier
        attempts' late responses and failures concern nobody)."""
        handle = entry.client
        if handle is None or client_transaction_key(handle.request) != entry.key:
            return None
        return handle

    def failover(self, handle: ClientTransaction, response: Response, notice: Notice | None) -> bool:
        """RFC 3263 §4.3: after a timeout, a transport error or a 503, send the request again (a new
        transaction: same request, new branch) to the next hop. False when there is none left. A hop
        that answered nothing at all is blocklisted (module note)."""
        if not self.layer.running:
            return False  # closing: the pending transactions fail, their hops did nothing wrong
        # Kamailio's blst_methods_add default: INVITE timeouts only (a proxy answers an INVITE with 100 at
        # once, not a BYE or MESSAGE it forwards to a dead UA); transport errors always
        dead = notice is Notice.TRANSPORT_ERROR or (notice is Notice.TIMEOUT and handle.method == "INVITE")
        if self.layer.stopping:
            dead = False  # the shutdown ends everything: a hop is not kept last for a minute after it
        if dead and handle.provisional is None and handle.transport and handle.destination:
            self.suspect(handle.transport, handle.destination)
        if not handle.alternatives or handle.cancel_requested:
            return False
        provisional = handle.provisional
        if provisional is not None and provisional.status != 100:
            return False  # the request reached a server that is working on it (an early dialog)
        transport, address = handle.alternatives.pop(0)
        why = notice.value if notice is not None else f"{response.status} {response.reason}"
        logger.info(
            "sip_call_id=%s %s to %s:%d failed (%s): trying %s %s:%d (RFC 3263 §4.3)", handle.request.call_id,
            handle.method, *(handle.destination or ("?", 0)), why, transport.name, *address,
        )  # fmt: skip
        handle.attempts += 1
        handle.provisional = None
        self._attempt(handle, self.prepare(handle.request, transport), transport, address)
        return True

    def cancel(self, handle: ClientTransaction) -> None:
        """RFC 3261 §9.1: CANCEL a pending INVITE once a provisional response has arrived."""
        if handle.method != "INVITE" or handle.final is not None or handle.cancel_requested:
            return
        handle.cancel_requested = True
        if handle.provisional is not None:
            self._send_cancel(handle)

    def _send_cancel(self, handle: ClientTransaction) -> None:
        if handle.transport is None or handle.destination is None or not self.layer.running:
            return
        handle.cancel_transaction = self.start(
            build_cancel(handle.request), handle.transport, handle.destination
        )
        # RFC 3261 §9.1: without a final response 64*T1 after the CANCEL, give up on the INVITE.
        scheduler = self.layer.scheduler
        scheduler.call_at(scheduler.now() + 64 * self.layer.timers.t1, partial(self._cancel_expired, handle))

    def _cancel_expired(self, handle: ClientTransaction) -> None:
        if handle.final is not None:
            return
        entry = self.entries.get(client_transaction_key(handle.request))
        if entry is not None and entry.client is handle:
            self.layer.forget(entry)
        handle.fail(make_response(handle.request, 408), Notice.TIMEOUT)

    async def send_stateless(self, message: Message, destination: Target | Source | None) -> Message:
        layer = self.layer
        if isinstance(message, Response):
            if not isinstance(destination, Source):
                raise ValueError("a response is sent back to the Source of its request")
            via = message.top_via
            address = response_address(via, destination) if via is not None else destination.address
            layer.send(destination.transport, message.serialize(), address)
            return message
        if isinstance(destination, Source):
            transport, address = destination.transport, destination.address
        else:
            transport, address = await self.route(destination or request_target(message))
        if message.top_via is None:
            message = self.prepare(message, transport)
        layer.send(transport, message.serialize(), address)
        return message

    def forget(self, entry: Entry) -> None:
        if self.entries.get(entry.key) is entry:
            del self.entries[entry.key]

    def close(self) -> None:
        """Fail what is pending: nobody waits forever on a closed layer."""
        for entry in list(self.entries.values()):
            self.layer.forget(entry)
            if entry.client is not None:
                response = make_response(entry.txn.request, 503)
                entry.client.fail(response, Notice.TRANSPORT_ERROR, shutdown=True)
