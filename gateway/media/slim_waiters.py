"""Lighter waiter lists for a web leg's idle asyncio and threading primitives (issue 14: memory per call).

aiortc and aioice give every call ~25 asyncio ``Event``s and ``Queue``s and a ``queue.Queue`` and a
``threading.Event`` for the receiver's decoder thread (aiortc 1.16 ``RTCRtpSender``, ``RTCRtpReceiver``,
its ``RemoteStreamTrack``; aioice 0.13 ``Connection``). Each holds ``collections.deque``s: an empty deque is
~760 bytes (its first 64-slot block is allocated with it) and, being over pymalloc's 512 bytes, is glibc's
heap: ~27 deques, ~20 KiB of every pass-through call, which the fast lane never waits on (tracemalloc,
``MEDIA_BENCH_TRACEMALLOC=1`` in bench/media_bench.py, at 100 calls).

``slim_peer_connection(pc)`` replaces each EMPTY deque of those primitives by a ``Waiters`` (a list with
the two deque methods the primitives use, ``popleft`` and ``appendleft``; ~72 bytes empty): an Event's
waiters (append, remove, iteration), a Queue's getters, putters and items (append, popleft, remove,
len), a ``threading.Condition``'s waiters (append, remove, iteration, slicing by islice) - all that the
standard library does with them (3.11-3.13). A deque that holds something (a waiter, a queued item) is
left as it is, and a ``threading`` one is only replaced under its lock (its waiters are added and
notified under it), so no waiter can be lost. The lists grow as a deque would when they are used
(consent, a fallback to Python's path, hangup), only ever holding a few entries. ``slim_transport``
does the same for an asyncio datagram transport's send buffer (the SIP leg's sockets, aioice's).
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import weakref
from asyncio import selector_events
from typing import Any

from aiortc import RTCPeerConnection


class Waiters(list[Any]):
    """A list that stands in for an empty ``collections.deque`` of a synchronisation primitive."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


def _empty_deque(value: object) -> bool:
    return type(value) is collections.deque and not value and value.maxlen is None


def _slim(owner: object, *names: str) -> int:
    """Replace the empty deques ``owner.<name>`` by ``Waiters``; how many were replaced."""
    replaced = 0
    for name in names:
        if _empty_deque(getattr(owner, name, None)):
            setattr(owner, name, Waiters())
            replaced += 1
    return replaced


def _slim_condition(condition: threading.Condition) -> int:
    if not condition.acquire(blocking=False):  # another thread works with it: left as it is
        return 0
    try:
        return _slim(condition, "_waiters")
    finally:
        condition.release()


def slim_primitive(value: object) -> int:
    """Slim one asyncio.Event / asyncio.Queue / queue.Queue / threading.Event (exact types, not
    subclasses: a PriorityQueue keeps a heap); anything else is left. How many deques were replaced."""
    kind = type(value)
    if kind is asyncio.Event:
        return _slim(value, "_waiters")
    if kind is asyncio.Queue:
        return _slim(value, "_getters", "_putters", "_queue") + slim_primitive(
            getattr(value, "_finished", None)
        )
    if kind is threading.Event:
        return _slim_condition(value._cond)  # type: ignore[attr-defined]
    if kind is queue.Queue:
        assert isinstance(value, queue.Queue)
        if not value.mutex.acquire(blocking=False):
            return 0
        try:  # the three conditions share the queue's mutex, held here
            conditions = (value.not_empty, value.not_full, value.all_tasks_done)
            return _slim(value, "queue") + sum(_slim(c, "_waiters") for c in conditions)
        finally:
            value.mutex.release()
    return 0


_DATAGRAM = getattr(selector_events, "_SelectorDatagramTransport", None)


def slim_transport(transport: object) -> int:
    """Slim an asyncio (selector loop) datagram transport's send buffer, a deque that only holds
    datagrams the kernel refused for a moment (append, popleft, appendleft, clear, len: 3.11-3.13).
    Other loops' transports (uvloop) are left."""
    return _slim(transport, "_buffer") if _DATAGRAM is not None and type(transport) is _DATAGRAM else 0


def slim_owner(owner: object) -> int:
    """Slim the primitives among ``owner``'s attributes (name-mangled private ones included)."""
    attributes = getattr(owner, "__dict__", None)
    if not attributes:
        return 0
    return sum(slim_primitive(value) for value in list(attributes.values()))


def slim_peer_connection(pc: RTCPeerConnection) -> int:
    """Slim the per-call primitives of ``pc``'s transceivers (module note): senders, receivers, the
        receivers' tracks and the ICE transports with their aioice connections. Idempotent; how many deques
        were replaced. Call after a remote description was set (the receiver's track exists then) and after
    the local one (the ICE sockets exist then)."""
    replaced = 0
    for transceiver in pc.getTransceivers():
        receiver, sender = transceiver.receiver, transceiver.sender
        ice = receiver.transport.transport if receiver.transport is not None else None
        connection = getattr(ice, "_connection", None)
        owners = [sender, receiver, getattr(receiver, "_track", None), ice, connection]
        replaced += sum(slim_owner(owner) for owner in owners if owner is not None)
        for protocol in getattr(connection, "_protocols", ()):  # aioice's sockets, once gathered
            replaced += slim_transport(getattr(protocol, "transport", None))
    return replaced


_PENDING: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()


def slim_soon(pc: RTCPeerConnection) -> None:
    """``slim_peer_connection(pc)`` in the event loop's next iteration, once however often asked in
    this one: a memory saving that waits until the call's answer left (~0.3 ms of an HTTP offer's
    offer -> answer, issue 38). A peer connection closed by then is left."""
    if pc not in _PENDING:
        _PENDING.add(pc)
        asyncio.get_running_loop().call_soon(_slim_pending, pc)


def _slim_pending(pc: RTCPeerConnection) -> None:
    _PENDING.discard(pc)
    if pc.signalingState != "closed":  # set as close() starts (connectionState only as it ends)
        slim_peer_connection(pc)
