"""The boundary with the compiled engine (``gateway/media/_fastlane.c``): what it is given and returns.

``available()`` says whether the module was built. A ``NativeLink`` is the engine's handle on one
call; ``arm()`` gives a lane what the Python path would do to its direction's next packet. What the
engine queues for Python comes out of ``drain()`` as ``Record`` (a packet it forwarded) and
``Datagram`` (one it left to Python) values.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any, NamedTuple, Protocol

from gateway.media.forward import Lane
from gateway.media.native_hooks import opus_library_candidates

logger = logging.getLogger(__name__)

try:
    from gateway.media import _fastlane  # type: ignore[attr-defined]
except ImportError:  # not compiled (no C compiler at install time): the Python path does everything
    _fastlane = None

WEB_TO_SIP = 0  # lane and output numbers of _fastlane
SIP_TO_WEB = 1
# kinds of queued items: records, then datagrams (WEB_RTP and SIP_RTP: RTP the engine already unprotected)
RECORD_WEB_TO_SIP, RECORD_SIP_TO_WEB, WEB_RAW, WEB_RTP, SIP_RAW, SIP_RTP = range(6)
# Link.counters(): (DROPPED from the browser, forwarded web->sip, forwarded sip->web, send errors web->sip,
# send errors sip->web, SIP_DROPPED: SRTP from the SIP side that did not authenticate)
DROPPED, SIP_DROPPED = 0, 5

CODECS = {"": 0, "opus": 1, "pcmu": 2, "pcma": 3}  # _fastlane's codec numbers ("": pass-through)
TRANSCODING = frozenset({"opus>pcmu", "opus>pcma", "pcmu>opus", "pcma>opus"})  # what lanes can transcode
OPUS_FUNCTIONS = (
    "opus_decoder_create", "opus_decode", "opus_decoder_destroy", "opus_encoder_create", "opus_encode",
    "opus_encoder_ctl", "opus_encoder_destroy",
)  # fmt: skip

Address = tuple[Any, ...]


class Record(NamedTuple):
    """A packet the engine forwarded (or transcoded), for the bridge to account for."""

    link_id: int
    kind: int  # RECORD_WEB_TO_SIP or RECORD_SIP_TO_WEB
    ssrc: int
    seq: int
    ts: int
    pt: int
    marker: bool
    octets: int  # payload octets sent
    arrival: float  # time.monotonic() of its arrival
    out_ts: int  # the last timestamp written on output
    departure: float  # time.monotonic() of its departure
    sent: int  # packets sent for it (0 while a transcoder fills a frame, 1, or more)
    mapped: int  # its timestamp mapped to the output clock
    next_ts: int  # the timestamp of the next output frame, or -1


class Datagram(NamedTuple):
    """A datagram the engine left to Python (STUN, DTLS, RTCP, DTMF, anything a lane did not fit)."""

    link_id: int
    kind: int  # WEB_RAW, WEB_RTP (already decrypted), SIP_RAW, SIP_RTP (already decrypted)
    data: bytes
    source: Address
    arrival: float


class NativeLink(Protocol):
    closed: bool

    def set_output(self, which: int, first: int, ssrc: int, seq: int, extension: bytes = b"") -> None: ...
    def arm(  # False (nothing changed) while a packet of that direction waits in the queue
        self, which: int, source: Address, destination: Address, ssrc: int, pt_in: int, pt_out: int,
        anchor_in: int, anchor_out: int, in_rate: int, out_rate: int, last_ts: int, last_time: float,
        codec_in: int, codec_out: int, next_ts: int, tolerance: int, frame_ticks: int,
    ) -> bool: ...  # fmt: skip
    def disarm(self, which: int) -> None: ...
    def armed(self, which: int) -> bool: ...
    def send(
        self, which: int, destination: Address, marker: bool, pt: int, ts: int, payload: bytes
    ) -> int: ...
    def srtp(self, op: int, data: bytes, sip: bool = False) -> bytes | int: ...
    def counters(self) -> tuple[int, int, int, int, int, int]: ...
    def sequence(self, which: int) -> int: ...
    def close(self) -> None: ...


def available() -> bool:
    """Whether the native module was built."""
    return _fastlane is not None


def arm(
    native: NativeLink, which: int, source: Address, destination: Address, pt_out: int, lane: Lane
) -> None:
    """Arm lane ``which`` with a direction's ``MediaPath.lane()``."""
    native.arm(
        which, source, destination, lane.ssrc, lane.payload_type, pt_out, lane.anchor_in, lane.anchor_out,
        lane.in_rate, lane.out_rate, lane.last_in, lane.last_now, CODECS[lane.codec_in], CODECS[lane.codec_out],
        lane.next_timestamp, lane.tolerance, lane.frame_ticks,
    )  # fmt: skip


def load_codecs() -> frozenset[str]:
    """Give the engine libopus (PyAV's copy, else the system's) and the G.711 tables (``transcode``'s,
    the same FFmpeg gives); the codec pairs it then transcodes itself (none without libopus)."""
    if _fastlane is None:
        return frozenset()
    from gateway.media.transcode import g711_tables

    functions: tuple[int, ...] | None = None
    for path in opus_library_candidates():
        try:
            library = ctypes.CDLL(path)
            functions = tuple(
                ctypes.cast(getattr(library, name), ctypes.c_void_p).value or 0 for name in OPUS_FUNCTIONS
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
    return TRANSCODING if ready else frozenset()


def new_engine(srtp_functions: tuple[int, int, int, int]) -> Any:
    """A native engine and its thread."""
    if _fastlane is None:
        raise RuntimeError("the fast lane is not built (gateway.media._fastlane)")
    return _fastlane.Engine(*srtp_functions)
