"""Dispatch tables: the handler of a command (or event) by its type, instead of a long `match`.

    SIP = Table[SipSide, Awaitable[None]]()
    SIP.add(cmd.SipBye, SipSide._bye_command)          # mypy checks the handler takes a SipBye
    await SIP.handler(type(command))(self, command)

Each entry is typed when it is added (the handler's parameter is the entry's type); the lookup is one
dict access, exact type only (the call layer's commands and events are final dataclasses). This module
owns the table type only and imports nothing of the project, so every runtime module may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Table", "UnknownKind"]

Owner = TypeVar("Owner")
Result = TypeVar("Result")
Kind = TypeVar("Kind")


class UnknownKind(LookupError):
    """No handler for a type the table was asked about (a command this table does not take)."""


class Table(Generic[Owner, Result]):
    """type -> handler(owner, value)."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[type[Any], Callable[[Owner, Any], Result]] = {}

    def add(self, kind: type[Kind], handler: Callable[[Owner, Kind], Result]) -> None:
        if kind in self._handlers:
            raise ValueError(f"{kind.__name__} has a handler already")
        self._handlers[kind] = handler

    def add_all(self, kinds: tuple[type[Any], ...], handler: Callable[[Owner, Any], Result]) -> None:
        """One handler for several types (a union's members: `typing.get_args(cmd.SipCommand)`)."""
        for kind in kinds:
            self.add(kind, handler)

    def handler(self, kind: type[Any]) -> Callable[[Owner, Any], Result]:
        try:
            return self._handlers[kind]
        except KeyError:
            raise UnknownKind(f"no handler for {kind.__name__}") from None

    def get(self, kind: type[Any]) -> Callable[[Owner, Any], Result] | None:
        return self._handlers.get(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._handlers

    def kinds(self) -> frozenset[type[Any]]:
        return frozenset(self._handlers)
