"""Which call a log line is about: `call=<gateway call id>` and `sip_call_id=<SIP Call-ID>` on every line.

How it works: the driver binds a `CallContext` (a small mutable holder) into a context variable before it
creates a call, so the call's worker task and every task, timer and socket callback started from it
(the media bridge, aiortc's transports) run with it. The holder is filled as the ids become known: the
gateway call id when the registry makes it (`new_call_id`), the SIP Call-ID(s) when the SIP leg exists.
A log record factory copies the two ids onto each record as the attributes ``call`` and ``sip_call_id``;
the JSON format writes them as keys, the text format appends what the message does not already say.

Lines logged outside the call's tasks (the SIP transaction layer reading a socket, the fast lane's
engine handing over what it carried) still name the call in their message: ``call=<gateway call id>``
or, from the SIP layer, ``sip_call_id=<SIP Call-ID>`` (one name for each id), in the format or an
argument: the factory looks that id up among the calls it knows (the
live ones and the last `RECENT` that ended) to add the other one. Logging is process-wide, so the
factory and that index are too; they hold ids only, bounded.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from typing import Final

RECENT: Final = 2000  # calls remembered for the lines that name them (live and recently ended)
_CALL_IN_MESSAGE: Final = re.compile(r"\b(?:sip_call_id|call)=([^\s,;:()]+)")
_NAMES: Final = ("call=", "sip_call_id=")


class CallContext:
    """The ids of one call, filled in as they become known."""

    __slots__ = ("call_id", "sip_call_ids")

    def __init__(self, call_id: str | None = None, sip_call_ids: tuple[str, ...] = ()) -> None:
        self.call_id = call_id
        self.sip_call_ids: list[str] = list(sip_call_ids)

    @property
    def sip_call_id(self) -> str | None:
        """The SIP Call-IDs of the call, comma-separated (a pickup or transfer adds one)."""
        return ",".join(self.sip_call_ids) if self.sip_call_ids else None

    def __repr__(self) -> str:
        return f"<CallContext {self.call_id} {self.sip_call_id}>"


_CURRENT: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("gateway_call", default=None)


class _Index:
    """Calls by either id, for lines logged outside the call's own tasks (bounded, oldest out first)."""

    def __init__(self, size: int = RECENT) -> None:
        self._size = size
        self._by_id: OrderedDict[str, CallContext] = OrderedDict()

    def add(self, key: str, context: CallContext) -> None:
        self._by_id[key] = context
        self._by_id.move_to_end(key)
        while len(self._by_id) > self._size * 3:  # a call has a gateway id and one to three SIP ids
            self._by_id.popitem(last=False)

    def get(self, key: str) -> CallContext | None:
        return self._by_id.get(key)


_INDEX = _Index()


def current() -> CallContext | None:
    return _CURRENT.get()


@contextlib.contextmanager
def bind_call(context: CallContext | None = None) -> Iterator[CallContext]:
    """Run the block (and the tasks it creates) as part of a call: a new context unless one is given."""
    context = context if context is not None else CallContext()
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def outside_calls() -> Iterator[None]:
    """Run the block as part of no call: a line about the instance (Redis lost, say) that a call's task
    happens to log does not carry that call's ids."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def set_call_id(context: CallContext, call_id: str) -> None:
    context.call_id = call_id
    _INDEX.add(call_id, context)


def add_sip_call_id(context: CallContext, sip_call_id: str) -> None:
    if sip_call_id not in context.sip_call_ids:
        context.sip_call_ids.append(sip_call_id)
        _INDEX.add(sip_call_id, context)


def new_call_id() -> str:
    """The registry's call id factory: a fresh id, also given to the call context being bound."""
    call_id = uuid.uuid4().hex
    context = _CURRENT.get()
    if context is not None and context.call_id is None:
        set_call_id(context, call_id)
    return call_id


def lookup(call_id: str) -> CallContext | None:
    return _INDEX.get(call_id)


def _names_a_call(record: logging.LogRecord) -> bool:
    """Whether the record's message says ``call=`` or ``sip_call_id=``: in its format, or in an argument
    (a leg's name such as ``call=<id> RTP``, formatted in by ``%s``)."""
    if not isinstance(record.msg, str):
        return False
    if any(name in record.msg for name in _NAMES):
        return True
    args = record.args
    return isinstance(args, tuple) and any(
        isinstance(arg, str) and any(name in arg for name in _NAMES) for arg in args
    )


def _context_of(record: logging.LogRecord) -> CallContext | None:
    if _names_a_call(record):
        try:
            match = _CALL_IN_MESSAGE.search(record.getMessage())
        except (TypeError, ValueError):  # a broken format: logging reports it itself
            match = None
        if match is not None:
            named = _INDEX.get(match.group(1))
            if named is not None:
                return named
    return _CURRENT.get()


def install_record_factory() -> None:
    """Make every log record carry ``call`` and ``sip_call_id`` (when it is about a call); idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_gateway_call_ids", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = _context_of(record)
        if context is not None:
            if context.call_id is not None:
                record.call = context.call_id
            sip = context.sip_call_id
            if sip is not None:
                record.sip_call_id = sip
        return record

    factory._gateway_call_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def call_fields(record: logging.LogRecord) -> str:
    """`` call=<id> sip_call_id=<...>`` for the ids the record carries and its message does not show."""
    message = record.getMessage() if not hasattr(record, "message") else record.message
    parts = []
    call = getattr(record, "call", None)
    if call is not None and f"call={call}" not in message:
        parts.append(f"call={call}")
    sip = getattr(record, "sip_call_id", None)
    if sip is not None and f"sip_call_id={sip}" not in message:
        parts.append(f"sip_call_id={sip}")
    return (" " + " ".join(parts)) if parts else ""
