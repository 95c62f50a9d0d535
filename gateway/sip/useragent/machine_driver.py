"""What the asyncio drivers of sipcore's client machines share: the REGISTER machines
(:mod:`gateway.sip.useragent.registrar_client`) and the SUBSCRIBE machines
(:mod:`gateway.sip.useragent.subscriptions`) both return :class:`~sipcore.registration.SendRequest`,
:class:`~sipcore.registration.SetTimer` and :class:`~sipcore.registration.CancelTimer` actions.

:class:`MachineDriver` carries them out for one entry (a machine and its one timer): a request goes out
in a new client transaction toward ``outbound`` and every response to it (the layer's synthetic 408/503
included) is fed back with ``on_response``; the timer runs on the layer's scheduler and calls
``on_timer``. Any other action (a state change) goes to the subclass's ``_changed_state``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from gateway.sip.transactions.scheduler import TimerHandle
from sipcore.location.routing import Target
from sipcore.registration import CancelTimer, SendRequest, SetTimer
from sipcore.syntax.message import Response

if TYPE_CHECKING:
    from gateway.sip.transactions.layer import TransactionLayer

__all__ = ["ClientMachine", "MachineDriver", "MachineEntry"]


class ClientMachine(Protocol):
    def on_timer(self, now: float) -> Sequence[object]: ...

    def on_response(self, response: Response, now: float) -> Sequence[object]: ...


M = TypeVar("M", bound=ClientMachine)


class MachineEntry(Generic[M]):
    """One machine and its timer (subclasses add what their driver keeps beside)."""

    def __init__(self, machine: M) -> None:
        self.machine = machine
        self.timer: TimerHandle | None = None


E = TypeVar("E", bound=MachineEntry[Any])


class MachineDriver(Generic[E]):
    """Carries out the machines' actions through ``layer``; see the module note."""

    def __init__(self, layer: TransactionLayer, outbound: Target | None) -> None:
        self.layer = layer
        self.outbound = outbound
        self._tasks: set[asyncio.Task[None]] = set()

    def _run(self, entry: E, actions: Sequence[object]) -> None:
        for action in actions:
            if isinstance(action, SendRequest):
                self._spawn(self._transact(entry, action))
            elif isinstance(action, SetTimer):
                self._cancel_timer(entry)
                entry.timer = self.layer.scheduler.call_at(action.deadline, partial(self._fire, entry))
            elif isinstance(action, CancelTimer):
                self._cancel_timer(entry)
            else:
                self._changed_state(entry, action)

    def _changed_state(self, entry: E, action: object) -> None:
        """A state change of ``entry``'s machine (the subclass reports it)."""

    def _fire(self, entry: E) -> None:
        entry.timer = None
        if self.layer.running:
            self._run(entry, entry.machine.on_timer(self.layer.scheduler.now()))

    def _cancel_timer(self, entry: E) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None

    def hop_of(self, entry: E) -> Target | None:
        """Where ``entry``'s requests go: the outbound hop, unless a driver says otherwise."""
        return self.outbound

    async def _transact(self, entry: E, action: SendRequest) -> None:
        if not self.layer.running:
            return
        handle = await self.layer.request(action.request, self.hop_of(entry))
        async for response in handle:
            self._run(entry, entry.machine.on_response(response, self.layer.scheduler.now()))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
