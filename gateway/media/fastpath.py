"""The media fast lane: steady pass-through RTP forwarded by a native thread (``_fastlane.c``).

Why: in Python every packet costs an event-loop wake-up plus the bridge's work, ~250 us at one call on
a small VM; the native thread costs a few system calls. Python keeps every decision:

* A ``FastLink`` takes over one call's two sockets (the web leg's nominated ICE socket and the SIP leg's
  RTP socket) once both legs are up and the call is pass-through: asyncio stops reading them and the
  engine thread reads both from then on. Packets go through the same paths as before unless a *lane*
  is armed: for each direction, the bridge arms a lane with what its Python path would do to the next
  packet (source address, SSRC, payload types, timestamp offset, destination). A packet that fits is
  rewritten and sent by the thread, which queues a *record* of it; anything else (STUN, DTLS, RTCP,
  telephone-events, a new SSRC or address, a timestamp jump, a held direction) is queued as a datagram
  and disarms its lane. RTP from the browser is always decrypted by the thread.
* ``drain()`` runs when the thread has queued a datagram it did not forward (an eventfd wakes the loop:
  media, ICE consent checks and RTCP timing wait for it) and every ``DRAIN_INTERVAL`` seconds for the
  records of forwarded packets: datagrams go to the handlers asyncio would have called (aioice's protocol,
  ``DirectReceiver``, ``RtpEndpoint``), records to the bridge, which accounts for them as if its Python
  path had forwarded them (statistics for RTCP, loss, timestamp mapper, watchdogs, latency). Then the
  bridge re-arms; a lane is never armed while a packet of its direction waits in the queue (no
  reordering). Inactivity watchdogs drain before they decide, so they never miss a forwarded packet.
* Transcoding: Opus <-> PCMU/PCMA is done by the thread too (libopus, the copy PyAV bundles; G.711 by
  the same tables as ``transcode``), through 8 kHz PCM in 20 ms frames; other pairs (G.722) stay on
  the Python path, which also handles the first packets of every call until the lanes are armed.
* Output sequence numbers and SRTP belong to the engine while linked: ``DirectSender`` and
  ``RtpEndpoint`` send their own packets (DTMF, transcoded audio) through ``Link.send``, and aiortc's
  libsrtp sessions are replaced by ``SerializedSrtp``, which runs them under the engine's lock.

Without the compiled module (``available()`` False), or with ``fast_path`` off in the bridge settings,
everything stays on the Python path.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import pylibsrtp

from gateway.media.forward import Lane

logger = logging.getLogger(__name__)

try:
    from gateway.media import _fastlane  # type: ignore[attr-defined]
except ImportError:  # not compiled (no C compiler at install time): the Python path does everything
    _fastlane = None

DRAIN_INTERVAL = 1.0  # seconds between drains when only records wait (statistics, watchdogs)
WORKERS = max(1, min(4, os.cpu_count() or 1))  # engine threads per event loop, at most

WEB_TO_SIP = 0  # lane and output numbers of _fastlane
SIP_TO_WEB = 1
RECORD_WEB_TO_SIP, RECORD_SIP_TO_WEB, WEB_RAW, WEB_RTP, SIP_RTP = range(5)

Address = tuple[Any, ...]


CODECS = {"": 0, "opus": 1, "pcmu": 2, "pcma": 3}  # _fastlane's codec numbers ("": pass-through)
TRANSCODING = frozenset({"opus>pcmu", "opus>pcma", "pcmu>opus", "pcma>opus"})  # what lanes can transcode


def available() -> bool:
    """Whether the native module was built."""
    return _fastlane is not None


_transcoding: bool | None = None


def transcoding() -> frozenset[str]:
    """The codec pairs the engine transcodes itself (``TRANSCODING``) once it has libopus (the copy PyAV
    bundles, else the system's) and the G.711 tables (``transcode``'s, the same FFmpeg gives); none else."""
    global _transcoding
    if _transcoding is None:
        _transcoding = _load_codecs()
    return TRANSCODING if _transcoding else frozenset()


def _load_codecs() -> bool:
    if _fastlane is None:
        return False
    import ctypes
    import ctypes.util
    import glob

    import av

    from gateway.media.transcode import g711_tables

    libs = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
    candidates = sorted(glob.glob(os.path.join(libs, "libopus*.so*"))) + [ctypes.util.find_library("opus")]
    names = (
        "opus_decoder_create", "opus_decode", "opus_decoder_destroy", "opus_encoder_create", "opus_encode",
        "opus_encoder_ctl", "opus_encoder_destroy",
    )  # fmt: skip
    functions: tuple[int, ...] | None = None
    for path in candidates:
        if not path:
            continue
        try:
            library = ctypes.CDLL(path)
            functions = tuple(
                ctypes.cast(getattr(library, name), ctypes.c_void_p).value or 0 for name in names
            )
        except (OSError, AttributeError) as exc:
            logger.debug("libopus at %s not usable: %s", path, exc)
            continue
        if all(functions):
            break
        functions = None
    tables = [g711_tables(law) for law in ("pcm_mulaw", "pcm_alaw")]
    ready = bool(
        _fastlane.set_codecs(functions, *(part for t in tables for part in (t.decode_pcm, t.encode)))
    )
    logger.info("fast lane transcoding %s", "on (libopus found)" if ready else "off (no libopus)")
    return ready


class NativeLink(Protocol):
    closed: bool

    def set_output(self, which: int, first: int, ssrc: int, seq: int, extension: bytes = b"") -> None: ...
    def arm(
        self, which: int, source: Address, destination: Address, ssrc: int, pt_in: int, pt_out: int,
        anchor_in: int, anchor_out: int, in_rate: int, out_rate: int, last_ts: int, last_time: float,
        codec_in: int, codec_out: int, next_ts: int, tolerance: int, frame_ticks: int,
    ) -> None: ...  # fmt: skip
    def disarm(self, which: int) -> None: ...
    def armed(self, which: int) -> bool: ...
    def send(
        self, which: int, destination: Address, marker: bool, pt: int, ts: int, payload: bytes
    ) -> int: ...
    def srtp(self, op: int, data: bytes) -> bytes | int: ...
    def counters(self) -> tuple[int, int, int, int, int]: ...
    def sequence(self, which: int) -> int: ...
    def close(self) -> None: ...


def arm(
    native: NativeLink, which: int, source: Address, destination: Address, pt_out: int, lane: Lane
) -> None:
    """Arm lane ``which`` with a direction's ``MediaPath.lane()``."""
    native.arm(
        which, source, destination, lane.ssrc, lane.payload_type, pt_out, lane.anchor_in, lane.anchor_out,
        lane.in_rate, lane.out_rate, lane.last_in, lane.last_now, CODECS[lane.codec_in], CODECS[lane.codec_out],
        lane.next_timestamp, lane.tolerance, lane.frame_ticks,
    )  # fmt: skip


class LinkHandler(Protocol):
    """What a ``FastLink`` hands back to its owner (the bridge)."""

    def fast_records(self, records: list[tuple[Any, ...]], wall_offset: float) -> None: ...
    def fast_web_datagram(self, data: bytes, source: Address) -> None: ...
    def fast_web_rtp(self, data: bytes) -> None: ...
    def fast_sip_datagram(self, data: bytes, source: Address) -> None: ...
    def fast_rearm(self) -> None: ...
    def fast_failed(self) -> None: ...


def _srtp_functions() -> tuple[int, int, int, int]:
    from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]  # the libsrtp that aiortc's sessions live in

    names = ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp", "srtp_unprotect_rtcp")
    a, b, c, d = (int(ffi.cast("uintptr_t", ffi.addressof(lib, name))) for name in names)
    return a, b, c, d


def session_pointer(session: pylibsrtp.Session) -> int:
    """The ``srtp_t`` of a pylibsrtp session (it stays owned by the session object)."""
    from pylibsrtp._binding import ffi

    return int(ffi.cast("uintptr_t", session._srtp[0]))


class SerializedSrtp:
    """Stands in for one of aiortc's ``pylibsrtp.Session`` objects while linked: same methods, run by the
    engine under its lock (libsrtp sessions are not thread-safe); errors raise ``pylibsrtp.Error``."""

    def __init__(self, link: NativeLink, original: pylibsrtp.Session) -> None:
        self.link = link
        self.original = original

    def _run(self, op: int, data: bytes) -> bytes:
        result = self.link.srtp(op, data)
        if isinstance(result, int):
            raise pylibsrtp.Error(f"libsrtp error {result}")
        return result

    def protect(self, packet: bytes) -> bytes:
        return self._run(0, packet)

    def unprotect(self, packet: bytes) -> bytes:
        return self._run(1, packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self._run(2, packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        return self._run(3, packet)


class Engine:
    """One native thread of an event loop, with its links; closed with its last link. A loop has up to
    ``WORKERS`` of them: a new call goes to the one with the fewest links, or starts another while all
    have some (one thread transcoding a hundred calls queues packets behind each other's encoding)."""

    _by_loop: ClassVar[dict[asyncio.AbstractEventLoop, list[Engine]]] = {}

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> Engine:
        engines = cls._by_loop.get(loop, [])
        idle = min(engines, key=lambda e: len(e._links), default=None)
        if idle is not None and (not idle._links or len(engines) >= WORKERS):
            return idle
        engine = cls(loop)
        cls._by_loop.setdefault(loop, []).append(engine)
        return engine

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert _fastlane is not None
        self._loop = loop
        self.native: Any = _fastlane.Engine(*_srtp_functions())
        self._links: dict[int, FastLink] = {}
        self._ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._failed = False
        loop.add_reader(self.native.notify_fd, self.drain)

    def next_id(self) -> int:
        return next(self._ids) & 0xFFFFFFFF

    def add(self, link_id: int, link: FastLink) -> None:
        self._links[link_id] = link
        if self._timer is None:
            self._timer = self._loop.call_later(DRAIN_INTERVAL, self._tick)

    def remove(self, link_id: int) -> None:
        self._links.pop(link_id, None)
        if not self._links:
            self.close()

    def close(self) -> None:
        engines = self._by_loop.get(self._loop, [])
        if self in engines:
            engines.remove(self)
            if not engines:
                del self._by_loop[self._loop]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._loop.is_closed():
            self._loop.remove_reader(self.native.notify_fd)
        self.native.close()

    def _tick(self) -> None:
        self._timer = None
        self.drain()
        if self._links:
            self._timer = self._loop.call_later(DRAIN_INTERVAL, self._tick)

    def drain(self) -> None:
        """Hand everything the thread queued to its links, in arrival order; then let them re-arm."""
        if self._failed:
            return
        items = self.native.drain()
        if self.native.failed:  # the thread is gone: asyncio reads the sockets again
            self._failed = True
            logger.error("fast lane engine failed: %d call(s) back on the Python path", len(self._links))
            for owner in list(self._links.values()):
                owner.handler.fast_failed()
            return
        if not items:
            return
        wall_offset = time.time() - time.monotonic()
        punted: set[FastLink] = set()
        pending: dict[FastLink, list[tuple[Any, ...]]] = {}  # records, accounted in batches
        links = self._links
        for item in items:
            link = links.get(item[0])
            if link is None:
                continue  # closed meanwhile
            if item[1] <= RECORD_SIP_TO_WEB:
                records = pending.get(link)
                if records is None:
                    pending[link] = [item]
                else:
                    records.append(item)
                continue
            records = pending.pop(link, None)
            if records:  # what came before the datagram is accounted before it is handled
                link.account(records, wall_offset)
            punted.add(link)
            link.handle(item)
        for link, records in pending.items():
            link.account(records, wall_offset)
        for link in punted:
            try:
                link.handler.fast_rearm()
            except Exception:
                logger.exception("call=%s re-arming the fast lane failed", link.call_id)


class FastLink:
    """One call's sockets in the engine; created by ``open``, undone by ``close``."""

    def __init__(
        self,
        engine: Engine,
        link_id: int,
        native: NativeLink,
        handler: LinkHandler,
        *,
        call_id: str,
        restore: Callable[[tuple[int, int]], None],
    ) -> None:
        self._engine = engine
        self.link_id = link_id
        self.native = native
        self.handler = handler
        self.call_id = call_id
        self._restore = restore
        engine.add(link_id, self)

    def account(self, records: list[tuple[Any, ...]], wall_offset: float) -> None:
        try:
            self.handler.fast_records(records, wall_offset)
        except Exception:  # one call's accounting must not stop the others'
            logger.exception("call=%s accounting fast-lane packets failed", self.call_id)

    def handle(self, item: tuple[Any, ...]) -> None:
        """A datagram the engine did not forward: to the handler asyncio would have called."""
        kind, handler = item[1], self.handler
        try:
            if kind == WEB_RTP:
                handler.fast_web_rtp(item[2])
            elif kind == WEB_RAW:
                handler.fast_web_datagram(item[2], item[3])
            else:
                handler.fast_sip_datagram(item[2], item[3])
        except Exception:  # as asyncio's datagram callbacks: log, keep going
            logger.exception("call=%s handling a datagram from the fast lane failed", self.call_id)

    def drain(self) -> None:
        self._engine.drain()

    def close(self) -> None:
        """Account for what is queued, stop the thread using the sockets, give them back to asyncio."""
        if self.native.closed:
            return
        sequences = (self.native.sequence(WEB_TO_SIP), self.native.sequence(SIP_TO_WEB))
        self.native.close()  # nothing more is queued for it; what is, is handled now
        self._engine.drain()
        self._engine.remove(self.link_id)
        self._restore(sequences)


def open_link(
    loop: asyncio.AbstractEventLoop,
    handler: LinkHandler,
    *,
    call_id: str,
    web_transport: asyncio.DatagramTransport,
    sip_transport: asyncio.DatagramTransport,
    sessions: tuple[pylibsrtp.Session, pylibsrtp.Session],
    install: Callable[[NativeLink], Callable[[tuple[int, int]], None]],
) -> FastLink:
    """Move the two sockets to the engine. ``install(native)`` puts the link into the legs (SRTP proxies,
    senders) and returns the function that takes it out again, given the outputs' next sequence numbers;
    asyncio reads the sockets again after. ``ValueError`` when a transport is not a plain UDP socket
    (a TURN relay: the engine would see TURN framing)."""
    sockets = [transport.get_extra_info("socket") for transport in (web_transport, sip_transport)]
    if any(sock is None or not hasattr(transport, "_read_ready") for sock, transport in
           zip(sockets, (web_transport, sip_transport), strict=True)):  # fmt: skip
        raise ValueError("not a plain UDP socket (a TURN relay?)")
    web_fd, sip_fd = (sock.fileno() for sock in sockets)
    engine = Engine.for_loop(loop)
    rx, tx = sessions
    link_id = engine.next_id()
    try:
        native: NativeLink = engine.native.link(
            link_id, web_fd, sip_fd, session_pointer(rx), session_pointer(tx), (rx, tx)
        )
    except BaseException:
        if not engine._links:
            engine.close()
        raise
    selector_loop: Any = loop

    def readers() -> None:
        for transport, fd in ((web_transport, web_fd), (sip_transport, sip_fd)):
            if not transport.is_closing() and not loop.is_closed():
                selector_loop._add_reader(fd, getattr(transport, "_read_ready"))  # noqa: B009

    selector_loop._remove_reader(web_fd)  # the engine thread reads them now (not two readers at once)
    selector_loop._remove_reader(sip_fd)
    try:
        uninstall = install(native)
    except BaseException:
        native.close()
        readers()
        if not engine._links:
            engine.close()
        raise

    def restore(sequences: tuple[int, int]) -> None:
        uninstall(sequences)
        readers()

    return FastLink(engine, link_id, native, handler, call_id=call_id, restore=restore)
