"""A seeded user-space network impairment for one leg of a call: loss, Gilbert-Elliott bursts, jitter.

This machine's kernel has no ``sch_netem`` (TESTING.md), so a leg is impaired by a small UDP relay that
sits between a peer and the box on loopback ports (no network namespace: every peer here binds
127.0.0.1, and a relay on two loopback ports works for any of them, a browser included):

    peer  <->  [side A]  relay  [side B]  <->  box

The peer is told the relay's side A is the box (its candidate / SDP address rewritten), the box is told
side B is the peer. Packets from the peer to the box (A -> B) are impaired; the reverse direction passes
untouched, at once. Only RTP is impaired (first byte 128-191 and not an RTCP packet type, RFC 7983 §7
and RFC 5761 §4): STUN, DTLS and RTCP pass at once, so that the call sets up the same way whatever the
impairment and the same seed drops and delays the same RTP packets through every box.

``Impairer`` is the sans-I/O core: one decision per RTP packet, in order, from its own
``random.Random(seed)``:

* ``loss``: each packet is lost with this probability (independent, "random loss");
* ``burst_loss`` (with ``burst_ms``): a two-state Gilbert-Elliott channel (Gilbert's special case: all
  packets lost in the Bad state, none in the Good one). With 20 ms packets a mean burst of ``burst_ms``
  is ``n = burst_ms / 20`` packets, so P(Bad -> Good) = 1/n, and P(Good -> Bad) = r / (n (1 - r)) gives
  the stationary loss rate r = ``burst_loss``;
* ``delay_ms`` +- ``jitter_ms``: each packet that is not lost leaves after a delay drawn uniformly from
  [delay - jitter, delay + jitter]; a spread wider than the 20 ms between packets reorders them.

    relay = ImpairRelay(Impairment(loss=0.05, seed=7), box=("127.0.0.1", box_port))
    await relay.start()          # relay.a: give it to the peer as the box; relay.b: give it to the box
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field
from typing import cast

PACKET_MS = 20.0  # the packet time the Gilbert-Elliott burst length is counted in (one voice frame)
Address = tuple[str, int]


class ImpairError(ValueError):
    """An impairment whose parameters make no sense (the bad value is named)."""


@dataclass(frozen=True, slots=True)
class Impairment:
    """One seeded impairment (all zero: a clean leg); ``name`` labels it in a table."""

    name: str = "clean"
    loss: float = 0.0
    burst_loss: float = 0.0
    burst_ms: float = 100.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    seed: int = 1

    def __post_init__(self) -> None:
        for key in ("loss", "burst_loss"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ImpairError(f"{key} must be in [0, 1): {getattr(self, key)!r}")
        if self.burst_ms < PACKET_MS:
            raise ImpairError(f"burst_ms must be at least one packet ({PACKET_MS:g} ms): {self.burst_ms!r}")
        if self.jitter_ms < 0 or self.delay_ms - self.jitter_ms < 0:
            raise ImpairError(
                f"delay_ms - jitter_ms must not be negative: {self.delay_ms!r} - {self.jitter_ms!r}"
            )


@dataclass(slots=True)
class Impairer:
    """The decisions for one stream of packets: ``decide()`` -> None (lost) or the delay in seconds."""

    impairment: Impairment
    packets: int = 0
    lost: int = 0
    _random: random.Random = field(init=False)
    _bad: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.impairment.seed)

    def decide(self) -> float | None:
        spec, draw = self.impairment, self._random
        self.packets += 1
        # every draw is made for every packet, whatever the outcome: the n-th packet's fate depends on
        # the seed and n only
        lose_random, move, delay = draw.random(), draw.random(), draw.random()
        if spec.burst_loss > 0:
            burst = spec.burst_ms / PACKET_MS
            leave_bad = 1.0 / burst
            enter_bad = spec.burst_loss / (burst * (1.0 - spec.burst_loss))
            self._bad = move >= leave_bad if self._bad else move < enter_bad
        if lose_random < spec.loss or self._bad:
            self.lost += 1
            return None
        return (spec.delay_ms + spec.jitter_ms * (2.0 * delay - 1.0)) / 1000.0


def is_rtp(data: bytes) -> bool:
    """RTP, not RTCP, STUN or DTLS: RFC 7983 §7 (first byte 128-191), RFC 5761 §4 (RTCP types 192-223)."""
    return len(data) >= 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223


def point_candidates(text: str, to: Address) -> tuple[str, Address]:
    """``text`` with one ICE candidate (the first UDP, component 1, on 127.0.0.1 by preference) moved to
    ``to``, the others dropped, and c= / m= moved alike; and where that candidate was (RFC 8839 §5.1)."""
    lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    candidates = [line.split() for line in lines if line.startswith("a=candidate:")]
    found = [f for f in candidates if f[1] == "1" and f[2].lower() == "udp"]
    if not found:
        raise ValueError(f"no UDP candidate in {text!r}")
    chosen = next((f for f in found if f[4] == "127.0.0.1"), found[0])
    out = []
    for line in lines:
        if line.startswith("a=candidate:"):
            if line.split() != chosen:
                continue
            line = " ".join([*chosen[:4], to[0], str(to[1]), *chosen[6:]])
        elif line.startswith("m=audio "):
            line = re.sub(r"^m=audio \d+", f"m=audio {to[1]}", line)
        elif line.startswith("c=IN IP4 "):
            line = f"c=IN IP4 {to[0]}"
        elif line.startswith("a=rtcp:"):
            continue
        out.append(line)
    return "\r\n".join(out) + "\r\n", (chosen[4], int(chosen[5]))


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: ImpairRelay, side: str) -> None:
        self.relay, self.side = relay, side
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.relay._received(self.side, data, addr)


class ImpairRelay:
    """A UDP relay between a peer (side A) and a box (side B) that impairs the peer's RTP to the box.

    ``peer``: where side A sends what the box sends, until the peer's first datagram says otherwise
    (symmetric: it then follows the source); ``box``: where side B sends (given, or set later with
    ``towards()``, e.g. once the box's SDP is known)."""

    def __init__(
        self, impairment: Impairment, *, box: Address | None = None, peer: Address | None = None
    ) -> None:
        self.impairer = Impairer(impairment)
        self.box, self.peer = box, peer
        self.forwarded = 0
        self._pending: set[asyncio.TimerHandle] = set()
        self._a: _Side | None = None
        self._b: _Side | None = None

    async def start(self, host: str = "127.0.0.1") -> ImpairRelay:
        loop = asyncio.get_running_loop()
        _, self._a = await loop.create_datagram_endpoint(lambda: _Side(self, "a"), local_addr=(host, 0))
        _, self._b = await loop.create_datagram_endpoint(lambda: _Side(self, "b"), local_addr=(host, 0))
        return self

    def _address(self, side: _Side | None) -> Address:
        if side is None or side.transport is None:
            raise RuntimeError("ImpairRelay.start() first")
        host, port = side.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def a(self) -> Address:
        """The address the peer must take for the box's."""
        return self._address(self._a)

    @property
    def b(self) -> Address:
        """The address the box must take for the peer's."""
        return self._address(self._b)

    def towards(self, *, box: Address | None = None, peer: Address | None = None) -> None:
        self.box = box or self.box
        self.peer = peer or self.peer

    def _received(self, side: str, data: bytes, addr: Address) -> None:
        if side == "b":  # box -> peer: untouched
            if self.peer is not None and self._a is not None and self._a.transport is not None:
                self._a.transport.sendto(data, self.peer)
            return
        self.peer = addr
        if self.box is None or self._b is None or self._b.transport is None:
            return
        delay = self.impairer.decide() if is_rtp(data) else 0.0
        if delay is None:
            return
        if delay <= 0:
            self._send_b(data)
        else:
            handle = asyncio.get_running_loop().call_later(delay, self._send_b, data)
            self._pending.add(handle)

    def _send_b(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        self._pending = {handle for handle in self._pending if handle.when() > now}  # this one included
        side = self._b
        if side is not None and side.transport is not None and not side.transport.is_closing() and self.box:
            side.transport.sendto(data, self.box)
            self.forwarded += 1

    def close(self) -> None:
        for handle in self._pending:  # packets still in flight are lost with the relay
            handle.cancel()
        self._pending.clear()
        for side in (self._a, self._b):
            if side is not None and side.transport is not None:
                side.transport.close()
