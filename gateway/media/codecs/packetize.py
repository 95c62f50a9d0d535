"""Re-packetization of sample-based audio for a SIP peer that wants other packet times (pure).

G.711 (PCMU, PCMA) and G.722 carry one byte per RTP timestamp tick at 8000 Hz (RFC 3551 §4.5.2, §4.5.14),
so their payloads can be cut and joined anywhere: 20 ms packets from the browser become the 30 or 40 ms
a desk phone's ``a=ptime`` asks for (or the 10 ms of a ``maxptime``), without decoding. Opus frames are
not cut (its packets stay 20 ms; RFC 7587 receivers take any). G.729 is cut between its 10-byte frames of
10 ms, one byte per 8 ticks (RFC 3551 §4.5.6; the gateway's encoder never sends the 2-byte SID frames that
would break that). A gap in the input timestamps (loss, a
new source) sends what is buffered as a shorter packet and starts again, so no timestamp ever lies.
"""

from __future__ import annotations

import math
from typing import Final

import sdp

DEFAULT_MS: Final = 20
MIN_MS: Final = 10
MAX_MS: Final = 60
# the codecs cut without decoding, and the RTP timestamp ticks per payload byte of each
TICKS_PER_BYTE: Final = {"pcmu": 1, "pcma": 1, "g722": 1, "g729": 8}


def packet_ms(section: sdp.MediaDescription) -> int:
    """The packet time to send to the peer of ``section`` (its own SDP): ``a=ptime``, capped by
    ``a=maxptime`` (RFC 8866 §6.4, §6.5), in 10 ms steps from 10 to 60; 20 when it says nothing."""
    try:
        wanted = section.ptime or DEFAULT_MS
    except sdp.SdpError:
        wanted = DEFAULT_MS
    ms = MIN_MS * round(wanted / MIN_MS)
    cap = section.maxptime
    if cap is not None and ms > cap:
        ms = MIN_MS * math.floor(cap / MIN_MS)
    return max(MIN_MS, min(MAX_MS, ms))


class Packetizer:
    """``ms``-millisecond packets of a sample-based codec (or G.729: ``ticks_per_byte`` 8) from packets
    of any length."""

    __slots__ = ("_buffer", "_marker", "_start", "_ticks", "ms", "size")

    def __init__(self, ms: int, ticks_per_byte: int = 1) -> None:
        if not MIN_MS <= ms <= MAX_MS:
            raise ValueError(f"packet time must be {MIN_MS}-{MAX_MS} ms, got {ms!r}")
        self.ms = ms
        self._ticks = ticks_per_byte
        self.size = ms * 8 // ticks_per_byte  # bytes of ``ms`` at 8000 ticks per second
        self._buffer = bytearray()
        self._start = 0  # the timestamp of the buffer's first byte
        self._marker = False

    def push(self, payload: bytes, timestamp: int, marker: bool = False) -> list[tuple[bytes, int, bool]]:
        """(payload, timestamp, marker) of the packets complete after ``payload`` stamped ``timestamp``."""
        out: list[tuple[bytes, int, bool]] = []
        if self._buffer and (timestamp - self._start - self._ticks * len(self._buffer)) & 0xFFFF_FFFF:
            out.append(self._take(len(self._buffer)))  # a gap: what we have goes out as it is
        if not self._buffer:
            self._start, self._marker = timestamp, marker
        self._buffer += payload
        while len(self._buffer) >= self.size:
            out.append(self._take(self.size))
        return out

    def _take(self, size: int) -> tuple[bytes, int, bool]:
        packet = (bytes(self._buffer[:size]), self._start, self._marker)
        del self._buffer[:size]
        self._start = (self._start + self._ticks * size) & 0xFFFF_FFFF
        self._marker = False
        return packet

    def reset(self) -> None:
        self._buffer.clear()
