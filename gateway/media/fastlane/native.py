"""The boundary with the compiled engine (``gateway/media/fastlane/_fastlane.c``): what it is given and returns.

``available()`` says whether the module was built. A ``NativeLink`` is the engine's handle on one
call; ``arm()`` gives a lane what the Python path would do to its direction's next packet. What the
engine leaves to Python comes out of ``drain()`` as ``Datagram`` values; what it forwarded is accounted
in the engine and read as a ``Snapshot`` per lane (``NativeLink.snapshot``), a few times a second.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

from gateway.media.forward import Lane
from gateway.media.native_hooks import opus_library_candidates
from gateway.media.rtp.rtp_stats import ReceptionState
from gateway.media.rtp.send_guard import SendGuard
from gateway.media.video.forward import VIDEO_RATE, VideoLaneState

logger = logging.getLogger(__name__)

try:
    from gateway.media.fastlane import _fastlane  # type: ignore[attr-defined]
except ImportError:  # not compiled (no C compiler at install time): the Python path does everything
    _fastlane = None

WEB_TO_SIP = 0  # lane and output numbers of _fastlane
SIP_TO_WEB = 1
# kinds of queued datagrams (WEB_RTP and SIP_RTP: RTP the engine already unprotected); 0 and 1 are retired
WEB_RAW: Final = 2
WEB_RTP: Final = 3
SIP_RAW: Final = 4
SIP_RTP: Final = 5
# the SIP side's video socket (``NativeLink.video``): raw, or RTP unprotected with its own sessions
VIDEO_SIP_RAW: Final = 6
VIDEO_SIP_RTP: Final = 7
# SRTCP from the browser the engine unprotected and handed over at once (feedback, BYE, ...): its report
# compounds it keeps instead, for ``NativeLink.reports``
WEB_RTCP = 8
SRTP_SIP_VIDEO = 2  # ``NativeLink.srtp``'s sessions: 0 the web leg's, 1 the SIP leg's, 2 the SIP side's video
VIDEO_CODECS = {"vp8": 1, "vp9": 2, "h264": 3}  # _fastlane's video codec numbers (keyframe counting)
# flavours of the engine's receive statistics: rtp_stats.ReceiveStatistics, aiortc's StreamStatistics
STATS_RFC3550, STATS_AIORTC = 0, 1
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


class Snapshot(NamedTuple):
    """What one lane forwarded (or transcoded) since the last snapshot, as the engine accounted it."""

    packets: int  # arrived and taken by the lane
    forwarded: int  # of which something was sent (a transcoder filling a frame sends nothing)
    transcoded: int
    lost: int  # forward.MediaPath's loss count (sequence gaps)
    sent: int  # packets sent on the output
    octets: int  # their payload octets
    ssrc: int  # the input source
    pt: int  # the last packet's payload type
    ts: int  # its timestamp
    arrival: float  # its time.monotonic() arrival
    mapped: int  # its timestamp mapped to the output clock
    next_ts: int  # the timestamp of the next output frame, or -1
    out_ts: int  # the last timestamp written on output
    departure: float  # time.monotonic() of the last departure (0.0 when nothing was sent)
    last_seq: int  # the last sequence number counted for loss
    reception: ReceptionState  # the input source's receive statistics (RFC 3550 A.1, A.3, A.8)
    restarted: bool  # A.1 saw the source restart
    latency: bytes | None  # arrival -> departure of the latest packets (native doubles), when asked
    late: int = 0  # dropped: they came after their slot was concealed or played (the reorder ring)
    recovered: int = 0  # lost packets restored from RFC 2198 redundancy (``Lane.red``)
    malformed: int = 0  # RED packets dropped as malformed (taken, counted, never forwarded)
    anchor_in: int = 0  # the lane's timestamp anchors (a lane armed by its first packet: that packet's)
    anchor_out: int = 0
    armed_from: Address | None = None  # a primed lane armed since: where its first packet came from
    gaps: int = 0  # loss events (``lost`` in runs of consecutive sequence numbers): MediaPath.gaps


class VideoSnapshot(NamedTuple):
    """What one video lane took since the last snapshot (counts) and the numbers it left (current)."""

    received: int
    forwarded: int
    repair_dropped: int
    dropped: int
    lost: int
    keyframes: int
    padding: int
    sent: int  # packets sent on the output
    octets: int  # their payload octets
    ssrc: int  # the input source
    ts: int  # the last forwarded packet's timestamp
    arrival: float  # the last packet's time.monotonic() arrival
    mapped: int  # the last timestamp mapped to the output timeline
    out_ts: int  # the last timestamp written on output
    departure: float  # time.monotonic() of the last departure
    offset: int  # output sequence number - input sequence number
    last_out: int  # the last output sequence number
    highest: int  # the highest input sequence number, -1: none
    reception: ReceptionState  # the input source's receive statistics
    restarted: bool


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
    def arm(  # False: a queued packet of that direction the lane would not take disarmed it (take_back)
        self, which: int, source: Address, destination: Address, ssrc: int, pt_in: int, pt_out: int,
        anchor_in: int, anchor_out: int, in_rate: int, out_rate: int, last_ts: int, last_time: float,
        codec_in: int, codec_out: int, next_ts: int, tolerance: int, frame_ticks: int,
        flavour: int = ..., clock_rate: int = ..., stats: ReceptionState | None = ..., last_seq: int = ...,
        red_in: int = ..., red_out: int = ..., primed: bool = ...,
    ) -> bool: ...  # fmt: skip
    def disarm(self, which: int) -> None: ...
    def self_arms(self) -> tuple[int, int]: ...
    def armed(self, which: int) -> bool: ...
    def send(
        self, which: int, destination: Address, marker: bool, pt: int, ts: int, payload: bytes, seq: int = ...
    ) -> int: ...
    def set_sequence_map(self, which: int, ssrc: int, offset: int, highest: int, bad: int) -> None: ...
    def sequence_map(self, which: int) -> tuple[int, int, int, int]: ...
    def opus_loss(self, which: int, fec: int, percent: int) -> bool: ...
    def opus_encoder(self, which: int) -> tuple[int, int] | None: ...
    def red_previous(  # RFC 2198: the lane's next redundant block (output timestamp, payload), set when given
        self, which: int, ts: int = ..., payload: bytes = ...
    ) -> tuple[int, bytes] | None: ...
    def srtp(self, op: int, data: bytes, sip: int = 0) -> bytes | int: ...
    def counters(self) -> tuple[int, int, int, int, int, int]: ...
    def disarms(self) -> tuple[int, int, int, int, int, int]: ...
    def reports(self) -> tuple[int, int, list[tuple[float, bytes, tuple[int, int] | None]]] | None: ...
    def snapshot(self, which: int, latency: bool = False) -> tuple[Any, ...] | None: ...
    def sequence(self, which: int) -> int: ...
    def ice(  # the browser's consent checks from remote answered in the thread (_stun.c), or None: stop
        self,
        username: bytes | None,
        password: bytes = ...,
        controlling: bool = ...,
        remote: tuple[Any, ...] = ...,
    ) -> None: ...
    def stun_answered(self) -> int: ...
    def close(self) -> None: ...
    # video (issue 19): the SIP side's video socket and one lane per direction
    def video(self, fd: int, sip_rx: int = ..., sip_tx: int = ...) -> None: ...
    def set_video_output(self, which: int, first: int, ssrc: int, extension: bytes = b"") -> None: ...
    def arm_video(
        self, which: int, source: Address, destination: Address, ssrc: int, pt_map: bytes, repair: bytes,
        codecs: bytes, offset: int, last_out: int, highest: int, anchor_in: int, anchor_out: int,
        last_ts: int, last_time: float, flavour: int, clock_rate: int, stats: ReceptionState | None,
        guard: bytearray | None = None,
    ) -> bool: ...  # fmt: skip
    def disarm_video(self, which: int) -> None: ...
    def video_snapshot(self, which: int) -> tuple[Any, ...] | None: ...
    def video_counters(self) -> tuple[int, int, int, int, int]: ...


def available() -> bool:
    """Whether the native module was built."""
    return _fastlane is not None


def stale_sources(built: Path | None = None) -> list[str]:
    """The C sources beside the built native module (``built``; by default the one imported) that are newer
    than it: a source tree changed without a rebuild, whose Python side may ask the engine for what it
    lacks (every call's link then fails, and the Python path carries the media). [] when it is not built,
    or when no source is beside it (an installed wheel)."""
    if built is None:
        if _fastlane is None or not getattr(_fastlane, "__file__", None):
            return []
        built = Path(_fastlane.__file__)
    try:
        at = built.stat().st_mtime
        return sorted(p.name for p in built.parent.glob("_*.[ch]") if p.stat().st_mtime > at)
    except OSError:
        return []


if stale := stale_sources():
    logger.warning(
        "fast lane: %s newer than the built module: rebuild it (make, or pip install -e .); until then calls "
        "may not link and the Python path carries their media",
        ", ".join(stale),
    )


class Accounts(NamedTuple):
    """The Python side's accounting of a lane's source, for the engine to continue from (``arm``)."""

    flavour: int  # STATS_RFC3550 or STATS_AIORTC
    clock_rate: int  # of the receive statistics
    reception: ReceptionState | None  # None: no packet yet
    last_seq: int  # forward.MediaPath's last sequence number of the source, -1: none


def arm(
    native: NativeLink, which: int, source: Address, destination: Address, pt_out: int, lane: Lane,
    accounts: Accounts, red_out: int = -1, *, primed: bool = False,
) -> None:  # fmt: skip
    """Arm lane ``which`` with a direction's ``MediaPath.lane()`` and the accounts of its source;
    ``red_out``: the RFC 2198 payload type its audio goes out in (-1: plain). ``primed``: the lane is
    ``MediaPath.first_lane()``'s, armed by the engine on the direction's first packet."""
    native.arm(
        which, source, destination, lane.ssrc, lane.payload_type, pt_out, lane.anchor_in, lane.anchor_out,
        lane.in_rate, lane.out_rate, lane.last_in, lane.last_now, CODECS[lane.codec_in], CODECS[lane.codec_out],
        lane.next_timestamp, lane.tolerance, lane.frame_ticks, *accounts, lane.red, red_out, primed,
    )  # fmt: skip


def snapshot(native: NativeLink, which: int, latency: bool = False) -> Snapshot | None:
    """What lane ``which`` accounted since the last snapshot (None: nothing)."""
    raw = native.snapshot(which, latency)
    if raw is None:
        return None
    return Snapshot._make((*raw[:15], ReceptionState._make(raw[15]), *raw[16:]))


def arm_video(
    native: NativeLink, which: int, source: Address, destination: Address, lane: VideoLaneState,
    flavour: int, reception: ReceptionState | None, guard: SendGuard | None = None,
) -> bool:  # fmt: skip
    """Arm video lane ``which`` with a direction's ``VideoPath.lane()`` and its source's receive statistics;
    ``guard``: its output's SRTP stream's (send_guard.py), which the engine then checks and keeps too."""
    pt_map, repair, codecs = bytearray(b"\xff" * 128), bytearray(128), bytearray(128)
    for pt_in, pt_out in lane.mapping:
        pt_map[pt_in] = pt_out
    for pt in lane.repair:
        repair[pt] = 1
    for pt, name in lane.codecs:
        codecs[pt] = VIDEO_CODECS.get(name.lower(), 0)
    return native.arm_video(
        which, source, destination, lane.ssrc, bytes(pt_map), bytes(repair), bytes(codecs), lane.offset,
        lane.last_out, lane.highest, lane.anchor_in, lane.anchor_out, lane.last_in, lane.last_now, flavour,
        VIDEO_RATE, reception, None if guard is None else guard.state,
    )  # fmt: skip


def video_snapshot(native: NativeLink, which: int) -> VideoSnapshot | None:
    """What video lane ``which`` took since the last snapshot (None: nothing)."""
    raw = native.video_snapshot(which)
    if raw is None:
        return None
    return VideoSnapshot._make((*raw[:18], ReceptionState._make(raw[18]), bool(raw[19])))


def replay(
    flavour: int, clock_rate: int, state: ReceptionState, packets: list[tuple[int, int, float]]
) -> tuple[ReceptionState, bool]:
    """The engine's receive statistics applied to (seq, ts, arrival) packets (for tests)."""
    if _fastlane is None:
        raise RuntimeError("the fast lane is not built (gateway.media.fastlane._fastlane)")
    raw, restarted = _fastlane.replay(flavour, clock_rate, state, packets)
    return ReceptionState._make(raw), bool(restarted)


def load_codecs() -> frozenset[str]:
    """Give the engine libopus (PyAV's copy, else the system's) and the G.711 tables (``transcode``'s,
    the same FFmpeg gives); the codec pairs it then transcodes itself (none without libopus)."""
    if _fastlane is None:
        return frozenset()
    from gateway.media.codecs.transcode import g711_tables

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


def set_opus_encoder(complexity: int, inband_fec: bool) -> None:
    """The settings of the engine's Opus encoders created from now on (gateway/media/codecs/opus_settings.py)."""
    if _fastlane is not None:
        _fastlane.set_opus_encoder(complexity, inband_fec)


def new_engine(srtp_functions: tuple[int, int, int, int], coalesce: float = 0.0) -> Any:
    """A native engine and its thread; ``coalesce``: Engine.coalesce (seconds a busy thread gathers)."""
    if _fastlane is None:
        raise RuntimeError("the fast lane is not built (gateway.media.fastlane._fastlane)")
    engine = _fastlane.Engine(*srtp_functions)
    if coalesce:
        engine.coalesce = coalesce
    return engine
