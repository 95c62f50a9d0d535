"""The boundary between the transaction layer and the transaction user (the user agent core).

The layer calls a :class:`TransactionUser` with each new request (as an
:class:`IncomingRequest`, whose ``respond`` goes through its server transaction), with ACKs
that match no transaction (ACKs to 2xx, RFC 3261 §17.2.3, §13.3.1.4), with 2xx responses to
INVITE that match no client transaction any more (retransmissions by the far UAS, RFC 3261
§13.2.2.4: the UAC core answers each with its ACK again), and with CANCELs that hit a pending
INVITE (the layer has answered the CANCEL 200; the user agent answers the INVITE 487, §9.2).

:class:`TwoXXRetransmitter` is the UAS core's 2xx retransmission (RFC 3261 §13.3.1.4):
resend the 2xx at T1, doubling up to T2, until the ACK arrives or 64*T1 has passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from gateway.sip.transactions.scheduler import Scheduler, TimerHandle
from gateway.sip.transports.transport import Source
from sipcore.syntax.message import Request, Response, make_response
from sipcore.transaction import Notice, TimerConfig

__all__ = ["IncomingRequest", "TransactionUser", "TwoXXRetransmitter"]

logger = logging.getLogger(__name__)


class TransactionUser(Protocol):
    async def on_request(self, incoming: IncomingRequest) -> None:
        """A new request (not ACK, not a retransmission). Answer with ``incoming.respond``;
        an exception raised before a final response was sent gets a 500."""

    def on_cancel(self, incoming: IncomingRequest, cancel: Request) -> None:
        """``cancel`` (already answered 200) cancels the pending INVITE ``incoming``: answer it
        487 Request Terminated (RFC 3261 §9.2). ``incoming.cancelled`` is set before this call,
        which may come before ``on_request`` has run."""

    def on_ack(self, ack: Request, source: Source) -> None:
        """An ACK that belongs to no INVITE server transaction: an ACK to a 2xx."""

    def on_stray_response(self, response: Response, source: Source) -> None:
        """A 2xx to INVITE with no client transaction waiting for it (a retransmission after
        the first 2xx, or a 2xx from another fork): send the ACK again (RFC 3261 §13.2.2.4)."""


class TwoXXRetransmitter:
    """Retransmit a 2xx to INVITE until its ACK (RFC 3261 §13.3.1.4).

    ``done`` resolves True when :meth:`ack` is called, False after 64*T1 without ACK (the UAS
    core must then end the dialog with a BYE). On reliable transports nothing is resent but the
    ACK is still awaited."""

    def __init__(
        self,
        send: Callable[[], None],
        scheduler: Scheduler,
        timers: TimerConfig,
        *,
        reliable: bool,
        resend: Callable[[], None] | None = None,
    ) -> None:
        """``send`` sends the 2xx; ``resend`` (default ``send``) sends it again (counted as a retransmission)."""
        self._send = send
        self._resend = resend or send
        self._scheduler = scheduler
        self._timers = timers
        self._reliable = reliable
        self._interval = timers.t1
        self._handle: TimerHandle | None = None
        self._give_up: TimerHandle | None = None
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        now = self._scheduler.now()
        self._send()
        if not self._reliable:
            self._handle = self._scheduler.call_at(now + self._interval, self._retransmit)
        self._give_up = self._scheduler.call_at(now + 64 * self._timers.t1, self._expire)

    def ack(self) -> None:
        self._finish(True)

    def cancel(self) -> None:
        """Stop without a result (the dialog ended another way); ``done`` is cancelled."""
        self._stop()
        if not self.done.done():
            self.done.cancel()

    def _retransmit(self) -> None:
        if self.done.done():
            return
        self._resend()
        self._interval = min(2 * self._interval, self._timers.t2)
        self._handle = self._scheduler.call_at(self._scheduler.now() + self._interval, self._retransmit)

    def _expire(self) -> None:
        self._give_up = None
        self._finish(False)

    def _finish(self, acked: bool) -> None:
        self._stop()
        if not self.done.done():
            self.done.set_result(acked)

    def _stop(self) -> None:
        for handle in (self._handle, self._give_up):
            if handle is not None:
                handle.cancel()
        self._handle = self._give_up = None


class IncomingRequest:
    """A request handed to the TU, with the means to answer it through its server transaction.

    ``request`` carries ``received``/``rport`` on its top Via (RFC 3261 §18.2.1, RFC 3581)."""

    def __init__(
        self,
        request: Request,
        source: Source,
        responder: Callable[[Response], None],
        retransmitter: Callable[[Response], TwoXXRetransmitter],
    ) -> None:
        self.request = request
        self.source = source
        self.cancelled = False
        self.final: Response | None = None
        self.last_response: Response | None = None
        self._responder = responder
        self._retransmitter = retransmitter
        self.ack_wait: TwoXXRetransmitter | None = None
        self.failure: Notice | None = None  # Timer H or a transport error ended the transaction

    def __repr__(self) -> str:
        return f"<IncomingRequest {self.request.method} {self.request.call_id} from {self.source}>"

    @property
    def method(self) -> str:
        return self.request.method

    def respond(self, response: Response) -> None:
        """Send ``response`` through the server transaction (which resends it on request
        retransmissions, and for non-2xx finals to INVITE until the ACK)."""
        if response.status >= 200:
            self.final = self.final or response
        self.last_response = response
        self._responder(response)

    def reply(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> Response:
        """Build a response with :func:`make_response` and send it; returns it."""
        response = make_response(self.request, status, reason, to_tag=to_tag, headers=headers, body=body)
        self.respond(response)
        return response

    def respond_until_ack(self, response: Response) -> asyncio.Future[bool]:
        """Send a 2xx to this INVITE and retransmit it until its ACK arrives (True) or 64*T1
        passes (False), RFC 3261 §13.3.1.4. The layer matches the ACK (Call-ID, CSeq number,
        From tag) and stops the retransmissions before calling ``on_ack``."""
        if self.request.method != "INVITE" or not 200 <= response.status < 300:
            raise ValueError(f"only a 2xx to INVITE awaits an ACK, not {response.status} to {self.method}")
        self.final = self.final or response
        self.last_response = response
        self.ack_wait = self._retransmitter(response)
        return self.ack_wait.done
