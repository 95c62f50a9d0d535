"""The asyncio driver of the sans-I/O :class:`~sipcore.subscription.Subscription` machines (RFC 6665):
the busy lamps (``dialog`` event package, RFC 4235) and voicemail lights (``message-summary``,
RFC 3842) the gateway keeps for its web users at the PBX (issue 37).

Like :mod:`gateway.sip.useragent.registrar_client`: :class:`SendRequest` becomes a SUBSCRIBE in a new
client transaction (toward the outbound hop) whose responses are fed back; timers run on the layer's
scheduler (refresh before expiry, retry with backoff). :meth:`SubscriptionClient.take` is the UA's hook
for NOTIFYs: one whose Call-ID and To tag are a subscription's is answered here (400 for a body that
does not parse, naming the fault; 489 for another package; 481 for a subscription that is over) and,
when it carries a state, reported as a :class:`Notice` to ``on_notice``; any other NOTIFY is left to
the UA (481). :meth:`stop` unsubscribes (``Expires: 0``) and waits a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from gateway.sip.transactions.scheduler import TimerHandle
from gateway.sip.transactions.tu import IncomingRequest, TransactionUser
from gateway.sip.transports.transport import Source
from sipcore.auth.digest import DigestClient
from sipcore.dialogs.requests import Endpoint
from sipcore.errors import BadRequest, SIPError
from sipcore.event_bodies import DialogInfo, MessageSummary, parse_body
from sipcore.location.routing import Target
from sipcore.subscription import (
    Action,
    CancelTimer,
    SendRequest,
    SetTimer,
    SubscriptionConfig,
    SubscriptionStateChanged,
    SubState,
)
from sipcore.subscription import Subscription as Machine
from sipcore.syntax.headers import warning_headers
from sipcore.syntax.message import Request, Response

if TYPE_CHECKING:
    from gateway.sip.transactions.layer import TransactionLayer

__all__ = ["Notice", "NotifyFront", "SubscriptionClient", "SubscriptionSpec"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """One subscription kept for ``owner`` (a web user id): ``kind`` ``contact`` (a busy lamp) or
    ``voicemail``, ``target`` what the page names (the extension or mailbox)."""

    owner: str
    kind: str
    target: str
    config: SubscriptionConfig
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Notice:
    """What a subscription tells: its state (``active``, ``retry wait``, ``failed``...) and, from a
    NOTIFY, the parsed body (None: a state change without a body)."""

    spec: SubscriptionSpec
    state: str
    body: DialogInfo | MessageSummary | None = None


class _Entry:
    def __init__(self, spec: SubscriptionSpec, machine: Machine) -> None:
        self.spec = spec
        self.machine = machine
        self.timer: TimerHandle | None = None


class SubscriptionClient:
    """Keeps every configured subscription alive through ``layer``; see the module note."""

    def __init__(
        self,
        layer: TransactionLayer,
        endpoint: Endpoint,
        specs: Sequence[SubscriptionSpec],
        *,
        outbound: Target | None = None,
        on_notice: Callable[[Notice], None] | None = None,
    ) -> None:
        self.layer = layer
        self.outbound = outbound
        self._on_notice = on_notice
        self._entries: list[_Entry] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        for spec in specs:
            digest = DigestClient(spec.username, spec.password) if spec.username and spec.password else None
            self._entries.append(_Entry(spec, Machine(spec.config, endpoint, digest=digest)))

    def __repr__(self) -> str:
        return f"<SubscriptionClient {len(self._entries)} subscriptions>"

    def states(self) -> dict[str, str]:
        """Each subscription's state, by ``owner kind target``."""
        return {f"{e.spec.owner} {e.spec.kind} {e.spec.target}": e.machine.state.value for e in self._entries}

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        now = self.layer.scheduler.now()
        for entry in self._entries:
            self._run(entry, entry.machine.start(now))

    async def stop(self, timeout: float = 2.0) -> None:
        """Unsubscribe every subscription (``Expires: 0``) and wait up to ``timeout`` for the answers."""
        now = self.layer.scheduler.now()
        for entry in self._entries:
            if self.layer.running:
                self._run(entry, entry.machine.stop(now))
        try:
            await asyncio.wait_for(self._all_stopped(), timeout)
        except TimeoutError:
            logger.info("subscriptions not all ended within %.1f s: %s", timeout, self.states())
        for entry in self._entries:
            self._cancel_timer(entry)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _all_stopped(self) -> None:
        while not all(e.machine.state in (SubState.IDLE, SubState.FAILED) for e in self._entries):
            self._changed.clear()
            await self._changed.wait()

    # --- NOTIFY (the UA's hook) -------------------------------------------------------------------
    def take(self, incoming: IncomingRequest) -> bool:
        """A NOTIFY for one of our subscriptions is answered here (True); else the UA's (False)."""
        request = incoming.request
        to = request.to
        if request.method != "NOTIFY" or to is None or to.tag is None:
            return False
        key = (request.call_id or "", to.tag)
        entry = next((e for e in self._entries if e.machine.key == key), None)
        if entry is None:
            return False
        try:
            body = parse_body(request.headers.get("Content-Type"), request.body)
        except BadRequest as exc:  # RFC 6665 §4.1.3: the NOTIFY is refused, the subscription goes on
            logger.info("NOTIFY %s %s refused: %s", entry.spec.kind, entry.spec.target, exc.detail)
            incoming.reply(400, headers=warning_headers(exc))
            return True
        try:
            status, actions = entry.machine.on_notify(request, self.layer.scheduler.now())
        except SIPError as exc:
            incoming.reply(exc.status or 400, headers=warning_headers(exc))
            return True
        incoming.reply(status)
        self._run(entry, actions)
        if status == 200 and body is not None:
            self._tell(Notice(entry.spec, entry.machine.state.value, body))
        return True

    # --- driving the machines ---------------------------------------------------------------------
    def _run(self, entry: _Entry, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendRequest):
                self._spawn(self._transact(entry, action))
            elif isinstance(action, SetTimer):
                self._cancel_timer(entry)
                entry.timer = self.layer.scheduler.call_at(action.deadline, partial(self._fire, entry))
            elif isinstance(action, CancelTimer):
                self._cancel_timer(entry)
            elif isinstance(action, SubscriptionStateChanged):
                self._changed.set()
                self._tell(Notice(entry.spec, action.new.value))

    def _tell(self, notice: Notice) -> None:
        if self._on_notice is None:
            return
        try:
            self._on_notice(notice)
        except Exception:
            logger.exception(
                "subscription %s %s: notice callback failed", notice.spec.kind, notice.spec.target
            )

    def _fire(self, entry: _Entry) -> None:
        entry.timer = None
        if self.layer.running:
            self._run(entry, entry.machine.on_timer(self.layer.scheduler.now()))

    def _cancel_timer(self, entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None

    async def _transact(self, entry: _Entry, action: SendRequest) -> None:
        if not self.layer.running:
            return
        handle = await self.layer.request(action.request, self.outbound)
        async for response in handle:
            self._run(entry, entry.machine.on_response(response, self.layer.scheduler.now()))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class NotifyFront:
    """The transaction layer's TU in front of the UA: the NOTIFYs of ``client``'s subscriptions are
    answered by it; every other request, CANCEL, ACK and stray response goes to the UA as before."""

    def __init__(self, inner: TransactionUser, client: SubscriptionClient) -> None:
        self.inner = inner
        self.client = client

    async def on_request(self, incoming: IncomingRequest) -> None:
        if not self.client.take(incoming):
            await self.inner.on_request(incoming)

    def on_cancel(self, incoming: IncomingRequest, cancel: Request) -> None:
        self.inner.on_cancel(incoming, cancel)

    def on_ack(self, ack: Request, source: Source) -> None:
        self.inner.on_ack(ack, source)

    def on_stray_response(self, response: Response, source: Source) -> None:
        self.inner.on_stray_response(response, source)
