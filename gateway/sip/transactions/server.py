"""The server side of the transaction layer: incoming requests (RFC 3261 §8.2, §9.2, §17.2).

:class:`ServerSide` holds the server transactions by key (§17.2.3), the index that finds merged
requests (§8.2.2.2) and the 2xx retransmissions waiting for their ACK (§13.3.1.4); the
:class:`~gateway.sip.transactions.layer.TransactionLayer` hands it every parsed request and every message
that failed to parse. See the layer's module note for the order of the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from gateway.sip.transactions.policy import Accept, Challenge, Reject
from gateway.sip.transactions.scheduler import TimerHandle
from gateway.sip.transactions.stats import retransmission
from gateway.sip.transactions.tu import IncomingRequest, TwoXXRetransmitter
from gateway.sip.transports.transport import Source, Transport
from sipcore.errors import SIPError, TransportError
from sipcore.location.routing import DEFAULT_PORT, Address, response_address
from sipcore.syntax.headers import parse_max_forwards
from sipcore.syntax.message import (
    Request,
    Response,
    TransactionKey,
    error_response,
    make_response,
    server_transaction_key,
)
from sipcore.syntax.parser import peek_request
from sipcore.transaction import (
    Event,
    InviteServerTransaction,
    NonInviteServerTransaction,
    State,
    Timer,
    Transaction,
    TransactionError,
)

if TYPE_CHECKING:
    from gateway.sip.transactions.client import ClientTransaction
    from gateway.sip.transactions.layer import TransactionLayer

__all__ = ["Entry", "ServerSide"]

logger = logging.getLogger(__name__)

MergeKey = tuple[str, str, str, str]  # From tag, Call-ID, CSeq, Request-URI
AckKey = tuple[str, int, str]  # Call-ID, CSeq number, From tag


@dataclass(slots=True, eq=False)
class Entry:
    """A live transaction and what the layer keeps beside it."""

    key: TransactionKey
    txn: Transaction
    transport: Transport
    destination: Address
    timers: dict[Timer, TimerHandle] = field(default_factory=dict)
    incoming: IncomingRequest | None = None  # server transactions handed to the TU
    client: ClientTransaction | None = None  # client transactions
    merge_key: tuple[str, str, str, str] | None = None  # MergeKey
    fallback: Address | None = None  # RFC 3261 §18.2.2: where to connect when the connection is gone
    failure: TransportError | None = None  # why sending failed, when it says more than "503"

    @property
    def live(self) -> bool:
        return self.txn.state is not State.TERMINATED


def _max_forwards(request: Request) -> int | None:
    value = request.headers.get("Max-Forwards")
    try:
        return parse_max_forwards(value) if value is not None else None
    except SIPError:
        return None


def _merge_key(request: Request) -> MergeKey | None:
    """RFC 3261 §8.2.2.2: requests outside a dialog (no To tag) are merged when their From tag,
    Call-ID and CSeq match those of a pending transaction. The Request-URI too: a request that a proxy
    sent on to another URI of ours (a branch of a fork after our own 302, as a gateway cluster asks of
    Kamailio: gateway/cluster/routing.py) is a spiral (RFC 3261 §16.3 item 4: the Request-URI differs), not a merge."""
    to, from_, cseq = request.to, request.from_, request.cseq
    if to is None or to.tag is not None or from_ is None or cseq is None:
        return None
    return from_.tag or "", request.call_id or "", str(cseq), str(request.uri)


def _ack_key(request: Request) -> AckKey | None:
    from_, cseq = request.from_, request.cseq
    if from_ is None or cseq is None:
        return None
    return request.call_id or "", cseq.seq, from_.tag or ""


class ServerSide:
    """Server transactions and the layer's own answers (403, 481, 482, 483, 200 to CANCEL)."""

    def __init__(self, layer: TransactionLayer) -> None:
        self.layer = layer
        self.entries: dict[TransactionKey, Entry] = {}
        self._merge: dict[MergeKey, TransactionKey] = {}
        self._awaiting_ack: dict[AckKey, TwoXXRetransmitter] = {}

    def parse_error(self, exc: SIPError, source: Source) -> None:
        """Answer a message that failed to parse statelessly, or drop it (RFC 3261 §8.2, §18)."""
        response = error_response(exc)
        if response is None or exc.context is None:
            logger.debug("dropped unparseable message from %s: %s", source, exc.detail)
            return
        logger.debug("%d to unparseable request from %s: %s", response.status, source, exc.detail)
        # To the source address only, never to a Via-derived one: the Via of a message that did
        # not parse (and did not pass the policy) is the sender's word, and following it would
        # let anyone aim our responses at a third party (RFC 3581 §4 answers to the source).
        self.layer.send(source.transport, response.serialize(), source.address)

    def prefilter(self, data: bytes, source: Source) -> bool:
        """Refuse a request from a source the policy does not trust before the full parse
        (which an attacker could make expensive): the policy decides on a light view of the
        request (:func:`~sipcore.syntax.parser.peek_request`: start line, Via, From, To, Call-ID,
        CSeq), enough to recognise one inside a dialog. False when the request was answered
        (403, to the source) or dropped; True to go on with the full parse."""
        policy = self.layer.policy
        trusts = getattr(policy, "trusts", None)
        if trusts is not None and trusts(source.host):
            return True
        request = peek_request(data, self.layer.limits)
        if request is None:
            return True
        try:
            if request.from_ is None or request.to is None or request.call_id is None:
                return True
            key = server_transaction_key(request)
        except SIPError:
            return True  # the full parse says what is wrong
        if key in self.entries:
            return True  # a retransmission or an ACK of a transaction already accepted
        try:
            decision = policy.check(request, source)
        except SIPError:
            return True  # a header the policy needed is malformed: the full parse answers it
        if isinstance(decision, Accept):
            return True
        self._refuse(request, source, decision)
        return False

    def _refuse(self, request: Request, source: Source, decision: Reject | Challenge) -> None:
        if request.method == "ACK":
            return
        if isinstance(decision, Challenge):
            # Hook: digest verification of untrusted sources (RFC 3261 §22.3) goes here.
            logger.info("challenge for realm %r not implemented: 403", decision.realm)
            self._stateless(request, source, 403, "Forbidden")
        else:
            self._stateless(request, source, decision.status, decision.reason)

    def receive(self, request: Request, source: Source) -> None:
        try:
            key = server_transaction_key(request)
        except SIPError as exc:
            logger.debug("dropped request from %s: %s", source, exc.detail)
            return
        entry = self.entries.get(key)
        if entry is not None:
            with retransmission("response"):  # a retransmitted request gets the last response again
                self.layer.handle(entry, Event.received(request), source)  # retransmission or ACK
            return
        decision = self.layer.policy.check(request, source)
        if not isinstance(decision, Accept):
            self._refuse(request, source, decision)
            return
        if request.method == "ACK":
            self._ack_to_2xx(request, source)
        elif request.method == "CANCEL":
            self._cancel(request, source, key)
        elif _max_forwards(request) == 0 and request.method != "OPTIONS":
            self._answer(request, source, key, 483)  # RFC 3261 §16.3 step 3 / §8.2 (OPTIONS: §11)
        else:
            self._new(request, source, key)

    def _new(self, request: Request, source: Source, key: TransactionKey) -> None:
        merge_key = _merge_key(request)
        if merge_key is not None:
            other = self._merge.get(merge_key)
            if other is not None and other != key and other in self.entries:
                logger.debug("sip_call_id=%s merged %s from %s: 482", request.call_id, request.method, source)
                self._answer(request, source, key, 482)
                return
        entry = self._create(request, source, key)
        entry.incoming = IncomingRequest(
            request, source, partial(self.respond, entry), partial(self._retransmit_2xx, entry)
        )
        if merge_key is not None:
            entry.merge_key = merge_key
            self._merge[merge_key] = key
        self.layer.run(entry, entry.txn.start(self.layer.scheduler.now()), source)

    def _create(self, request: Request, source: Source, key: TransactionKey, *, trying: bool = True) -> Entry:
        reliable = source.transport.reliable
        timers = self.layer.timers
        if request.method == "INVITE":
            txn: InviteServerTransaction | NonInviteServerTransaction = InviteServerTransaction(
                request, reliable=reliable, timers=timers, send_trying=trying
            )
        else:
            txn = NonInviteServerTransaction(request, reliable=reliable, timers=timers)
        via = request.top_via
        address = response_address(via, source) if via is not None else source.address
        entry = Entry(key, txn, source.transport, address)
        if reliable and via is not None:
            # §18.2.2: if the connection has failed, open one to the received address and the
            # sent-by port.
            fallback = (source.host, via.port or DEFAULT_PORT)
            entry.fallback = fallback if fallback != source.address else None
        self.entries[key] = entry
        return entry

    def _answer(
        self, request: Request, source: Source, key: TransactionKey, status: int, *, to_tag: str | None = None
    ) -> None:
        """Answer in a server transaction of the layer's own (retransmissions get it again)."""
        entry = self._create(request, source, key, trying=False)
        self.layer.run(entry, entry.txn.start(self.layer.scheduler.now()), source)
        self.respond(entry, make_response(request, status, to_tag=to_tag))

    def _stateless(self, request: Request, source: Source, status: int, reason: str) -> None:
        """A policy rejection: to the source address only (a request the policy refused gets no
        say in where its answer goes, RFC 3581 §4)."""
        response = make_response(request, status, reason)
        self.layer.send(source.transport, response.serialize(), source.address)

    def _cancel(self, cancel: Request, source: Source, key: TransactionKey) -> None:
        """RFC 3261 §9.2: 200 to a CANCEL that matches a pending INVITE, else 481."""
        target = self.entries.get(server_transaction_key(cancel, cancelled=True))
        invite = target.incoming if target is not None else None
        if invite is None or invite.method != "INVITE":
            logger.debug("sip_call_id=%s CANCEL from %s matches no INVITE: 481", cancel.call_id, source)
            self._answer(cancel, source, key, 481)
            return
        last = invite.last_response
        to_tag = last.to.tag if last is not None and last.to is not None else None
        self._answer(cancel, source, key, 200, to_tag=to_tag)
        if invite.final is None and not invite.cancelled:
            invite.cancelled = True
            self.layer.tu.on_cancel(invite, cancel)

    def pass_up(self, entry: Entry, request: Request, source: Source | None) -> None:
        if request.method == "ACK":
            self._ack_to_2xx(request, source or (entry.incoming.source if entry.incoming else None))
        elif entry.incoming is not None:
            self.layer.spawn(self._call_tu(entry.incoming))

    async def _call_tu(self, incoming: IncomingRequest) -> None:
        try:
            await self.layer.tu.on_request(incoming)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("sip_call_id=%s TU failed on %s", incoming.request.call_id, incoming.method)
            if incoming.final is None:
                with contextlib.suppress(TransactionError):
                    incoming.reply(500)

    def respond(self, entry: Entry, response: Response) -> None:
        """Send a TU response through its transaction; a 2xx to INVITE whose transaction has
        ended (Timer L) is still sent, statelessly. TransactionError for illegal sends."""
        if not entry.live or self.entries.get(entry.key) is not entry:
            if entry.txn.request.method == "INVITE" and 200 <= response.status < 300:
                self.layer.send(entry.transport, response.serialize(), entry.destination)
            else:
                logger.debug("%r ended: %d not sent", entry.txn, response.status)
            return
        actions = entry.txn.handle(Event.send(response), self.layer.scheduler.now())
        self.layer.run(entry, actions)

    def _retransmit_2xx(self, entry: Entry, response: Response) -> TwoXXRetransmitter:
        layer = self.layer
        waiter = TwoXXRetransmitter(
            partial(self.respond, entry, response),
            layer.scheduler,
            layer.timers,
            reliable=entry.transport.reliable,
            resend=partial(self._resend_2xx, entry, response),
        )
        key = _ack_key(entry.txn.request)
        if key is not None:
            old = self._awaiting_ack.get(key)
            if old is not None:
                old.cancel()
            self._awaiting_ack[key] = waiter
            waiter.done.add_done_callback(lambda _: self._ack_wait_done(key, waiter))
        waiter.start()
        return waiter

    def _resend_2xx(self, entry: Entry, response: Response) -> None:
        with retransmission("2xx"):
            self.respond(entry, response)

    def _ack_wait_done(self, key: AckKey, waiter: TwoXXRetransmitter) -> None:
        if self._awaiting_ack.get(key) is waiter:
            del self._awaiting_ack[key]

    def _ack_to_2xx(self, ack: Request, source: Source | None) -> None:
        key = _ack_key(ack)
        waiter = self._awaiting_ack.pop(key, None) if key is not None else None
        if waiter is not None:
            waiter.ack()
        if source is not None:
            self.layer.tu.on_ack(ack, source)

    def forget(self, entry: Entry) -> None:
        if self.entries.get(entry.key) is entry:
            del self.entries[entry.key]
        if entry.merge_key is not None and self._merge.get(entry.merge_key) == entry.key:
            del self._merge[entry.merge_key]

    def close(self) -> None:
        for waiter in list(self._awaiting_ack.values()):
            waiter.cancel()
        self._awaiting_ack.clear()
