"""Engines (one native thread each), the pool the application owns, and the links of calls.

``EnginePool`` is created by ``gateway.app`` when the fast lane is on and closed at shutdown after the
calls; bridges get it in their settings. A new call goes to the engine with the fewest links, or starts
another while all have some, up to ``workers`` (one thread transcoding a hundred calls would queue
packets behind each other's encoding). An engine stops with its last link.

An ``Engine`` hands the datagrams its thread left to Python to their links in arrival order
(``drain``); a link first reads what the engine accounted for its forwarded packets (``FastLink.sync``:
statistics, counters, the timestamp mapper), so Python continues from there; then the links that got a
datagram re-arm. RTCP and STUN (a few a second per call) need neither: they read no counter the engine
keeps and change no lane, and report building syncs by itself. It drains when the thread signals its eventfd (a
datagram waits) and every ``DRAIN_INTERVAL`` seconds while it has links, when every link syncs
(watchdogs and reports read their owners' state). Nothing in Python runs per forwarded packet.

The browser's report compounds (SR, RR, SDES: ~2.3 a second per call, statistics only) are not queued:
the engine unprotects them and keeps the latest SR-led and RR-led one per link; a sync hands them to the
handler (``fast_web_rtcp``, with how late they are: RFC 3550 §6.4.1's RTT counts from their arrival)
before our own web-leg reports or statistics are built (they sync first), not the once-a-second tick's
nor the watchdogs' (``sync(reports=False)``): aiortc then parses ~0.4 compounds a second per call, not
~1.7 (the older ones of a kind are never read: the latest SR gives our reports' LSR and DLSR, the latest
RR the browser's loss, jitter and RTT).
Other SRTCP (feedback: PLI, FIR, NACK, REMB; BYE) comes out of ``drain`` at once, decrypted (WEB_RTCP).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import pylibsrtp

from gateway.media import arrival
from gateway.media.coarse_timers import PERIODIC_GRID, Cancellable, coarse_timers
from gateway.media.fastlane.native import (
    SIP_RAW,
    SIP_RTP,
    SIP_TO_WEB,
    SRTP_SIP_VIDEO,
    VIDEO_SIP_RAW,
    VIDEO_SIP_RTP,
    WEB_RAW,
    WEB_RTCP,
    WEB_RTP,
    WEB_TO_SIP,
    Address,
    Datagram,
    NativeLink,
    load_codecs,
    new_engine,
)
from gateway.media.native_hooks import SocketHandover, srtp_functions, srtp_session_pointer

__all__ = [
    "COALESCE",
    "DRAIN_INTERVAL",
    "MAX_COALESCE",
    "PACK_LOAD",
    "TRANSCODING_LOAD",
    "Engine",
    "EnginePool",
    "FastLink",
    "LinkHandler",
    "SerializedSrtp",
]

logger = logging.getLogger(__name__)

# seconds between drains and syncs of every link; what reads the counters between syncs brings them up to
# date first (RTCP reports, watchdogs, BridgeStats; the consent checks read the engine's count): a tick for the
# latency samples (the engine keeps each lane's latest 128) and nothing else waiting
DRAIN_INTERVAL = 5.0
# seconds a busy engine thread waits after a round for the next packets (_fastlane_thread.c gather; media.
# fast_path_coalesce_ms): a fifth less CPU at 100 calls, each packet up to this much later; not while the
# waits end late (the CPUs busy with other processes: _fastlane.h GATHER_LATE)
COALESCE = 0.001
MAX_COALESCE = 0.005  # _fastlane.h's
# an engine thread's load (EnginePool.acquire): a pass-through call 1, a transcoding one TRANSCODING_LOAD
# (libopus per packet: 4-8x the CPU); pass-through calls are packed into the busiest thread below
# PACK_LOAD, so that it is busy enough to gather (COALESCE) from ~40 calls on (~15 us a packet: 250
# pass-through calls ~40 % of a core); transcoding ones go to the least loaded (shorter rounds)
TRANSCODING_LOAD = 8
PACK_LOAD = 250


class LinkHandler(Protocol):
    """What a ``FastLink`` hands back to its owner (the bridge's fast-lane controller)."""

    def fast_sync(self, native: NativeLink) -> None: ...
    def fast_web_datagram(self, data: bytes, source: Address) -> None: ...
    def fast_web_rtp(self, data: bytes) -> None: ...
    def fast_web_rtcp(
        self,
        data: bytes,
        late: float,
        packets: int,
        octets: int | None,
        upstream: tuple[int, int] | None = None,
    ) -> None: ...
    def fast_sip_datagram(self, data: bytes, source: Address) -> None: ...
    def fast_sip_rtp(self, data: bytes, source: Address) -> None: ...
    def fast_video_sip_datagram(self, data: bytes, source: Address, decrypted: bool) -> None: ...
    def fast_rearm(self) -> None: ...
    def fast_failed(self) -> None: ...


_SRTP_OPS = ("protect", "unprotect", "protect_rtcp", "unprotect_rtcp")  # Link.srtp's operations


class SerializedSrtp:
    """Stands in for SRTP sessions the engine holds while linked: same methods, run by the engine under its
    lock (libsrtp sessions are not thread-safe); errors raise ``pylibsrtp.Error``. On the web leg it
    replaces one of aiortc's ``pylibsrtp.Session`` objects; with ``sip`` the SIP leg's ``SipSrtp`` (both
    directions: protect with its tx session, unprotect with its rx); with ``video`` the SIP side's video
    endpoint's (``NativeLink.video``'s sessions)."""

    def __init__(self, link: NativeLink, original: Any, *, sip: bool = False, video: bool = False) -> None:
        self.link = link
        self.original = original
        self.sip = sip or video
        self._sessions = SRTP_SIP_VIDEO if video else int(self.sip)  # which of the link's sessions

    @property
    def sessions(self) -> tuple[pylibsrtp.Session, pylibsrtp.Session] | None:
        """The SIP leg's (``SipSrtp``), which the engine holds."""
        sessions: tuple[pylibsrtp.Session, pylibsrtp.Session] | None = self.original.sessions
        return sessions

    @property
    def ready(self) -> bool:
        return bool(self.original.ready)

    @property
    def separate_rtcp(self) -> bool:
        return bool(self.original.separate_rtcp)

    def _run(self, op: int, data: bytes) -> bytes:
        if self.link.closed:  # being unlinked (what the engine queued is handled now): the thread no
            return bytes(getattr(self.original, _SRTP_OPS[op])(data))  # longer uses the sessions
        result = self.link.srtp(op, data, self._sessions)
        if isinstance(result, int):
            raise pylibsrtp.Error(f"libsrtp error {result}")
        return result

    def protect(self, packet: bytes) -> bytes:
        return self._run(0, packet)

    def unprotect(self, packet: bytes) -> bytes:
        return self._run(1, packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        if self.sip and self.separate_rtcp:  # RTCP's own sessions: the engine never holds them
            return bytes(self.original.protect_rtcp(packet))
        return self._run(2, packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        if self.sip and self.separate_rtcp:
            return bytes(self.original.unprotect_rtcp(packet))
        return self._run(3, packet)


class EngineCounters(NamedTuple):
    """What the engine threads counted (the operator's /metrics: gateway/ops/metrics.py)."""

    gathering_waits: int  # rounds after which a thread waited to gather packets (Engine.coalesced)
    late_waits: int  # of those waits, the ones that ended over 0.5 ms late: the CPUs busy (Engine.overslept)
    long_rounds: int  # rounds that held the engine's lock over 2 ms
    lock_waits: int  # times a thread waited over 1 ms for the lock (Python held it)
    queue_drops: int  # datagrams lost to a full queue for Python, or RTP dropped for a Python behind

    @classmethod
    def of(cls, native: Any) -> EngineCounters:
        lock_waits, _, long_rounds, _ = native.timing
        return cls(native.coalesced, native.overslept, long_rounds, lock_waits, native.queue_drops)

    def plus(self, other: EngineCounters) -> EngineCounters:
        return EngineCounters(*(a + b for a, b in zip(self, other, strict=True)))


class EnginePool:
    """The fast lane's engines of one event loop: created on demand, at most ``workers``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        workers: int | None = None,
        coalesce: float = COALESCE,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        if not 0 <= coalesce <= MAX_COALESCE:
            raise ValueError(f"coalesce must be 0 to {MAX_COALESCE} seconds, got {coalesce!r}")
        self._loop = loop
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.coalesce = coalesce
        self.engines: list[Engine] = []
        self._retired = EngineCounters(0, 0, 0, 0, 0)  # the stopped engines' counts
        self._transcoding: frozenset[str] | None = None
        self._closed = False

    @property
    def transcoding(self) -> frozenset[str]:
        """The codec pairs the engines transcode themselves (loaded once, at the first call's setup)."""
        if self._transcoding is None:
            self._transcoding = load_codecs()
        return self._transcoding

    @property
    def links(self) -> int:
        return sum(len(engine.links) for engine in self.engines)

    def counters(self) -> EngineCounters:
        """What every engine thread counted since the pool began, stopped ones included."""
        total = self._retired
        for engine in self.engines:
            total = total.plus(EngineCounters.of(engine.native))
        return total

    def _stopped(self, engine: Engine) -> None:
        self.engines.remove(engine)
        self._retired = self._retired.plus(EngineCounters.of(engine.native))  # its thread ended: final

    def acquire(self, *, passthrough: bool = False) -> Engine:
        """The engine for a new call: a pass-through call to the busiest engine below PACK_LOAD (a
        busy thread gathers its packets, COALESCE), a transcoding one (libopus' work) to the least busy."""
        if self._closed:
            raise RuntimeError("the fast lane's engines are closed")
        if passthrough:
            packing = [e for e in self.engines if e.load < PACK_LOAD]
            if packing:
                return max(packing, key=lambda e: e.load)
        idle = min(self.engines, key=lambda e: e.load, default=None)
        if idle is not None and (idle.load == 0 or len(self.engines) >= self.workers):
            return idle
        engine = Engine(
            self._loop or asyncio.get_running_loop(), on_close=self._stopped, coalesce=self.coalesce
        )
        self.engines.append(engine)
        return engine

    def link(
        self,
        handler: LinkHandler,
        *,
        call_id: str,
        web_transport: asyncio.DatagramTransport,
        sip_transport: asyncio.DatagramTransport,
        sessions: tuple[pylibsrtp.Session, pylibsrtp.Session],
        install: Callable[[NativeLink], Callable[[tuple[int, int]], None]],
        sip_sessions: tuple[pylibsrtp.Session, pylibsrtp.Session] | None = None,
        passthrough: bool = False,
        latency: bool = False,
    ) -> FastLink:
        """Move a call's two sockets to an engine. ``sessions``: the web leg's libsrtp sessions (rx, tx);
        ``sip_sessions``: the SIP leg's when it has SRTP. The link keeps them alive until closed.
        ``install(native)`` puts the link into the legs (SRTP stand-ins, senders) and returns the function
        that takes it out again, given the outputs' next sequence numbers; asyncio reads the sockets again
        after. ``latency``: the call's latency meter is on; its engine then reads the clock as it sends each
        packet and keeps the samples (from then on, for all its calls). ``ValueError`` when a transport is
        not a plain UDP socket of a selector loop (a TURN relay: the engine would see TURN framing)."""
        loop = self._loop or asyncio.get_running_loop()
        handover = SocketHandover(loop, (web_transport, sip_transport))
        engine = self.acquire(passthrough=passthrough)
        if latency:
            engine.native.latency = True
        rx, tx = sessions
        link_id = engine.next_id()
        web_fd, sip_fd = handover.fds
        sip_pointers = tuple(srtp_session_pointer(s) for s in sip_sessions) if sip_sessions else (0, 0)
        try:
            native: NativeLink = engine.native.link(
                link_id, web_fd, sip_fd, srtp_session_pointer(rx), srtp_session_pointer(tx),
                (rx, tx, sip_sessions), *sip_pointers,
            )  # fmt: skip
        except BaseException:
            engine.close_if_idle()
            raise
        handover.take()
        try:
            uninstall = install(native)
        except BaseException:
            native.close()
            handover.give_back()
            engine.close_if_idle()
            raise

        def restore(sequences: tuple[int, int]) -> None:
            uninstall(sequences)
            handover.give_back()

        load = 1 if passthrough else TRANSCODING_LOAD
        return FastLink(engine, link_id, native, handler, call_id=call_id, restore=restore, load=load)

    def close(self) -> None:
        """Stop every engine (their links stop forwarding); idempotent. Calls are closed before."""
        self._closed = True
        for engine in list(self.engines):
            engine.close()


class Engine:
    """One native thread and its links; closed with its last link."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        on_close: Callable[[Engine], None],
        coalesce: float = COALESCE,
    ) -> None:
        self._loop = loop
        self._on_close = on_close
        self.native: Any = new_engine(srtp_functions(), coalesce)
        self.links: dict[int, FastLink] = {}
        self.load = 0  # its links' (FastLink.load): EnginePool.acquire
        self._ids = itertools.count(1)
        self._timer: Cancellable | None = None  # the sync tick, on the coarse timers' slots
        self._failed = False
        self.closed = False
        # while drain() hands datagrams over, links whose re-arm waits for the end of the batch: a lane
        # armed earlier would forward (take_back, _fastlane_link.c) packets newer than ones still in the batch
        self._draining = 0
        self._deferred: dict[FastLink, None] = {}
        loop.add_reader(self.native.notify_fd, self.drain)

    def next_id(self) -> int:
        return next(self._ids) & 0xFFFFFFFF

    def add(self, link_id: int, link: FastLink) -> None:
        self.links[link_id] = link
        self.load += link.load
        if self._timer is None:
            self._timer = coarse_timers(self._loop).call_later(DRAIN_INTERVAL, self._tick, grid=PERIODIC_GRID)

    def remove(self, link_id: int) -> None:
        link = self.links.pop(link_id, None)
        if link is not None:
            self.load -= link.load
        self.close_if_idle()

    def close_if_idle(self) -> None:
        if not self.links:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._loop.is_closed():
                self._loop.remove_reader(self.native.notify_fd)
            self.native.close()
        finally:
            self._on_close(self)  # after the thread ended (its counts final); never left in the pool

    def _tick(self) -> None:
        self._timer = None
        self.drain()
        for link in list(self.links.values()):
            link.sync(reports=False)
        if self.links:
            self._timer = coarse_timers(self._loop).call_later(DRAIN_INTERVAL, self._tick, grid=PERIODIC_GRID)

    def defer_rearm(self, link: FastLink) -> bool:
        """While a batch is handed over: re-arm ``link`` after it (True), not now (a call's media changed
        because of a datagram of the batch, say DTLS completing)."""
        if self._draining:
            self._deferred[link] = None
        return self._draining > 0

    def drain(self) -> None:
        """Hand everything the thread queued to its links, in arrival order; then let them re-arm."""
        if self._failed or self.closed:
            return
        items = self.native.drain()
        if self.native.failed:  # the thread is gone: asyncio reads the sockets again
            self._failed = True
            logger.error("fast lane engine failed: %d call(s) back on the Python path", len(self.links))
            for owner in list(self.links.values()):
                owner.handler.fast_failed()
            return
        if not items:
            return
        punted: dict[FastLink, None] = {}  # in order of their first datagram
        links = self.links
        now = time.monotonic()  # how late each one is handled (gateway.media.arrival): RTCP's RTT
        self._draining += 1
        try:
            for raw in items:
                link = links.get(raw[0])
                if link is None:
                    continue  # closed meanwhile
                if link not in punted and not _control(raw[1], raw[2]):
                    # what it forwarded before is accounted before the datagram is handled; RTCP and STUN
                    # read and change nothing of that, nor of the lanes (a report is built with its own sync)
                    punted[link] = None
                    link.sync()
                arrival.late = now - raw[4]  # Datagram.arrival: the engine's time.monotonic() of it
                arrival.at = raw[4]
                link.handle(Datagram._make(raw))
        finally:
            arrival.late = arrival.at = 0.0
            self._draining -= 1
        if self._draining:  # a drain inside a handler's: the outer one re-arms after its batch
            self._deferred.update(punted)
            return
        deferred, self._deferred = self._deferred, {}
        for link in {**punted, **deferred}:
            try:
                link.handler.fast_rearm()
            except Exception:
                logger.exception("call=%s re-arming the fast lane failed", link.call_id)


class FastLink:
    """One call's sockets in an engine; created by ``EnginePool.link``, undone by ``close``."""

    def __init__(
        self,
        engine: Engine,
        link_id: int,
        native: NativeLink,
        handler: LinkHandler,
        *,
        call_id: str,
        restore: Callable[[tuple[int, int]], None],
        load: int = 1,
    ) -> None:
        self._engine = engine
        self.link_id = link_id
        self.native = native
        self.handler = handler
        self.call_id = call_id
        self._restore = restore
        self.load = load  # in the engine's (EnginePool.acquire)
        engine.add(link_id, self)

    def sync(self, *, reports: bool = True) -> None:
        """Let the handler read what the engine accounted for this link's forwarded packets, and take the
        browser's kept reports unless ``reports`` is False (the tick, the watchdogs: nothing they decide
        reads them; the engine keeps the latest of each kind until our report or statistics take them)."""
        if self.native.closed:
            return
        try:
            self.handler.fast_sync(self.native)
        except Exception:  # one call's accounting must not stop the others'
            logger.exception("call=%s accounting fast-lane packets failed", self.call_id)
        if reports:
            self.reports()

    def reports(self) -> None:
        """Hand the browser's report compounds the engine kept since the last time to the handler, oldest
        first, each with how late it is now and the SIP side's loss at its arrival (all the SRTCP packets
        and octets that arrived count with the last: aiortc's DTLS counters)."""
        if self.native.closed:
            return
        taken = self.native.reports()
        if taken is None:
            return
        packets, octets, compounds = taken
        now = time.monotonic()
        last = len(compounds) - 1
        try:
            for index, (arrived, data, upstream) in enumerate(compounds):
                if index < last:
                    self.handler.fast_web_rtcp(data, now - arrived, 1, 0, upstream)
                else:
                    self.handler.fast_web_rtcp(data, now - arrived, packets - last, octets, upstream)
        except Exception:  # one call's statistics must not stop the others'
            logger.exception("call=%s handling the browser's RTCP reports failed", self.call_id)

    def handle(self, datagram: Datagram) -> None:
        """A datagram the engine did not forward: to the handler asyncio would have called."""
        handler = self.handler
        try:
            if datagram.kind == WEB_RTP:
                handler.fast_web_rtp(datagram.data)
            elif datagram.kind == WEB_RTCP:  # decrypted: feedback, BYE (reports come from ``reports``)
                handler.fast_web_rtcp(datagram.data, arrival.late, 1, None)
            elif datagram.kind == WEB_RAW:
                handler.fast_web_datagram(datagram.data, datagram.source)
            elif datagram.kind == SIP_RTP:
                handler.fast_sip_rtp(datagram.data, datagram.source)
            elif datagram.kind in (VIDEO_SIP_RAW, VIDEO_SIP_RTP):  # the SIP side's video socket
                handler.fast_video_sip_datagram(
                    datagram.data, datagram.source, datagram.kind == VIDEO_SIP_RTP
                )
            else:
                handler.fast_sip_datagram(datagram.data, datagram.source)
        except Exception:  # as asyncio's datagram callbacks: log, keep going
            logger.exception("call=%s handling a datagram from the fast lane failed", self.call_id)

    def drain(self) -> None:
        self._engine.drain()

    def defer_rearm(self) -> bool:
        """Whether the engine re-arms this link after the batch it is handing over (Engine.defer_rearm)."""
        return self._engine.defer_rearm(self)

    def close(self) -> None:
        """Account for what was forwarded and is queued, stop the thread using the sockets, give them back
        to asyncio."""
        if self.native.closed:
            return
        self.native.disarm(WEB_TO_SIP)  # nothing more is forwarded: the last sync accounts for all of it
        self.native.disarm(SIP_TO_WEB)
        self.sync()
        sequences = (self.native.sequence(WEB_TO_SIP), self.native.sequence(SIP_TO_WEB))
        self.native.close()  # nothing more is queued for it; what is, is handled now
        # the legs' own paths first (senders, SRTP), so that what the queue held goes out through them: a
        # SIP packet handled in this drain is sent on to the browser, and the closed link refuses it
        self._restore(sequences)  # (asyncio reads the sockets again only after this step)
        self._engine.drain()
        self._engine.remove(self.link_id)


def _control(kind: int, data: bytes) -> bool:
    """An RTCP (or SRTCP) or STUN datagram the engine left to Python: RFC 5761 §4, packet types 192-223 in
    the second octet (RFC 7983's 128-191 first octet on the web leg; the SIP leg's RTP socket with
    rtcp-mux); STUN by RFC 7983's 0-3 first octet (consent checks and their answers: each new nominated
    ICE pair, restart or renomination, reaches the controller by its own update (``IcePathChanged``), and
    a lane takes no packet from another address)."""
    if kind == WEB_RTCP:
        return True
    if kind not in _RAW or len(data) < 8:
        return False
    return (128 <= data[0] <= 191 and 192 <= data[1] <= 223) or (data[0] < 4 and len(data) >= 20)


_RAW = (WEB_RAW, SIP_RAW, VIDEO_SIP_RAW)
