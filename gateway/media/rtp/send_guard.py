"""Never two different video packets under one SRTP index (RFC 3711 §9.1, RFC 7714 §9.1).

A video transmit stream lets a packet go out again under its index (libsrtp's ``allow_repeat_tx``: aiortc's
web-leg session, ``SdesSrtp(repeats=True)``): a packet the far end asks for again (generic NACK, RFC 4585
§6.2.1) is resent by its sender and forwarded as the very same bytes. That also lets a *different* packet
go out under an index used already, and an eavesdropper then holds two ciphertexts under one keystream
(the XOR of the payloads) and, with AES-GCM, under one nonce (the authentication key, and forged packets
with it). The gateway numbers forwarded video from the other leg's numbers (``gateway/media/video/
forward.py``, its floor drops what arrives late across a new offset), so what the numbering cannot see
would still do it: a duplicate of an input number with another payload (a spoofed plain RTP packet, a
sender's bug), a sender that restarts its numbers under one SSRC, packets of an old source the engine
still forwards when the browser's new SSRC arrives.

``SendGuard`` is the check at the send: for each of the last ``SLOTS`` indices sent on one stream it keeps
the last ``TAG`` octets of the protected packet (of its authentication tag: a MAC over the whole packet,
which another packet cannot match without the key). A packet under an index sent already goes only with
that tag, i.e. when it is the same packet; one older than the window is refused (libsrtp's own window is
at most as long). The index is estimated from the highest protected exactly as libsrtp's sender does
(``srtp_rdbx_estimate_index``, RFC 3711 §3.3.1): the guard only refuses a packet libsrtp did not take for a
new highest, so protecting it changed nothing libsrtp numbers by (its rollover counter stays the
receiver's), and its ciphertext is never sent.

The state is one ``bytearray`` that the fast lane's engine reads and writes too, in the same layout
(``guard_admit`` in ``gateway/media/fastlane/_fastlane_video.c``) while it holds the stream's video lane;
Python sends on the stream only while the lane is disarmed (the engine disarms it before it leaves a packet
of the stream's direction to Python, the browser's new SSRC included), and the engine's lock orders the two.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["SLOTS", "TAG", "SendGuard", "estimate"]

SLOTS: Final = 1024  # indices remembered: libsrtp's replay window of the streams that allow repeats (<= 1024)
TAG: Final = 8  # octets of the end of a protected packet kept per index
_HEAD: Final = struct.Struct("=q8x")  # the highest index protected (libsrtp's starts at 0); native order
_SLOT: Final = struct.Struct(f"=Q{TAG}s")  # index + 1 (0: empty), the packet's last TAG octets
SIZE: Final = _HEAD.size + SLOTS * _SLOT.size


class SendGuard:
    """The indices one SRTP stream sent and the tags they went with (module note)."""

    __slots__ = ("refused", "state")

    def __init__(self) -> None:
        # never resized nor cleared: the engine holds a view of it (a new key takes a new SendGuard)
        self.state = bytearray(SIZE)  # highest 0, every slot empty
        self.refused = 0

    def admit(self, packet: bytes) -> bool:
        """Whether ``packet`` (protected, RTP header first) may be sent: its index is new, or it is the
        packet sent under it. Recorded when it may."""
        if len(packet) < 12 + TAG:
            self.refused += 1
            return False
        state = self.state
        (highest,) = _HEAD.unpack_from(state, 0)
        delta = estimate(highest, packet[2] << 8 | packet[3])
        if delta <= -SLOTS:
            self.refused += 1
            return False
        index = highest + delta
        at = _HEAD.size + (index % SLOTS) * _SLOT.size
        tag = packet[-TAG:]
        if delta <= 0:
            stored, kept = _SLOT.unpack_from(state, at)
            if stored == index + 1:
                if kept == tag:
                    return True
                self.refused += 1
                return False
        _SLOT.pack_into(state, at, index + 1, tag)
        if delta > 0:
            _HEAD.pack_into(state, 0, index)
        return True


def estimate(highest: int, seq: int) -> int:
    """libsrtp's ``srtp_rdbx_estimate_index`` (and ``srtp_index_guess``): how far ``seq``'s index is from
    the highest protected, ``highest`` (libsrtp 2.x, seq_num_median 2^15; below it the index is the number
    itself, a late number from before 0 taken for a jump ahead)."""
    if highest <= 0x8000:
        return seq - highest
    local = highest & 0xFFFF
    if local < 0x8000:
        return seq - local - 0x10000 if seq - local > 0x8000 else seq - local
    return seq - local + 0x10000 if local - 0x8000 > seq else seq - local
