"""A lossy path on the SIP leg: a user-space UDP relay between a SIP phone and the gateway's RTP ports.

This machine's kernel has no netem (TESTING.md). The gateway binds its RTP sockets on 127.0.0.1 but
writes `media.public_address` (127.0.0.2) into its SDP, so the phone sends its RTP and RTCP to
127.0.0.2:P; the relay holds every port P of the gateway's range there and forwards to 127.0.0.1:P,
dropping a seeded share of the RTP (bench/impair.py's `Impairer`: independent or Gilbert-Elliott loss;
RTCP passes). The gateway latches onto the relay's address (symmetric RTP, RFC 4961), and what it sends
there goes back to the phone untouched: only phone -> gateway is impaired.

    relay = await LossyRtpRelay.start(200, loss=0.2)
    config = gateway_config(..., media={"rtp_ports": {"start": relay.first}, "public_address": [RELAY_HOST]})
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import cast

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from impair import Impairer, Impairment, is_rtp

RELAY_HOST = "127.0.0.2"
GATEWAY_HOST = "127.0.0.1"
Address = tuple[str, int]


class _Port(asyncio.DatagramProtocol):
    def __init__(self, relay: LossyRtpRelay, port: int) -> None:
        self.relay, self.port = relay, port
        self.peer: Address | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self.transport is None:
            return
        if addr == (GATEWAY_HOST, self.port):  # the gateway answers its latched address: to the phone
            if self.peer is not None:
                self.transport.sendto(data, self.peer)
            return
        self.peer = (str(addr[0]), int(addr[1]))
        if is_rtp(data):
            self.relay.rtp += 1
            if self.relay.impairer.decide() is None:
                return
        self.transport.sendto(data, (GATEWAY_HOST, self.port))


class LossyRtpRelay:
    def __init__(self, impairment: Impairment) -> None:
        self.impairer = Impairer(impairment)
        self.rtp = 0  # RTP packets from the phone, dropped or not
        self._ports: list[_Port] = []
        self.first = 0  # the first port of the run

    @classmethod
    async def start(cls, count: int, loss: float, seed: int = 7) -> LossyRtpRelay:
        """A relay over `count` ports on RELAY_HOST: the first free run of them found (`first`)."""
        relay = cls(Impairment("lossy", loss=loss, seed=seed))
        loop = asyncio.get_running_loop()
        for _ in range(20):
            relay.first = 40000 + 2 * random.randrange(10000)
            try:
                for port in range(relay.first, relay.first + count):
                    _, protocol = await loop.create_datagram_endpoint(
                        lambda port=port: _Port(relay, port),  # type: ignore[misc]
                        local_addr=(RELAY_HOST, port),
                    )
                    relay._ports.append(protocol)
                return relay
            except OSError:  # a port of the run is taken: another run
                relay.close()
        raise RuntimeError(f"no run of {count} free UDP ports on {RELAY_HOST}")

    @property
    def dropped(self) -> int:
        return self.impairer.lost

    def close(self) -> None:
        for port in self._ports:
            if port.transport is not None:
                port.transport.close()
        self._ports.clear()
