"""The calls package's errors: one base, `CallError`; each names the call and what went wrong."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.calls.states import CallState


class CallError(Exception):
    """Base of every error the calls package raises. `code` is what the browser is told."""

    code = "call_error"

    def __init__(self, message: str, call_id: str | None = None) -> None:
        super().__init__(message if call_id is None else f"call={call_id} {message}")
        self.call_id = call_id


class InvalidValue(CallError, ValueError):
    """An event or command built with a bad value (quoted in the message)."""

    code = "invalid_value"


class IllegalEvent(CallError):
    """`event` is not allowed in `state` (or not with the call's direction or progress)."""

    code = "illegal_event"

    def __init__(self, call_id: str, state: CallState, event: object, detail: str = "") -> None:
        name = type(event).__name__
        text = f"event {name} is not allowed in state {state.value}"
        super().__init__(f"{text}: {detail}" if detail else text, call_id)
        self.state = state
        self.event_name = name


class IllegalMove(CallError):
    """A record of a call was asked to move between two values its table does not connect."""

    code = "illegal_move"

    def __init__(self, call_id: str, what: str, old: object, new: object) -> None:
        super().__init__(f"{what} may not move from {_name(old)} to {_name(new)}", call_id)
        self.what = what
        self.old = old
        self.new = new


class WrongSession(CallError):
    """A browser session acted on a call it is not part of (any more)."""

    code = "wrong_session"

    def __init__(self, call_id: str, session_id: str) -> None:
        super().__init__(f"session {session_id!r} is not part of this call", call_id)
        self.session_id = session_id


class UnknownCall(CallError):
    """The registry holds no call by that id (never existed, or already closed)."""

    code = "unknown_call"

    def __init__(self, call_id: str) -> None:
        super().__init__(f"no such call {call_id!r}")
        self.call_id = call_id


def _name(value: object) -> str:
    return "none" if value is None else str(value.value) if isinstance(value, enum.Enum) else repr(value)
