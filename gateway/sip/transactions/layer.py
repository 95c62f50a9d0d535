"""The transaction layer (RFC 3261 §17, §18): the asyncio shell around the sans-I/O transactions.

Bytes come in from a transport; the layer parses them and routes each message:

- a UDP datagram over ``max_datagram_size`` (16 KiB) is dropped; a request from a source the policy
  does not trust is refused (403) on a light view of its headers, before the full parse
  (:meth:`~gateway.sip.transactions.server.ServerSide.prefilter`);
- unparseable: the error response of :func:`error_response` goes back statelessly to the source
  address (never along the Via: a message that did not parse gets no say in where its answer
  goes), or the message is dropped (a response, an ACK, a request too broken to answer); a bug
  in the parser costs that message only;
- a response: to the client transaction its branch and CSeq method name (§17.1.3); a 2xx to
  INVITE that matches none goes to the TU (``on_stray_response``), anything else is dropped;
- a request that matches a server transaction (§17.2.3) is a retransmission, or an ACK to a
  non-2xx final: the transaction absorbs it or resends its last response;
- an ACK matching nothing is an ACK to a 2xx: it stops the 2xx retransmission it answers and
  goes to the TU (``on_ack``);
- a new request passes the :class:`~gateway.sip.transactions.policy.SourcePolicy` (else a stateless 403 to
  the source address),
  then: CANCEL is answered by the layer (200 and ``on_cancel`` when it matches a pending INVITE,
  §9.2, else 481); Max-Forwards 0 gets 483 (but OPTIONS, §11); a merged request (same From tag,
  Call-ID and CSeq as a live transaction, no To tag, another branch, §8.2.2.2) gets 482; any
  other one gets a server transaction (INVITE: 100 Trying at once) and goes to the TU
  (``on_request``), with received/rport on its top Via (§18.2.1; a ``received`` the sender
  wrote is overwritten or removed).

Outgoing requests go to the next hop located by the :class:`~gateway.sip.transports.resolver.Resolver` (RFC 3263:
NAPTR, SRV, A/AAAA), failing over to the next one on a timeout, transport error or 503 (§4.3); they get a fresh top Via (transport, sent-by from ``public_address`` or the listen
address, ``rport``, a new branch) and a client transaction; the TU awaits the responses on the
returned :class:`~gateway.sip.transactions.client.ClientTransaction`. Each transaction's actions are run
here: Send through its transport, timers on the :class:`~gateway.sip.transactions.scheduler.Scheduler`,
PassUp to the TU or the handle, Notify as a synthetic 408/503, Terminated forgets it.

The two sides live in their own modules: :class:`~gateway.sip.transactions.server.ServerSide` (incoming
requests) and :class:`~gateway.sip.transactions.client.ClientSide` (responses, and what the TU sends); this
one owns the transports, the dispatch, the action loop and the lifecycle (RUNNING -> CLOSING ->
CLOSED).
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import ssl
from collections.abc import Callable, Collection, Coroutine, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from gateway.fd_reserve import FdReserve
from gateway.listen import ListenError
from gateway.sip.transactions.client import ClientSide, ClientTransaction
from gateway.sip.transactions.policy import SourcePolicy, TrustedSources
from gateway.sip.transactions.scheduler import LoopScheduler, Scheduler
from gateway.sip.transactions.server import Entry, ServerSide
from gateway.sip.transactions.stats import (
    SipStats,
    SourceWarnings,
    first_line_label,
    message_label,
    retransmission,
    retransmitting,
)
from gateway.sip.transactions.tu import TransactionUser
from gateway.sip.transports.resolver import Resolver
from gateway.sip.transports.transport import Source, Transport, UdpTransport, address_family, format_host
from gateway.sip.transports.transport_tcp import DEFAULT_TCP_LIMITS, TcpLimits, TcpTransport, TlsTransport
from sipcore.errors import CertificateRejected, SIPError, TransportError, Unreachable
from sipcore.location.routing import Address, Target
from sipcore.syntax.headers import Via, new_branch
from sipcore.syntax.message import Message, Request, Response, add_received, make_response
from sipcore.syntax.multipart import with_sdp_body
from sipcore.syntax.parser import DEFAULT_LIMITS, Framing, ParserLimits, parse_message
from sipcore.transaction import (
    Action,
    CancelTimer,
    Event,
    Notice,
    Notify,
    PassUp,
    Send,
    StartTimer,
    Terminated,
    Timer,
    TimerConfig,
    TransactionError,
)

if TYPE_CHECKING:
    from gateway.config.schema import Config

__all__ = ["Entry", "LayerState", "TransactionLayer"]

logger = logging.getLogger(__name__)

# STOPPING: the gateway is shutting down (``begin_shutdown``): transactions still run (the calls' BYEs
# and their answers), but a hop that fails then is not blocklisted and its failure says "not answered
# before the shutdown" (a stop that cut a BYE is no evidence against the hop: issue 67 item 13)
LayerState = enum.Enum("LayerState", "RUNNING STOPPING CLOSING CLOSED")
_LIVE = frozenset({LayerState.RUNNING, LayerState.STOPPING})  # sending and receiving
DEFAULT_TIMERS = TimerConfig()
_FAILURE_STATUS = {Notice.TIMEOUT: 408, Notice.TRANSPORT_ERROR: 503}
# RFC 3261 §18.1.1: requests much over the path MTU go over TCP; 16 KiB is plenty for UDP and
# bounds what an unauthenticated datagram can make the parser do.
DEFAULT_MAX_DATAGRAM = 16384
# (direction "in"/"out", the bytes, the transport, the peer's address): each message received or sent,
# for the per-call traces (gateway/ops/trace_wiring.py); None (the default) costs one attribute test
SipTap = Callable[[str, bytes, Transport, Address], None]


def _first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0][:120].decode("utf-8", "replace")


class TransactionLayer:
    """Transports, transactions and their timers, between the wire and the TU."""

    def __init__(
        self,
        tu: TransactionUser,
        *,
        policy: SourcePolicy,
        timers: TimerConfig = DEFAULT_TIMERS,
        scheduler: Scheduler | None = None,
        public_address: tuple[str, int | None] | None = None,
        user_agent: str | None = None,
        limits: ParserLimits = DEFAULT_LIMITS,
        supported: Collection[str] = frozenset(),
        default_transport: str = "UDP",
        tcp_idle_timeout: float = 300.0,
        tcp_limits: TcpLimits = DEFAULT_TCP_LIMITS,
        max_datagram_size: int = DEFAULT_MAX_DATAGRAM,
        tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
        tls_names: Mapping[str, str] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.tu = tu
        self.resolver = resolver or Resolver()  # RFC 3263 location of next hops (DNS NAPTR/SRV/A)
        self.tls = tls  # server and client contexts of TLS transports (gateway/tls.py)
        self.tls_names = dict(tls_names or {})  # host in a target -> the name its certificate carries
        self.policy = policy
        self.timers = timers
        self.scheduler: Scheduler = scheduler or LoopScheduler()
        self.public_address = public_address
        self.user_agent = user_agent
        self.limits = limits
        self.supported = frozenset(supported)
        self.default_transport = default_transport
        self.tcp_idle_timeout = tcp_idle_timeout
        self.tcp_limits = tcp_limits
        self.fd_reserve: FdReserve | None = None  # descriptors kept for media (gateway/fd_reserve.py)
        self.max_datagram_size = max_datagram_size
        self.state = LayerState.RUNNING
        self.stats = SipStats()  # read by the metrics collector (gateway/ops/metrics.py)
        self._refused = SourceWarnings(logger, "SIP request refused by sip.trusted_sources")
        self.transports: list[Transport] = []
        self.tap: SipTap | None = None  # every message in and out (per-call traces), when set
        self.client = ClientSide(self)
        self.server = ServerSide(self)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def from_config(
        cls,
        config: Config,
        tu: TransactionUser,
        *,
        policy: SourcePolicy | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        scheduler: Scheduler | None = None,
    ) -> TransactionLayer:
        """A layer listening on every ``sip.listen`` address, trusting ``sip.trusted_sources``
        (or only the PBX), writing ``sip.public_address`` into Via."""
        sip = config.sip
        public = sip.public_address
        layer = cls(
            tu,
            policy=policy or await TrustedSources.from_config(sip, config.pbx),
            timers=timers,
            scheduler=scheduler,
            public_address=(public.host, public.port) if public is not None else None,
            user_agent=sip.user_agent,
            default_transport=config.pbx.transport.value.upper(),
        )
        try:
            for listen in sip.listen:
                await layer.listen(listen.transport.value, listen.host, listen.port)
        except BaseException:
            await layer.close()
            raise
        return layer

    def _set_state(self, new: LayerState) -> None:
        logger.info("transaction layer: %s -> %s", self.state.name, new.name)
        self.state = new

    # --- transports ------------------------------------------------------------------------------
    async def listen(self, transport: str, host: str, port: int) -> Transport:
        """Open a transport ("udp"/"tcp", any case) on ``host:port`` (0: a free port)."""
        name = transport.upper()
        opened: Transport
        if name == "UDP":
            try:
                opened = await UdpTransport.bind(
                    host, port, self.receive, on_unreachable=self.connection_closed
                )
            except OSError as exc:  # "SIP udp 127.0.0.1:5060: address already in use"
                raise ListenError(f"SIP {transport.lower()}", host, port, exc) from exc
        elif name in ("TCP", "TLS"):
            if name == "TLS" and self.tls is None:
                raise ValueError("a TLS transport needs certificates (sip.tls)")
            kind = TlsTransport if name == "TLS" else TcpTransport
            try:
                opened = await kind.listen(
                    host,
                    port,
                    self.receive,
                    idle_timeout=self.tcp_idle_timeout,
                    limits=self.limits,
                    on_closed=self.connection_closed,
                    tcp_limits=self.tcp_limits,
                    tls=self.tls if name == "TLS" else None,
                    backlog=self.fd_reserve.accept_burst if self.fd_reserve is not None else 100,
                )
            except OSError as exc:
                raise ListenError(f"SIP {transport.lower()}", host, port, exc) from exc
            opened.trusts = getattr(self.policy, "trusts", None)  # who gets the reserved connections
            opened.fd_reserve = self.fd_reserve
        else:
            raise ValueError(f"transport {transport!r} is not supported (udp, tcp, tls)")
        if self.public_address is None and ipaddress.ip_address(opened.local[0]).is_unspecified:
            logger.warning(
                "SIP %s listens on %s without sip.public_address: Via would carry an unusable address",
                name,
                opened.local[0],
            )
        self.attach(opened)
        return opened

    def attach(self, transport: Transport) -> None:
        """Use a transport opened elsewhere (its receive callback must be :meth:`receive`)."""
        self.transports.append(transport)

    def transport_for(self, name: str, host: str) -> Transport | None:
        """The first transport called ``name`` whose address family can reach ``host``."""
        try:
            family = address_family(host)
        except ValueError:
            return None
        for transport in self.transports:
            local = transport.local[0]
            # A socket bound to "::" is dual-stack on Linux: it reaches IPv4 peers too.
            if transport.name == name and (address_family(local) == family or local == "::"):
                return transport
        return None

    def via_for(self, transport: Transport) -> Via:
        """A top Via for a new client transaction: sent-by, rport (RFC 3581 §3), fresh branch."""
        host, port = transport.local
        if self.public_address is not None:
            host = self.public_address[0]
            port = self.public_address[1] or port
        return Via(transport.name, format_host(host), port, (("rport", None), ("branch", new_branch())))

    # --- inbound ---------------------------------------------------------------------------------
    def receive(self, data: bytes, source: Source) -> None:
        """Transport callback: one whole message from ``source``."""
        if self.state not in _LIVE:
            return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("recv %d bytes from %s: %s", len(data), source, _first_line(data))
        if self.tap is not None:
            self.tap("in", data, source.transport, source.address)
        transport = source.transport  # a WebSocket's messages are bounded by its own limit (64 KiB)
        if (
            transport.framing is Framing.DATAGRAM
            and not transport.reliable
            and len(data) > self.max_datagram_size
        ):
            logger.info(
                "dropped %d-byte datagram from %s (limit %d)", len(data), source, self.max_datagram_size
            )
            return
        if not self.server.prefilter(data, source):
            self.stats.refusals["untrusted"] += 1
            self._refused.seen(source.host, _first_line(data))
            return
        try:
            message = parse_message(
                data, framing=source.transport.framing, limits=self.limits, supported=self.supported
            )
        except SIPError as exc:
            self.stats.parse_errors[self._source_class(source)] += 1
            self.server.parse_error(exc, source)
            return
        except Exception:
            # A parser bug must cost this message only, never the connection it came on.
            logger.exception("cannot parse a message from %s: dropped", source)
            return
        self.stats.received[(*message_label(message), source.transport.name)] += 1
        # a SIP-I/SIP-T body (SDP + ISUP, RFC 3204) is read as its SDP from here on (RFC 5621 §3.1)
        message = with_sdp_body(message)
        try:
            if isinstance(message, Response):
                self.client.receive(message, source)
            else:
                self.server.receive(add_received(message, source.address), source)
        except SIPError as exc:
            logger.debug("dropped message from %s: %s", source, exc.detail)
        except Exception:
            # A bug must cost one message, not the connection or the datagram endpoint.
            logger.exception("error handling a message from %s", source)

    # --- outbound --------------------------------------------------------------------------------
    async def request(self, request: Request, destination: Target | None = None) -> ClientTransaction:
        """Send ``request`` in a new client transaction to ``destination`` (default: the first
        Route or the Request-URI), with our top Via (any Via it has is replaced), Max-Forwards 70
        and User-Agent when missing. A routing failure gives a handle already failed with 503."""
        self._check_running()
        return await self.client.request(request, destination)

    def cancel(self, handle: ClientTransaction) -> None:
        """CANCEL a pending INVITE (RFC 3261 §9.1); same as ``handle.cancel()``."""
        self.client.cancel(handle)

    async def send_stateless(self, message: Message, destination: Target | Source | None = None) -> Message:
        """Send outside any transaction: an ACK to a 2xx (our Via is added when it has none) or a
        request the TU retransmits, or a response (``destination``: the Source of its request).
        Returns the message as sent, to be resent as it is."""
        self._check_running()
        return await self.client.send_stateless(message, destination)

    def _source_class(self, source: Source) -> str:
        trusts = getattr(self.policy, "trusts", None)
        return "trusted" if trusts is not None and trusts(source.host) else "untrusted"

    def send(self, transport: Transport, data: bytes, address: Address, entry: Entry | None = None) -> None:
        self.stats.sent[(*first_line_label(data), transport.name)] += 1
        kind = retransmitting()
        if kind is not None:
            self.stats.retransmissions[(kind, transport.name)] += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "send %d bytes to %s %s:%d: %s", len(data), transport.name, *address, _first_line(data)
            )
        if self.tap is not None:
            self.tap("out", data, transport, address)
        if entry is not None:
            transport.send(data, address, partial(self._transport_error, entry, data, address))
        else:
            transport.send(data, address, self._stateless_error)

    def _stateless_error(self, exc: Exception) -> None:
        logger.debug("stateless send failed: %s", exc)

    @property
    def running(self) -> bool:
        """Whether messages go out and come in (also while the gateway is stopping)."""
        return self.state in _LIVE

    @property
    def stopping(self) -> bool:
        return self.state is LayerState.STOPPING

    def begin_shutdown(self) -> None:
        """The gateway is stopping: what fails from now on was cut by the stop (see LayerState)."""
        if self.state is LayerState.RUNNING:
            self._set_state(LayerState.STOPPING)

    def _check_running(self) -> None:
        if self.state not in _LIVE:
            raise TransportError(f"transaction layer is {self.state.name}")

    # --- running transactions --------------------------------------------------------------------
    def handle(self, entry: Entry, event: Event, source: Source | None = None) -> None:
        """Feed an event to a transaction and run its actions; illegal events from the network
        are dropped (a broken peer must not break the layer)."""
        if not entry.live:
            return
        try:
            actions = entry.txn.handle(event, self.scheduler.now())
        except TransactionError as exc:
            logger.debug("%r: %s", entry.txn, exc.detail)
            return
        self.run(entry, actions, source)

    def run(self, entry: Entry, actions: list[Action], source: Source | None = None) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.send(entry.transport, action.data, entry.destination, entry)
            elif isinstance(action, StartTimer):
                old = entry.timers.pop(action.timer, None)
                if old is not None:
                    old.cancel()
                entry.timers[action.timer] = self.scheduler.call_at(
                    action.deadline, partial(self._fire, entry, action.timer)
                )
            elif isinstance(action, CancelTimer):
                handle = entry.timers.pop(action.timer, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, PassUp):
                self._pass_up(entry, action.message, source)
            elif isinstance(action, Notify):
                self._notify(entry, action.notice)
            elif isinstance(action, Terminated):
                self.forget(entry)

    def _pass_up(self, entry: Entry, message: Message, source: Source | None) -> None:
        if isinstance(message, Request):
            self.server.pass_up(entry, message, source)
        else:
            self.client.pass_up(entry, message, source)

    def _notify(self, entry: Entry, notice: Notice) -> None:
        if entry.client is not None:
            if self.client.current(entry) is None:
                return  # an attempt left behind by a failover (RFC 3263 §4.3)
            failure = entry.failure if notice is Notice.TRANSPORT_ERROR else None
            reason = failure.reason_phrase if isinstance(failure, CertificateRejected | Unreachable) else None
            response = make_response(entry.txn.request, _FAILURE_STATUS[notice], reason)
            entry.client.fail(response, notice, shutdown=self.stopping)
        else:
            if entry.incoming is not None:
                entry.incoming.failure = notice
            logger.info("sip_call_id=%s %s server transaction: %s", entry.txn.request.call_id,
                        entry.txn.request.method, notice.value)  # fmt: skip

    def _fire(self, entry: Entry, timer: Timer) -> None:
        entry.timers.pop(timer, None)
        # Timer A, E (a request), G (a response): a Send it causes is a retransmission
        with retransmission("request" if entry.client is not None else "response"):
            self.handle(entry, Event.timer(timer))

    def _transport_error(self, entry: Entry, data: bytes, address: Address, exc: Exception) -> None:
        logger.debug("transport error: %s", exc)
        if not entry.live:
            return
        if address != entry.destination:  # an earlier failure already moved the transaction
            self.send(entry.transport, data, entry.destination, entry)
        elif entry.fallback is not None:
            entry.destination, entry.fallback = entry.fallback, None
            logger.debug("%r: connection gone, responding to %s:%d", entry.txn, *entry.destination)
            self.send(entry.transport, data, entry.destination, entry)
        else:
            if isinstance(exc, TransportError):
                entry.failure = exc
            self.handle(entry, Event.transport_error())

    def connection_closed(
        self, transport: Transport, address: Address, error: TransportError | None = None
    ) -> None:
        """A stream connection closed, or ICMP said a UDP destination is unreachable (RFC 3261 §18.4):
        client transactions sent over it fail now with a transport
        error (503, saying why when it was a rejected certificate) rather than after Timer B/F, or
        never for an INVITE already Proceeding."""
        for entry in list(self.client.entries.values()):
            if entry.transport is transport and entry.destination == address:
                entry.failure = error
                self.handle(entry, Event.transport_error())

    def forget(self, entry: Entry) -> None:
        for handle in entry.timers.values():
            handle.cancel()
        entry.timers.clear()
        if entry.client is not None:
            self.client.forget(entry)
        else:
            self.server.forget(entry)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Live transactions (client and server)."""
        return len(self.client.entries) + len(self.server.entries)

    async def close(self) -> None:
        """Stop timers and TU tasks, close the transports; idempotent."""
        if self.state not in _LIVE:
            return
        self._set_state(LayerState.CLOSING)
        self.client.close()
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for transport in self.transports:
            await transport.close()
        self._set_state(LayerState.CLOSED)
