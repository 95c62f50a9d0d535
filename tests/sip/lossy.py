"""A lossy UDP relay for tests: it forwards datagrams between clients and one server, dropping a
share of them in each direction (a seeded random generator, so runs are repeatable).

Each client address gets its own socket towards the server, so the server sees one distinct
source per client and its responses (sent back to the source, RFC 3581 rport) come through the
relay again:

    relay = await LossyRelay.start(("127.0.0.1", server_port), loss=0.2, seed=7)
    ... send to relay.address ...
    relay.close()
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

Address = tuple[str, int]


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.on_datagram(data, (str(addr[0]), int(str(addr[1]))))


class LossyRelay:
    def __init__(self, server: Address, loss: float, seed: int) -> None:
        self.server = server
        self.loss = loss
        self.random = random.Random(seed)
        self.front: _Endpoint | None = None
        self.back: dict[Address, _Endpoint] = {}
        self.forwarded = 0
        self.dropped = 0

    @classmethod
    async def start(
        cls, server: Address, *, loss: float = 0.2, seed: int = 1, host: str = "127.0.0.1"
    ) -> LossyRelay:
        relay = cls(server, loss, seed)
        loop = asyncio.get_running_loop()
        _, relay.front = await loop.create_datagram_endpoint(
            lambda: _Endpoint(relay._from_client), local_addr=(host, 0)
        )
        return relay

    @property
    def address(self) -> Address:
        assert self.front is not None and self.front.transport is not None
        sockname = self.front.transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    def _lose(self) -> bool:
        if self.random.random() < self.loss:
            self.dropped += 1
            return True
        self.forwarded += 1
        return False

    def _from_client(self, data: bytes, client: Address) -> None:
        back = self.back.get(client)
        if back is None:
            asyncio.get_running_loop().create_task(self._open_back(data, client))
            return
        if not self._lose() and back.transport is not None:
            back.transport.sendto(data, self.server)

    async def _open_back(self, data: bytes, client: Address) -> None:
        if client not in self.back:
            loop = asyncio.get_running_loop()
            _, endpoint = await loop.create_datagram_endpoint(
                lambda: _Endpoint(lambda payload, _: self._from_server(payload, client)),
                local_addr=(self.address[0], 0),
            )
            self.back.setdefault(client, endpoint)
        self._from_client(data, client)

    def _from_server(self, data: bytes, client: Address) -> None:
        if not self._lose() and self.front is not None and self.front.transport is not None:
            self.front.transport.sendto(data, client)

    def close(self) -> None:
        for endpoint in [self.front, *self.back.values()]:
            if endpoint is not None and endpoint.transport is not None:
                endpoint.transport.close()
