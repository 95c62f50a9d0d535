"""T.140 real-time text over RTP (RFC 4103), sans-I/O: packets in, text out; text in, packets out.

How it works:

* **Receiving** (``T140Receiver``): each packet is plain T.140 (its UTF-8 text) or RED (RFC 2198,
  RFC 4103 §4: the primary block last, before it the primaries of up to ``generations`` earlier packets,
  oldest first). A packet the next in sequence gives its primary. After a gap of ``n`` packets, the last
  ``n`` redundant blocks of the packet after it give what the lost ones carried, in order; what no block
  covers is marked with one U+FFFD, the missing text marker (RFC 4103 §4.5, ITU-T T.140 Amd. 1). A packet
  older than the last one taken (a duplicate, or one overtaken by the redundancy) gives nothing. A new
  SSRC starts over. U+FEFF (T.140's BOM, sent at the start or as a keep-alive) is left out.
* **Sending** (``T140Sender``): text written is buffered and goes out once per ``interval`` (300 ms,
  RFC 4103 §5), a packet carrying the new text (possibly none) and the previous ``generations`` packets'
  primaries as redundancy, until those are all sent twice; then nothing at all while idle (§5.2). The
  first packet after idle has the marker bit (§3).

Timestamps count milliseconds (RFC 4103 §6: clock rate 1000). The RTP header (SSRC, sequence numbers) is
the endpoint's; the sender gives payload type, payload, timestamp and marker.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Final

from gateway.media.rtp import red
from gateway.media.rtp.packet import RtpPacket
from sdp.text import TextFormat

logger = logging.getLogger(__name__)

MISSING: Final = "\ufffd"  # T.140's missing text marker
BOM: Final = "\ufeff"
BACKSPACE: Final = "\b"  # T.140 erases the last character with U+0008
INTERVAL: Final = 0.3  # seconds of buffering before a packet goes (RFC 4103 §5)
MAX_PRIMARY: Final = 512  # octets of new text per packet, under RED's 10-bit block length (RFC 2198 §3)


@dataclass(slots=True)
class TextStats:
    packets: int = 0  # taken in
    recovered: int = 0  # lost packets whose text came from the redundancy
    lost: int = 0  # lost packets no redundancy covered (a U+FFFD each gap)
    duplicates: int = 0  # old or repeated packets left out
    malformed: int = 0


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace(BOM, "")


class T140Receiver:
    """The text of the SIP side's T.140 packets, in order, lost text recovered from the redundancy."""

    def __init__(self, fmt: TextFormat, call_id: str = "-") -> None:
        self._fmt = fmt
        self._call = call_id
        self._ssrc: int | None = None
        self._next = 0  # the sequence number expected next
        self.stats = TextStats()

    def feed(self, packet: RtpPacket) -> str:
        """The text ``packet`` gives (recovered text first), "" when it gives none."""
        blocks = self._blocks(packet)
        if blocks is None:
            self.stats.malformed += 1
            return ""
        *redundant, primary = blocks
        seq = packet.sequence_number
        if self._ssrc != packet.ssrc:  # the first packet, or a new source: nothing before it is owed
            self._ssrc, gap = packet.ssrc, 0
        else:
            gap = (seq - self._next) & 0xFFFF
            if gap >= 0x8000:  # behind the last one taken
                self.stats.duplicates += 1
                return ""
        self._next = (seq + 1) & 0xFFFF
        self.stats.packets += 1
        parts: list[str] = []
        if gap:
            covered = min(gap, len(redundant))
            if covered < gap:
                self.stats.lost += gap - covered
                parts.append(MISSING)
                logger.info("call=%s T.140: %d packets lost beyond the redundancy", self._call, gap - covered)
            self.stats.recovered += covered
            parts += [_text(block) for block in redundant[len(redundant) - covered :]]
        parts.append(_text(primary))
        return "".join(parts)

    def _blocks(self, packet: RtpPacket) -> list[bytes] | None:
        """The packet's T.140 blocks, oldest first and the primary last; None when it is malformed."""
        fmt = self._fmt
        if packet.payload_type == fmt.t140:
            return [packet.payload]
        if packet.payload_type != fmt.red:
            return None
        blocks = red.unpack(packet.payload, packet.timestamp)
        if blocks is None or any(b.payload_type != fmt.t140 for b in blocks):
            return None
        return [b.payload for b in blocks]


class T140Sender:
    """Text typed on the web side, as the T.140 packets of ``fmt`` (RED when negotiated) at ``interval``."""

    def __init__(self, fmt: TextFormat, *, interval: float = INTERVAL, timestamp_base: int = 0) -> None:
        self._fmt = fmt
        self._interval = interval
        self._base = timestamp_base
        self._buffer = ""
        self._history: deque[red.RedBlock] = deque(maxlen=fmt.generations or 1)  # our last primaries
        self._last: float | None = None  # when the last packet went, None while idle
        self._since: float | None = None  # when text came in while idle

    def write(self, text: str, now: float) -> None:
        if not text:
            return
        if self.idle:  # a new burst: no redundancy owed, the marker bit, ``interval`` of buffering
            self._reset()
            self._since = now
        self._buffer += text

    @property
    def idle(self) -> bool:
        """Nothing to send: no new text, and all redundancy sent."""
        return not self._buffer and not any(b.payload for b in self._history)

    def due(self) -> float | None:
        """When the next packet goes (a clock time of ``write``'s), None while idle."""
        if self.idle:
            return None
        last = self._last if self._last is not None else self._since
        return (last or 0.0) + self._interval

    def take(self, now: float) -> tuple[int, bytes, int, bool] | None:
        """The packet due at ``now``: (payload type, payload, timestamp, marker); None when none is."""
        due = self.due()
        if due is None or now < due:
            return None
        data = self._next_primary()
        timestamp = (self._base + round(now * 1000)) & 0xFFFFFFFF
        marker = self._last is None
        self._last, self._since = now, None
        fmt = self._fmt
        if fmt.red is None:
            return fmt.t140, data, timestamp, marker
        primary = red.RedBlock(fmt.t140, timestamp, data)
        payload = red.pack(primary, tuple(self._history))
        self._history.append(primary)
        return fmt.red, payload, timestamp, marker

    def _next_primary(self) -> bytes:
        """Up to MAX_PRIMARY octets of whole characters from the buffer."""
        data = self._buffer.encode("utf-8", "surrogatepass")
        if len(data) <= MAX_PRIMARY:
            self._buffer = ""
            return data
        chunk = data[:MAX_PRIMARY].decode("utf-8", "ignore")  # a character cut at the end is left for later
        self._buffer = self._buffer[len(chunk) :]
        return chunk.encode("utf-8")

    def _reset(self) -> None:
        """Idle: the next burst starts with no redundancy and the marker bit."""
        self._history.clear()
        self._last = self._since = None
