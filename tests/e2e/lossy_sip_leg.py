"""A lossy path on the SIP leg: a user-space UDP relay between a SIP phone and the gateway's RTP ports.

This machine's kernel has no netem (TESTING.md). The relay stands at RELAY_HOST (127.0.0.2) for both
ends, as a NAT would: the gateway binds its RTP on 127.0.0.1 but writes `media.public_address`
RELAY_HOST into its SDP, and the desk phone binds 127.0.0.1:`phone_port` but writes RELAY_HOST
(`--media-public-address`). So each end sends to the relay, which holds the gateway's whole port range
(its "gateway face") and the phone's RTP and RTCP ports (its "phone face") there:

    phone 127.0.0.1:Q  ->  127.0.0.2:P  (relay)  127.0.0.2:Q  ->  127.0.0.1:P gateway    impaired
    phone 127.0.0.1:Q  <-  127.0.0.2:P  (relay)  127.0.0.2:Q  <-  127.0.0.1:P gateway    untouched

Each end sees its packets come from the very address its peer's SDP names, so neither end's symmetric
RTP (the gateway's latch, pjmedia's remote-address switching) ever goes around the relay. Only the
phone's RTP is impaired (bench/impair.py's `Impairer`: seeded independent or Gilbert-Elliott loss);
RTCP passes.

    relay = await LossyRtpRelay.start(200, loss=0.2)   # relay.first: the gateway's rtp_ports start
    phone = DeskPhone(..., extra_args=relay.phone_args)
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import cast

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from impair import Impairer, Impairment, ImpairRelay, is_rtp, point_candidates

__all__ = ["RELAY_HOST", "ImpairRelay", "Impairer", "Impairment", "LossyRtpRelay", "point_candidates"]

RELAY_HOST = "127.0.0.2"
LOCAL = "127.0.0.1"
PHONE_PORTS = 8  # the phone's RTP and RTCP ports of its first four calls (pjmedia takes a new pair per call)
Address = tuple[str, int]


class _Face(asyncio.DatagramProtocol):
    """One relay port: `gateway` True for a port of the gateway's range, False for one of the phone's."""

    def __init__(self, relay: LossyRtpRelay, port: int, gateway: bool) -> None:
        self.relay, self.port, self.gateway = relay, port, gateway
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        relay, source = self.relay, int(addr[1])
        if self.gateway:  # the phone (from its port `source`) to the gateway's port `self.port`
            out = relay.faces.get((False, source))
            if is_rtp(data):
                relay.rtp += 1
                if relay.impairer.decide() is None:
                    return
        else:  # the gateway (from its port `source`) to the phone's port `self.port`
            out = relay.faces.get((True, source))
        if out is not None and out.transport is not None:
            out.transport.sendto(data, (LOCAL, self.port))


class LossyRtpRelay:
    def __init__(self, impairment: Impairment) -> None:
        self.impairer = Impairer(impairment)
        self.rtp = 0  # RTP packets from the phone, dropped or not
        self.faces: dict[tuple[bool, int], _Face] = {}
        self.first = 0  # the gateway's first RTP port (its rtp_ports start)
        self.phone_port = 0  # the phone's first RTP port (RTCP: the next; its next calls: the pairs after)

    @property
    def phone_args(self) -> tuple[str, ...]:
        """The desk phone's options that put it behind the relay."""
        return ("--rtp-port", str(self.phone_port), "--media-public-address", RELAY_HOST)

    @classmethod
    async def start(cls, count: int, loss: float, seed: int = 7) -> LossyRtpRelay:
        """A relay over `count` gateway ports and PHONE_PORTS of the phone's, the first free runs found."""
        relay = cls(Impairment("lossy", loss=loss, seed=seed))
        for _ in range(20):
            relay.first = 40000 + 2 * random.randrange(10000)
            relay.phone_port = 20000 + 2 * random.randrange(5000)
            try:
                for port in range(relay.first, relay.first + count):
                    await relay._bind(port, gateway=True)
                for port in range(relay.phone_port, relay.phone_port + PHONE_PORTS):
                    await relay._bind(port, gateway=False)
                return relay
            except OSError:  # a port is taken (here, or by a wildcard socket): other runs
                relay.close()
        raise RuntimeError(f"no free runs of UDP ports on {RELAY_HOST}")

    async def _bind(self, port: int, *, gateway: bool) -> None:
        loop = asyncio.get_running_loop()
        _, face = await loop.create_datagram_endpoint(
            lambda: _Face(self, port, gateway), local_addr=(RELAY_HOST, port)
        )
        self.faces[(gateway, port)] = face

    @property
    def dropped(self) -> int:
        return self.impairer.lost

    def close(self) -> None:
        for face in self.faces.values():
            if face.transport is not None:
                face.transport.close()
        self.faces.clear()
