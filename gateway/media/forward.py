"""One direction of the bridge (web -> SIP or SIP -> web), sans-I/O: RTP packets in, payloads out.

For each input packet:

* audio in the codec the other leg sends: forwarded as is (no decoding), timestamp re-mapped onto the
  output timeline (``retime``); the output leg writes its own SSRC and sequence numbers;
* audio in another codec: decoded, resampled and re-encoded (``transcode``), 20 ms frames;
* G.711/G.722/G.729 for an output leg whose peer wants other packet times (a=ptime/maxptime): re-packetized
  (``packetize``; that direction then stays off the fast lane);
* RFC 4733 telephone-event: reported once per digit (``DtmfReceiver``) and forwarded with its
  timestamp mapped and its duration converted to the output event clock (RFC 4733 §2.5.2);
* comfort noise (RFC 3389) and unknown payload types are dropped;
* RFC 2198 redundancy (``audio/red``, Chrome's Opus in RED, ``rtp/red``): unwrapped, the primary handled
  as the Opus packet it carries. A packet lost before it is restored from its redundant copy: passed
  through with the lost one's sequence number and timestamp (so the far end never sees RED), or, when
  transcoding, decoded in the lost frame's place in preference to FEC or PLC. A malformed one is dropped.

While the direction is held (``enabled`` False: sendonly/inactive on either side) nothing is forwarded.
``forward_audio`` is ``feed`` for the common case (pass-through audio) without any allocation: the bridge
calls it first, and ``feed`` only for what it declines.
Loss is counted from sequence gaps per input SSRC (RFC 3550 A.1, simplified: reordering not credited).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sdp
from gateway.media.codecs.dtmf import DtmfDigit, DtmfReceiver, TelephoneEvent, event_timestamp
from gateway.media.codecs.packetize import DEFAULT_MS, TICKS_PER_BYTE, Packetizer
from gateway.media.codecs.transcode import TranscodeError, Transcoder, audio_codec
from gateway.media.errors import DtmfError
from gateway.media.rtp import red
from gateway.media.rtp.reorder import Released, ReorderBuffer
from gateway.media.rtp.retime import FrameClock, TimestampMapper, signed_delta

if TYPE_CHECKING:
    from gateway.media.fastlane.native import Snapshot

logger = logging.getLogger(__name__)

_MAX_GAP = 3000  # RFC 3550 A.1 MAX_DROPOUT
MAX_CONCEALED_FRAMES = 10  # a longer gap (200 ms) is left a gap: the output timeline moves over it
_RECOVERY = 16  # redundant blocks kept for the transcoder (a few packets' worth)


@dataclass(frozen=True, slots=True)
class OutPacket:
    """A payload for the output leg; ``payload_type`` None means the leg's audio codec; ``seq``: the input
    sequence number it is numbered from (``seqmap``), -1 for the sender's next."""

    payload: bytes
    timestamp: int
    payload_type: int | None = None
    marker: bool = False
    seq: int = -1


@dataclass(frozen=True, slots=True)
class Lane:
    """A direction's next packets as the fast lane forwards them (``MediaPath.lane``): the source, the
    timestamp mapping (retime.TimestampMapper's anchors) and, when transcoding, the codecs (lower-case
    names) and the output frame clock (retime.FrameClock: next timestamp or -1, tolerance, ticks)."""

    ssrc: int
    payload_type: int
    anchor_in: int
    anchor_out: int
    in_rate: int
    out_rate: int
    last_in: int
    last_now: float
    codec_in: str = ""
    codec_out: str = ""
    next_timestamp: int = -1
    tolerance: int = 0
    frame_ticks: int = 0
    red: int = -1  # ``payload_type`` is RFC 2198 RED around this audio payload type (-1: plain audio)


@dataclass(frozen=True, slots=True)
class PathStats:
    received: int
    forwarded: int
    lost: int
    dropped: int
    transcoded: int
    dtmf_digits: int
    recovered: int = 0  # lost packets restored from RFC 2198 redundancy


def _audio(codec: sdp.Codec) -> bool:
    """A codec of audio of its own: not an RFC 4733 event, not RFC 2198 redundancy (which wraps one)."""
    return not codec.is_telephone_event and codec.name.lower() != red.RED_NAME


def same_codec(a: sdp.Codec, b: sdp.Codec) -> bool:
    """Same payload format for pass-through: name and clock rate (opus is always signalled /2)."""
    return a.name.lower() == b.name.lower() and a.clock_rate == b.clock_rate


class MediaPath:
    """Forwarding state of one direction. ``configure`` again after each negotiation."""

    def __init__(self, name: str, *, call_id: str = "-", on_skip: Callable[[], None] | None = None) -> None:
        self.name = name
        self._call = call_id
        self._enabled = True
        # input the far end will not get under its numbers (a hold ended; an RFC 4733 event told by SIP
        # INFO): the sender forgets its numbering, so the far end sees no gap (rtp/seqmap.py)
        self._on_skip = on_skip
        self._in: dict[int, sdp.Codec] = {}
        self._red: frozenset[int] = frozenset()  # payload types of RFC 2198 redundancy (audio/red)
        self._recovery: dict[int, bytes] = {}  # redundant blocks by input timestamp (transcoding)
        self._direct: dict[int, int] = {}  # payload type -> clock rate of pass-through audio
        self._out: sdp.Codec | None = None
        self._out_event: sdp.Codec | None = None
        self._mapper: TimestampMapper | None = None
        self._frames: FrameClock | None = None
        self._transcoders: dict[str, Transcoder] = {}
        # transcoded audio is decoded in order (rtp.reorder) and its gaps concealed; ``_expect``: where
        # on the output timeline the next input packet starts when nothing is missing
        self._reorder = ReorderBuffer()
        self._reorder_key: tuple[int, str] | None = None  # (SSRC, codec) of what the buffer holds
        self._expect: int | None = None
        self._dtmf: dict[int, DtmfReceiver] = {}
        self._last_seq: dict[int, int] = {}
        self._last_pt: int | None = None  # of the last pass-through packet (``lane``)
        self._red_primary: int | None = None  # the audio payload type in the last RED packet (``lane``)
        self._event_times: dict[tuple[int, int], int] = {}
        self._packetizer: Packetizer | None = None  # when the output leg wants other packet times
        self.received = self.forwarded = self.lost = self.dropped = self.transcoded = self.digits = 0
        self.recovered = 0
        self.gaps = 0  # loss events: runs of consecutive lost packets (their mean length: conceal_choice)

    def configure(
        self,
        incoming: Mapping[int, sdp.Codec],
        out: sdp.Codec,
        out_event: sdp.Codec | None,
        packet_ms: int = DEFAULT_MS,
    ) -> None:
        """``incoming``: payload type -> codec the input leg may send (telephone-events included);
        ``packet_ms``: the packet time the output leg wants (G.711, G.722 and G.729 are re-packetized)."""
        self._in = dict(incoming)
        ticks = TICKS_PER_BYTE.get(out.name.lower())
        wanted = packet_ms if ticks is not None and packet_ms != DEFAULT_MS else None
        if wanted is None or ticks is None:
            self._packetizer = None
        elif self._packetizer is None or self._packetizer.size != wanted * 8 // ticks:
            self._packetizer = Packetizer(wanted, ticks)
            logger.info("call=%s %s re-packetizes %s to %d ms", self._call, self.name, out.name, wanted)
        self._direct = {pt: c.clock_rate for pt, c in incoming.items() if _audio(c) and same_codec(c, out)}
        self._red = frozenset(pt for pt, c in incoming.items() if c.name.lower() == red.RED_NAME)
        if self._out is None or not same_codec(self._out, out):
            self._transcoders.clear()
            self._frames = FrameClock(tolerance=3 * audio_codec(out.name).frame_ticks)
        self._out, self._out_event = out, out_event
        audio = [c for c in incoming.values() if _audio(c)]
        in_rate = audio[0].clock_rate if audio else out.clock_rate
        if self._mapper is None:
            self._mapper = TimestampMapper(in_rate, out.clock_rate, name=f"call={self._call} {self.name}")
        else:
            self._mapper.set_rates(in_rate, out.clock_rate)

    def forget_input(self) -> None:
        """The input went elsewhere for a while (a three-way call's mixer): its numbering starts again at
        the next packet, so the packets it did not see are neither counted lost (issue 67 item 1: a
        merge left hundreds in the record, the live quality and the loss histograms) nor concealed, and
        the reorder buffer holds nothing from before."""
        self._last_seq.clear()
        self._expect = None
        self._reorder = ReorderBuffer()
        self._reorder_key = None

    @property
    def configured(self) -> bool:
        return self._out is not None

    @property
    def passthrough(self) -> bool:
        """Whether the input's codec (the first audio codec of ``incoming``: the one its leg negotiated to
        send) is the output codec (no transcoding). Others it may send are transcoded if they come: a
        browser answered G.711 then Opus sends G.711 (Opus is ours to send it: conceal_steer.py)."""
        out = self._out
        first = next((c for c in self._in.values() if _audio(c)), None)
        return out is not None and self._packetizer is None and first is not None and same_codec(first, out)

    def codec_pairs(self) -> frozenset[str]:
        """ "input>output" lower-case codec names of the audio this direction may transcode."""
        out = self._out
        if out is None or self._packetizer is not None:  # the fast lane sends 20 ms frames only
            return frozenset()
        return frozenset(
            f"{c.name.lower()}>{out.name.lower()}"
            for c in self._in.values()
            if _audio(c) and not same_codec(c, out)
        )

    def stats(self) -> PathStats:
        return PathStats(
            self.received,
            self.forwarded,
            self.lost,
            self.dropped,
            self.transcoded,
            self.digits,
            self.recovered,
        )

    def now_timestamp(self, now: float, event_rate: int = 0) -> int:
        """The output timestamp for something generated locally now (a DTMF digit sent by the bridge),
        in ``event_rate``'s clock when given (``event_timestamp``)."""
        if self._mapper is None:
            return 0
        return event_timestamp(self._mapper.now_out(now), self._mapper.out_rate, event_rate)

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        resumed, self._enabled = value and not self._enabled, value
        if resumed and self._on_skip is not None:  # what came while held was not sent
            self._on_skip()

    def forward_audio(self, ssrc: int, seq: int, timestamp: int, payload_type: int, now: float) -> int:
        """The output timestamp of a pass-through audio packet (counted as ``feed`` would), or -1 when the
        packet needs ``feed`` (an event, another codec, held, a codec switch): nothing was counted then."""
        rate = self._direct.get(payload_type)
        mapper = self._mapper
        if (
            rate is None
            or mapper is None
            or mapper.in_rate != rate
            or not self._enabled
            or self._packetizer is not None
        ):
            return -1
        self.received += 1
        self.forwarded += 1
        self._count_loss(ssrc, seq)
        self._last_pt = payload_type
        return mapper.map(ssrc, timestamp, now)

    def last_sequence(self, ssrc: int) -> int:
        """The last sequence number of ``ssrc`` counted for loss, -1 before its first (the fast lane's
        engine continues the count)."""
        return self._last_seq.get(ssrc, -1)

    def fast_account(self, snap: Snapshot) -> None:
        """Packets the fast lane forwarded or transcoded (its engine counted them and the loss as
        ``forward_audio``/``feed`` would have): the counters, and the timeline moved to the last."""
        self.received += snap.packets
        self.forwarded += snap.forwarded
        self.transcoded += snap.transcoded
        self.lost += snap.lost
        self.gaps += snap.gaps
        self.dropped += snap.late + snap.malformed
        self.recovered += snap.recovered
        if snap.last_seq >= 0:
            self._last_seq[snap.ssrc] = snap.last_seq
        mapper = self._mapper
        if mapper is not None and snap.packets:  # the engine armed the lane on the first packet (first_lane)
            mapper.adopt(snap.ssrc, snap.anchor_in, snap.anchor_out, snap.arrival)
        if mapper is not None and not mapper.advance(snap.ssrc, snap.ts, snap.arrival, snap.mapped):
            mapper.map(snap.ssrc, snap.ts, snap.arrival)  # reconfigured since: the last one maps anew
        if snap.next_ts >= 0 and self._frames is not None:
            self._frames.next = snap.next_ts
        if snap.transcoded and not self._reorder.pending:  # the engine decoded up to its last packet
            self._reorder.restart((snap.last_seq + 1) & 0xFFFF if snap.last_seq >= 0 else None)
            self._expect = None
        self._last_pt = snap.pt

    def lane(self, transcoding: frozenset[str] = frozenset()) -> Lane | None:
        """What the fast lane needs to treat the next packet as ``forward_audio``/``feed`` would, or None
        when this direction's next packet is not audio of the last source that it can handle:
        pass-through, or a codec pair in ``transcoding`` ("opus>pcmu", ...) with the last packet's codec.
        RFC 2198 RED (the last packet's) is the lane's too: it unwraps it as ``feed`` does (``Lane.red``)."""
        mapper, pt = self._mapper, self._last_pt
        state = mapper.anchor_state() if mapper is not None else None
        if mapper is None or pt is None or state is None:
            return None
        return self._lane(mapper, pt, state, transcoding)

    def first_lane(
        self, payload_type: int, now: float, transcoding: frozenset[str] = frozenset()
    ) -> Lane | None:
        """``lane()`` for this direction's first packet, before Python has had any: one of ``payload_type``
        (the codec the input leg was given first) is mapped to where the output timeline stands at its
        arrival (``anchor_out`` is where it stands ``now``, ``last_now``; the engine moves it on by the
        time between). The engine arms it on that packet, whose SSRC and timestamp replace ``ssrc`` and
        ``anchor_in`` (0 here); ``fast_account`` then takes its anchors. None once a packet came, or for
        RFC 2198 RED."""
        mapper = self._mapper
        if mapper is None or self.received or mapper.anchor_state() is not None or payload_type in self._red:
            return None
        return self._lane(mapper, payload_type, (0, mapper.now_out(now), 0, now), transcoding)

    def _lane(
        self,
        mapper: TimestampMapper,
        pt: int,
        state: tuple[int, int, int, float],
        transcoding: frozenset[str],
    ) -> Lane | None:
        out = self._out
        if out is None or not self._enabled or self._packetizer is not None:
            return None
        audio = self._red_primary if pt in self._red else pt
        codec = self._in.get(audio) if audio is not None else None
        if audio is None or codec is None or not _audio(codec) or mapper.in_rate != codec.clock_rate:
            return None
        red_in = audio if audio != pt else -1
        anchor_in, anchor_out, last_in, last_now = state
        if audio in self._direct:
            return Lane(mapper.ssrc or 0, pt, anchor_in, anchor_out, mapper.in_rate, mapper.out_rate,
                        last_in, last_now, red=red_in)  # fmt: skip
        pair = f"{codec.name.lower()}>{out.name.lower()}"
        frames = self._frames
        if pair not in transcoding or frames is None or self._reorder.pending:
            return None  # (packets held for reordering are decoded here first)
        ticks = audio_codec(out.name).frame_ticks
        return Lane(
            mapper.ssrc or 0, pt, anchor_in, anchor_out, mapper.in_rate, mapper.out_rate, last_in, last_now,
            codec.name.lower(), out.name.lower(), -1 if frames.next is None else frames.next,
            frames.tolerance, ticks, red_in,
        )  # fmt: skip

    def feed(
        self, ssrc: int, seq: int, timestamp: int, payload_type: int, marker: bool, payload: bytes, now: float
    ) -> tuple[list[OutPacket], list[DtmfDigit]]:
        self.received += 1
        previous = self._last_seq.get(ssrc, -1)
        self._count_loss(ssrc, seq)
        wrapper: int | None = None
        redundant: tuple[red.RedBlock, ...] = ()
        if payload_type in self._red:
            blocks = red.unpack(payload, timestamp)
            inner = self._in.get(blocks[-1].payload_type) if blocks else None
            if blocks is None or inner is None or not _audio(inner):
                self.dropped += 1
                logger.debug("call=%s %s dropping a malformed RED packet", self._call, self.name)
                return [], []
            wrapper, payload_type, payload = payload_type, blocks[-1].payload_type, blocks[-1].payload
            redundant = tuple(b for b in blocks[:-1] if b.payload_type == payload_type and b.payload)
        codec = self._in.get(payload_type)
        out, mapper = self._out, self._mapper
        held: list[OutPacket] = []
        if (codec is None or codec.is_telephone_event) and self._reorder_key is not None:
            held = self._skip(ssrc, seq, now)  # its number is not a gap in the audio
        if codec is None or out is None or mapper is None:
            self.dropped += 1
            logger.debug("call=%s %s dropping payload type %d", self._call, self.name, payload_type)
            return self._packets(held), []
        if codec.is_telephone_event:
            packets, digits = self._event(codec, ssrc, timestamp, marker, payload, now)
            return self._packets(held) + packets, digits
        if not self._enabled:
            self.dropped += 1
            return [], []
        # what waits for reordering is another source's or codec's: out first, on its own timeline
        flushed = self._flush() if self._reorder_key not in (None, (ssrc, codec.name.lower())) else []
        if mapper.in_rate != codec.clock_rate:
            mapper.set_rates(codec.clock_rate, out.clock_rate)
        mapped = mapper.map(ssrc, timestamp, now)
        self._last_pt = payload_type if wrapper is None else wrapper  # (the fast lane unwraps RED too)
        if wrapper is not None:
            self._red_primary = payload_type
        if same_codec(codec, out):
            if wrapper is None:
                self.forwarded += 1
                return self._packets(flushed + [OutPacket(payload, mapped, None, marker)]), []
            restored = self._restore(ssrc, seq, previous, timestamp, redundant, now)
            self.forwarded += 1 + len(restored)
            self.recovered += len(restored)
            return self._packets([*flushed, *restored, OutPacket(payload, mapped, None, marker, seq)]), []
        decoded = self._reordered(codec, out, ssrc, seq, timestamp, payload, now, redundant)
        return self._packets(flushed + decoded), []

    def _restore(
        self,
        ssrc: int,
        seq: int,
        previous: int,
        timestamp: int,
        redundant: tuple[red.RedBlock, ...],
        now: float,
    ) -> list[OutPacket]:
        """The packets lost just before ``seq`` (after ``previous``, the last seen) that its redundant
        blocks restore, oldest first: the k-th newest block is packet ``seq - k`` (RFC 2198 §3: each is
        an earlier packet's data, in order), stamped and numbered in its place."""
        assert self._mapper is not None
        missing = ((seq - previous) & 0xFFFF) - 1 if previous >= 0 else 0
        older = [b for b in redundant if signed_delta(timestamp - b.timestamp) > 0]
        if not 0 < missing < _MAX_GAP:  # none lost, or a late packet (before ``previous``) or a jump
            return []
        chosen = older[-missing:]  # (all there are when more are missing: the newest ones)
        return [
            OutPacket(b.payload, self._mapper.peek(ssrc, b.timestamp, now), None, False,
                      (seq - len(chosen) + i) & 0xFFFF)
            for i, b in enumerate(chosen)
        ]  # fmt: skip

    def _flush(self) -> list[OutPacket]:
        """What the reorder buffer holds, decoded (before another source, codec or pass-through audio)."""
        key, out = self._reorder_key, self._out
        if not self._reorder.pending or key is None or out is None:
            return []
        codec = next((c for c in self._in.values() if c.name.lower() == key[1]), None)
        released = self._reorder.flush()
        return self._decode(codec, out, key[0], released, 0.0) if codec is not None else []

    def _skip(self, ssrc: int, seq: int, now: float) -> list[OutPacket]:
        """A number of the reordered source taken by an event or a dropped payload type: what it frees."""
        key, out = self._reorder_key, self._out
        if key is None or key[0] != ssrc or out is None:
            return []
        codec = next((c for c in self._in.values() if c.name.lower() == key[1]), None)
        released = self._reorder.skip(seq, now)
        return self._decode(codec, out, ssrc, released, now) if codec is not None and released else []

    def _reordered(
        self,
        codec: sdp.Codec,
        out: sdp.Codec,
        ssrc: int,
        seq: int,
        timestamp: int,
        payload: bytes,
        now: float,
        redundant: tuple[red.RedBlock, ...] = (),
    ) -> list[OutPacket]:
        key = (ssrc, codec.name.lower())
        if key != self._reorder_key:  # (``feed`` flushed what the buffer held)
            self._reorder.restart()
            self._reorder_key, self._expect = key, None
            self._recovery.clear()
        for block in redundant:  # decoded in place of the frame it copies, should that one be missing
            self._recovery[block.timestamp] = block.payload
            while len(self._recovery) > _RECOVERY:
                del self._recovery[next(iter(self._recovery))]
        late = self._reorder.late
        released = self._reorder.push(seq, timestamp, payload, now)
        self.dropped += self._reorder.late - late  # its slot was concealed or played already
        self.transcoded += 1
        return self._decode(codec, out, ssrc, released, now)

    def _decode(
        self, codec: sdp.Codec, out: sdp.Codec, ssrc: int, released: list[Released], now: float
    ) -> list[OutPacket]:
        """Released packets decoded in order, each gap before one concealed, stamped on the input's
        timeline: a concealed frame takes the lost one's slot, a gap left unconcealed moves the output
        timeline on by as much (so no frame after a gap is shifted early)."""
        assert self._mapper is not None and self._frames is not None
        result: list[OutPacket] = []
        for packet in released:
            transcoder = self._transcoder(codec, out)
            if transcoder is None:
                return result
            mapped = self._mapper.peek(ssrc, packet.timestamp, now)
            out_ticks = transcoder.target.frame_ticks
            gap = signed_delta(mapped - self._expect) if self._expect is not None else 0
            if packet.lost and 0 < gap <= MAX_CONCEALED_FRAMES * out_ticks and transcoder.conceals:
                assert self._expect is not None
                frames = min(round(gap / out_ticks), MAX_CONCEALED_FRAMES)
                # a lost frame's redundant copy (RED), by its input timestamp
                ticks = out_ticks * self._mapper.in_rate // self._mapper.out_rate
                copies = [
                    self._recovery.pop((packet.timestamp - (frames - i) * ticks) % (1 << 32), None)
                    for i in range(frames)
                ]
                self.recovered += sum(1 for c in copies if c)
                result += [
                    OutPacket(p, self._frames.stamp((self._expect + i * out_ticks) % (1 << 32), out_ticks))
                    for i, p in enumerate(transcoder.conceal(frames, packet.payload, copies))
                ]
                gap -= frames * out_ticks
            if gap and self._frames.next is not None:
                # the input moved on by more (or less) than it sent: so does the output
                self._frames.next = (self._frames.next + gap) % (1 << 32) if gap > 0 else None
            frames_out = transcoder.transcode(packet.payload)
            result += [OutPacket(p, self._frames.stamp(mapped, out_ticks)) for p in frames_out]
            duration = transcoder.last_samples * out.clock_rate // transcoder.decode_rate
            self._expect = (mapped + duration) % (1 << 32)
            self.forwarded += 1 if frames_out else 0
        return result

    def _transcoder(self, codec: sdp.Codec, out: sdp.Codec) -> Transcoder | None:
        transcoder = self._transcoders.get(codec.name.lower())
        if transcoder is None:
            try:
                transcoder = self._transcoders[codec.name.lower()] = Transcoder(codec.name, out.name)
            except TranscodeError as exc:
                self.dropped += 1
                logger.warning("call=%s %s: %s", self._call, self.name, exc)
                return None
            logger.info("call=%s %s transcoding %s -> %s", self._call, self.name, codec.name, out.name)
        return transcoder

    def _packets(self, packets: list[OutPacket]) -> list[OutPacket]:
        """``packets`` cut or joined to the output leg's packet time, when it wants another one."""
        packetizer = self._packetizer
        if packetizer is None or not packets:
            return packets
        out: list[OutPacket] = []
        for packet in packets:
            for payload, timestamp, marker in packetizer.push(
                packet.payload, packet.timestamp, packet.marker
            ):
                out.append(OutPacket(payload, timestamp, None, marker))
        return out

    def _event(
        self, codec: sdp.Codec, ssrc: int, timestamp: int, marker: bool, payload: bytes, now: float
    ) -> tuple[list[OutPacket], list[DtmfDigit]]:
        receiver = self._dtmf.get(ssrc)
        if receiver is None:
            receiver = self._dtmf[ssrc] = DtmfReceiver(codec.clock_rate)
        try:
            event = TelephoneEvent.parse(payload)
            digits = receiver.feed(timestamp, event)
        except DtmfError as exc:
            self.dropped += 1
            logger.debug("call=%s %s bad telephone-event: %s", self._call, self.name, exc)
            return [], []
        self.digits += len(digits)
        target = self._out_event
        if not self._enabled or target is None or self._mapper is None:
            if self._enabled and target is None and self._on_skip is not None:  # told by INFO, not sent
                self._on_skip()
            return [], digits
        duration = min(0xFFFF, event.duration * target.clock_rate // codec.clock_rate)
        converted = TelephoneEvent(event.event, event.end, event.volume, duration)
        mapped = self._event_timestamp(ssrc, timestamp, now)
        mapped = event_timestamp(mapped, self._mapper.out_rate, target.clock_rate)  # RFC 4733 §2.1
        self.forwarded += 1
        return [OutPacket(converted.serialize(), mapped, target.payload_type, marker)], digits

    def _event_timestamp(self, ssrc: int, timestamp: int, now: float) -> int:
        """Events on the audio's SSRC keep their place on its timeline; events on a separate SSRC start now.
        Every packet of one event (its input timestamp) gets the output timestamp its first one got (RFC
        4733 §2.5.1.2: an event's packets share one timestamp): mapped packet by packet, a re-sync of the
        audio's mapping between them made the far end see a second event (a digit twice, under load)."""
        assert self._mapper is not None
        key = (ssrc, timestamp)
        mapped = self._event_times.get(key)
        if mapped is None:
            if self._mapper.ssrc in (None, ssrc):
                mapped = self._mapper.peek(ssrc, timestamp, now)
            else:
                mapped = self._mapper.now_out(now)
            self._event_times[key] = mapped
            while len(self._event_times) > 16:
                del self._event_times[next(iter(self._event_times))]
        return mapped

    def _count_loss(self, ssrc: int, seq: int) -> None:
        last = self._last_seq.get(ssrc)
        if last is not None:
            gap = (seq - last) & 0xFFFF
            if gap == 0 or gap > 0x8000:
                return  # duplicate or late
            if gap < _MAX_GAP:
                self.lost += gap - 1
                self.gaps += gap > 1
        self._last_seq[ssrc] = seq
