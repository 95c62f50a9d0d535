"""The asyncio driver of the sans-I/O :class:`~sipcore.registration.Registration` machines.

One machine per address of record (RFC 3261 §10.2). The driver carries out their actions:
:class:`SendRequest` becomes a REGISTER in a new client transaction whose responses (and the
synthetic 408/503 of a timeout or a transport error) are fed back with ``on_response``;
:class:`SetTimer`/:class:`CancelTimer` become one timer per machine on the layer's
:class:`~gateway.sip.transactions.scheduler.Scheduler` (refresh before expiry, retry with backoff while the
registrar is unreachable or refuses); :class:`StateChanged` updates the queryable state and is
reported as a :class:`RegistrationChanged` event (callback and queue). :meth:`stop` unregisters
(``expires=0``) and waits, a bounded time, for the registrar's answers. The actions are carried out by
:class:`~gateway.sip.useragent.machine_driver.MachineDriver`, shared with the SUBSCRIBE machines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.sip.useragent.machine_driver import MachineDriver, MachineEntry
from sipcore.auth.digest import DigestClient
from sipcore.dialogs.requests import Endpoint
from sipcore.location.routing import Target
from sipcore.registration import (
    Registration,
    RegistrationConfig,
    RegState,
    StateChanged,
)
from sipcore.syntax.uri import SipURI

if TYPE_CHECKING:
    from gateway.config.schema import PbxSection
    from gateway.identity import WebUser
    from gateway.sip.transactions.layer import TransactionLayer

__all__ = ["RegistrationChanged", "RegistrationClient", "RegistrationSpec", "registrations_for_users"]

logger = logging.getLogger(__name__)

SETTLED = (RegState.UNREGISTERED, RegState.FAILED)


@dataclass(frozen=True, slots=True)
class RegistrationSpec:
    """One AOR to keep registered, with its digest credentials."""

    aor: SipURI
    username: str
    password: str = field(repr=False)
    registrar: SipURI | None = None  # default: the AOR's domain
    expires: int = 3600
    retry_base: float = 5.0
    retry_max: float = 300.0
    hop: Target | None = None  # where its REGISTERs go (several PBXs: its PBX's); default the UA's outbound

    def __post_init__(self) -> None:
        if self.aor.user is None:
            raise ValueError(f"an address of record needs a user part: {self.aor}")
        if not self.username:
            raise ValueError(f"registration of {self.aor} needs a user name")

    def config(self) -> RegistrationConfig:
        return RegistrationConfig(
            aor=self.aor,
            registrar=self.registrar,
            expires=self.expires,
            retry_base=self.retry_base,
            retry_max=max(self.retry_max, self.retry_base),
        )


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    """A registration changed state (reported to the callback and the ``changes`` queue)."""

    aor: str
    old: RegState
    new: RegState
    reason: str
    status: int | None  # the last final response, if any


def registrations_for_users(
    users: Iterable[WebUser],
    pbx: PbxSection,
    pbxs: Mapping[str, PbxSection] | None = None,
    hops: Mapping[str, Target] | None = None,
) -> tuple[RegistrationSpec, ...]:
    """A registration for every web user the identity map gives PBX credentials, at her PBX's address
    when its ``register`` is on: ``pbx`` (the `pbx:` section, ``default``) or one of ``pbxs`` by name
    (its REGISTERs sent to its hop in ``hops``); and one per PBX of ``pbxs`` with its own ``auth``
    (a trunk) and ``register`` on, as ``auth.username`` at its domain (config/pbxs.py)."""
    named = dict(pbxs or {})
    specs = []
    for user in users:
        section = named.get(user.pbx, pbx) if user.pbx != "default" else pbx
        if user.credentials is None or not section.register or section.address is None:
            continue
        aor = SipURI(user.aor.host, user.aor.user, port=user.aor.port, scheme=user.aor.scheme)
        specs.append(
            RegistrationSpec(
                aor,
                user.credentials.username,
                user.credentials.password.reveal(),
                registrar=SipURI(section.address.host, port=section.address.port),
                expires=section.register_expiry,
                hop=(hops or {}).get(user.pbx),
            )
        )
    for name, section in named.items():
        domain = section.effective_domain
        if section.auth is None or not section.register or section.address is None or domain is None:
            continue
        specs.append(
            RegistrationSpec(
                SipURI(domain, section.auth.username),
                section.auth.username,
                section.auth.password.reveal(),
                registrar=SipURI(section.address.host, port=section.address.port),
                expires=section.register_expiry,
                hop=(hops or {}).get(name),
            )
        )
    return tuple(specs)


class _Entry(MachineEntry[Registration]):
    def __init__(self, spec: RegistrationSpec, machine: Registration) -> None:
        super().__init__(machine)
        self.spec = spec
        self.digest = machine.digest


class RegistrationClient(MachineDriver[_Entry]):
    """Keeps every configured AOR registered through ``layer``; see the module note."""

    def __init__(
        self,
        layer: TransactionLayer,
        endpoint: Endpoint,
        specs: Sequence[RegistrationSpec],
        *,
        outbound: Target | None = None,
        on_change: Callable[[RegistrationChanged], None] | None = None,
    ) -> None:
        super().__init__(layer, outbound)
        self.changes: asyncio.Queue[RegistrationChanged] = asyncio.Queue()
        self._on_change = on_change
        self._entries: dict[str, _Entry] = {}
        self._settled = asyncio.Event()
        self._changed = asyncio.Event()
        for spec in specs:
            machine = Registration(spec.config(), endpoint, digest=DigestClient(spec.username, spec.password))
            self._entries[str(spec.aor)] = _Entry(spec, machine)

    def hop_of(self, entry: _Entry) -> Target | None:
        """A registration at a named PBX goes to that PBX's hop (several PBXs, config/pbxs.py)."""
        return entry.spec.hop or self.outbound

    def __repr__(self) -> str:
        return f"<RegistrationClient {self.states()}>"

    # --- state ------------------------------------------------------------------------------------
    def states(self) -> dict[str, RegState]:
        """Each AOR's registration state."""
        return {aor: entry.machine.state for aor, entry in self._entries.items()}

    def state(self, aor: str) -> RegState:
        return self._entries[aor].machine.state

    def registration(self, aor: str) -> Registration:
        return self._entries[aor].machine

    def digest_for(self, aor: SipURI) -> DigestClient | None:
        """The credentials of a registered AOR (for requests in calls to it)."""
        for entry in self._entries.values():
            own = entry.spec.aor
            if own.user == aor.user and own.host.lower() == aor.host.lower():
                return entry.digest
        return None

    async def wait_for(self, aor: str, *states: RegState, timeout: float = 10.0) -> RegState:
        """Wait until ``aor`` is in one of ``states``; returns it (TimeoutError otherwise)."""

        async def loop() -> RegState:
            while (state := self.state(aor)) not in states:
                self._changed.clear()
                await self._changed.wait()
            return state

        return await asyncio.wait_for(loop(), timeout)

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        now = self.layer.scheduler.now()
        for entry in self._entries.values():
            self._run(entry, entry.machine.start(now))

    def start_one(self, aor: str) -> None:
        """Register one AOR (a cluster instance that just took over its ownership: gateway/cluster)."""
        entry = self._entries[aor]
        if self.layer.running:
            self._run(entry, entry.machine.start(self.layer.scheduler.now()))

    def stop_one(self, aor: str, *, unregister: bool = True) -> None:
        """Stop keeping one AOR registered: unregister it (``expires=0``), or with ``unregister`` False
        only stop refreshing it (another instance registers it now: its binding is the one to keep)."""
        entry = self._entries[aor]
        self._cancel_timer(entry)
        if unregister and self.layer.running:
            self._run(entry, entry.machine.stop(self.layer.scheduler.now()))
        else:
            entry.machine = Registration(
                entry.spec.config(), entry.machine.endpoint, digest=entry.machine.digest
            )
            entry.digest = entry.machine.digest
            self._changed.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Unregister every AOR (``expires=0``) and wait up to ``timeout`` for the answers."""
        now = self.layer.scheduler.now()
        for entry in self._entries.values():
            if self.layer.running:
                self._run(entry, entry.machine.stop(now))
        try:
            await asyncio.wait_for(self._all_settled(), timeout)
        except TimeoutError:
            logger.warning("registrations not all removed within %.1f s: %s", timeout, self.states())
        for entry in self._entries.values():
            self._cancel_timer(entry)
        await self._end_tasks()

    async def _all_settled(self) -> None:
        while not all(entry.machine.state in SETTLED for entry in self._entries.values()):
            self._changed.clear()
            await self._changed.wait()

    # --- driving the machines (MachineDriver) ---------------------------------------------------
    def _changed_state(self, entry: _Entry, action: object) -> None:
        if isinstance(action, StateChanged):
            self._report(entry, action)

    def _report(self, entry: _Entry, change: StateChanged) -> None:
        event = RegistrationChanged(
            str(entry.spec.aor), change.old, change.new, change.reason, entry.machine.last_status
        )
        self.changes.put_nowait(event)
        self._changed.set()
        if self._on_change is not None:
            try:
                self._on_change(event)
            except Exception:
                logger.exception("registration %s: state callback failed", event.aor)
