"""The asyncio driver of the sans-I/O :class:`~sipcore.subscription.Subscription` machines (RFC 6665):
the busy lamps (``dialog`` event package, RFC 4235) and voicemail lights (``message-summary``,
RFC 3842) the gateway keeps for its web users at the PBX (issue 37).

Like :mod:`gateway.sip.useragent.registrar_client`: :class:`SendRequest` becomes a SUBSCRIBE in a new
client transaction (toward its spec's ``hop``, its user's PBX, else the outbound hop) whose responses
are fed back, a challenge answered only in its spec's ``realm`` when set; timers run on the layer's
scheduler (refresh before expiry, retry with backoff). :meth:`SubscriptionClient.take` is the UA's hook
for NOTIFYs: one whose Call-ID and To tag are a subscription's is answered here (400 for a body that
does not parse, naming the fault; 489 for another package; 481 for a subscription that is over) and,
when it carries a state, reported as a :class:`Notice` to ``on_notice``; any other NOTIFY is left to
the UA (481). :meth:`stop` unsubscribes (``Expires: 0``) and waits a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from gateway.sip.transactions.tu import IncomingRequest, TransactionUser
from gateway.sip.transports.transport import Source
from gateway.sip.useragent.machine_driver import MachineDriver, MachineEntry
from sipcore.auth.digest import DigestClient
from sipcore.dialogs.requests import Endpoint
from sipcore.errors import BadRequest, SIPError
from sipcore.event_bodies import DialogInfo, MessageSummary, parse_body
from sipcore.location.routing import Target
from sipcore.subscription import (
    FINAL_NOTIFY_WAIT,
    SubscriptionConfig,
    SubscriptionStateChanged,
    SubState,
)
from sipcore.subscription import Subscription as Machine
from sipcore.syntax.headers import warning_headers
from sipcore.syntax.message import Request, Response

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.identity import WebUser
    from gateway.sip.transactions.layer import TransactionLayer

__all__ = ["Notice", "NotifyFront", "PbxPlace", "SubscriptionClient", "SubscriptionSpec", "pbx_place"]

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
    on_notice: Callable[[Notice], None] | None = field(default=None, compare=False)  # else the client's
    hop: Target | None = None  # where its SUBSCRIBEs go (several PBXs: its owner's PBX's); else the client's
    realm: str | None = None  # the only digest realm its credentials answer (its PBX's `realm`); None: any


@dataclass(frozen=True, slots=True)
class PbxPlace:
    """Where a web user's subscriptions go: her own PBX (`users[].pbx`, else her tenant's, else `pbx:`,
    config/pbxs.py), as her REGISTERs do: its ``domain`` for a bare extension, its ``hop`` (None: the
    client's outbound hop, the `pbx:` section's), the one digest ``realm`` answered (None: any)."""

    name: str
    domain: str | None
    hop: Target | None
    realm: str | None
    expires: int
    pickup_prefix: str


def pbx_place(config: Config, user: WebUser, hops: Mapping[str, Target]) -> PbxPlace | None:
    """``user``'s PBX (``hops``: each named PBX's next hop, `UASettings.pbx_targets`); None when that
    PBX has no address (nothing to subscribe at)."""
    pbx = config.pbxs.get(user.pbx, config.pbx) if user.pbx != "default" else config.pbx
    if pbx.address is None:
        return None
    return PbxPlace(
        user.pbx, pbx.effective_domain, hops.get(user.pbx), pbx.realm, pbx.subscribe_expiry, pbx.pickup_prefix
    )


@dataclass(frozen=True, slots=True)
class Notice:
    """What a subscription tells: its state (``active``, ``retry wait``, ``failed``...) and, from a
    NOTIFY, the parsed body (None: a state change without a body)."""

    spec: SubscriptionSpec
    state: str
    body: DialogInfo | MessageSummary | None = None
    raw: bytes = b""  # the NOTIFY's body as it came, and its Content-Type (a relay passes them on)
    content_type: str | None = None


class _Entry(MachineEntry[Machine]):
    def __init__(self, spec: SubscriptionSpec, machine: Machine) -> None:
        super().__init__(machine)
        self.spec = spec
        self.key = machine.key


class SubscriptionClient(MachineDriver[_Entry]):
    """Keeps every configured subscription alive through ``layer``; see the module note."""

    def __init__(
        self,
        layer: TransactionLayer,
        endpoint: Endpoint,
        specs: Sequence[SubscriptionSpec],
        *,
        outbound: Target | None = None,
        on_notice: Callable[[Notice], None] | None = None,
        pace: float = 0.02,
    ) -> None:
        super().__init__(layer, outbound)
        self._on_notice = on_notice
        self._pace = pace  # s between the first SUBSCRIBEs: thousands at once would flood the PBX
        self._entries: list[_Entry] = []
        self._by_key: dict[tuple[str, str], _Entry] = {}  # (Call-ID, our tag): what a NOTIFY names
        self._changed = asyncio.Event()
        for spec in specs:
            entry = _Entry(spec, Machine(spec.config, endpoint, digest=_digest(spec)))
            self._entries.append(entry)
            self._by_key[entry.machine.key] = entry

    def __repr__(self) -> str:
        return f"<SubscriptionClient {len(self._entries)} subscriptions>"

    def hop_of(self, entry: _Entry) -> Target | None:
        """A subscription of a named PBX's user goes to that PBX's hop (several PBXs, config/pbxs.py)."""
        return entry.spec.hop or self.outbound

    def states(self) -> dict[str, str]:
        """Each subscription's state, by ``owner kind target``."""
        return {f"{e.spec.owner} {e.spec.kind} {e.spec.target}": e.machine.state.value for e in self._entries}

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe, ``pace`` seconds apart (the first at once)."""
        now = self.layer.scheduler.now()
        for index, entry in enumerate(self._entries):
            if index == 0 or self._pace <= 0:
                self._run(entry, entry.machine.start(now))
            else:
                entry.timer = self.layer.scheduler.call_at(
                    now + index * self._pace, partial(self._begin, entry)
                )

    def _begin(self, entry: _Entry) -> None:
        entry.timer = None
        if self.layer.running and entry.machine.state is SubState.IDLE:
            self._run(entry, entry.machine.start(self.layer.scheduler.now()))

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
        await self._end_tasks()

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
        entry = self._by_key.get((request.call_id or "", to.tag))
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
        if entry not in self._entries:  # removed: its last NOTIFY answered, nothing more to drive
            if entry.machine.final_notify_until is None:
                self._forget(entry)
            return True
        self._run(entry, actions)
        if status == 200 and body is not None:
            mime = request.headers.get("Content-Type")
            self._tell(Notice(entry.spec, entry.machine.state.value, body, request.body, mime))
        return True

    def add(self, spec: SubscriptionSpec, endpoint: Endpoint) -> None:
        """Keep one more subscription (a SIP library's, relayed: gateway/websip/subscriptions.py)."""
        entry = _Entry(spec, Machine(spec.config, endpoint, digest=_digest(spec)))
        self._entries.append(entry)
        self._by_key[entry.key] = entry
        if self.layer.running:
            self._run(entry, entry.machine.start(self.layer.scheduler.now()))

    def remove(self, spec: SubscriptionSpec) -> None:
        """Unsubscribe one subscription ``add`` gave and forget it once it is over."""
        entry = next((e for e in self._entries if e.spec is spec), None)
        if entry is None:
            return
        self._entries.remove(entry)
        self._cancel_timer(entry)
        if not self.layer.running:
            self._by_key.pop(entry.key, None)
            return
        now = self.layer.scheduler.now()
        super()._run(entry, entry.machine.stop(now))
        # its NOTIFYs are still its own until the notifier's terminated one (RFC 6665 §4.4.1): answered 200
        # by the machine meanwhile, forgotten then, or after the wait for it
        self.layer.scheduler.call_at(now + FINAL_NOTIFY_WAIT + 1.0, partial(self._forget, entry))

    def _forget(self, entry: _Entry) -> None:
        if entry not in self._entries and self._by_key.get(entry.key) is entry:
            del self._by_key[entry.key]

    # --- driving the machines ---------------------------------------------------------------------
    def _run(self, entry: _Entry, actions: Sequence[object]) -> None:
        if entry.key != entry.machine.key:  # a new subscription is a new dialog (Call-ID, tag)
            self._by_key.pop(entry.key, None)
            entry.key = entry.machine.key
            self._by_key[entry.key] = entry
        super()._run(entry, actions)

    def _changed_state(self, entry: _Entry, action: object) -> None:
        if isinstance(action, SubscriptionStateChanged):
            self._changed.set()
            self._tell(Notice(entry.spec, action.new.value))

    def _tell(self, notice: Notice) -> None:
        callback = notice.spec.on_notice or self._on_notice
        if callback is None:
            return
        try:
            callback(notice)
        except Exception:
            logger.exception(
                "subscription %s %s: notice callback failed", notice.spec.kind, notice.spec.target
            )


def _digest(spec: SubscriptionSpec) -> DigestClient | None:
    if not spec.username or not spec.password:
        return None
    return DigestClient(spec.username, spec.password, realm=spec.realm)


class NotifyFront:
    """The transaction layer's TU in front of the UA: the NOTIFYs of ``client``'s subscriptions are
    answered by it; every other request, CANCEL, ACK and stray response goes to the UA as before."""

    def __init__(self, inner: TransactionUser, client: SubscriptionClient) -> None:
        self.inner = inner
        self.client = client
        # more requests taken before the UA sees them: a SIP library's SUBSCRIBE refreshes (websip)
        self.takers: list[Callable[[IncomingRequest], bool]] = [client.take]

    async def on_request(self, incoming: IncomingRequest) -> None:
        if not any(take(incoming) for take in self.takers):
            await self.inner.on_request(incoming)

    def on_cancel(self, incoming: IncomingRequest, cancel: Request) -> None:
        self.inner.on_cancel(incoming, cancel)

    def on_ack(self, ack: Request, source: Source) -> None:
        self.inner.on_ack(ack, source)

    def on_stray_response(self, response: Response, source: Source) -> None:
        self.inner.on_stray_response(response, source)
