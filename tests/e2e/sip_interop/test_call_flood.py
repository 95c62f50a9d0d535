"""A desk phone (our own UA over UDP) that INVITEs alice 40 times at once, against a whole gateway with
alice logged in on the WebSocket: she rings `calls.max_ringing_per_user` times (or `limits.calls_per_user`
when it is lower: ringing calls are calls), every other INVITE gets 486 Busy Here and never reaches her page; bob, called meanwhile, still rings (issue 32
item 8: inbound calls are bounded per callee user)."""

from __future__ import annotations

import asyncio
import re
from typing import cast

import pytest

from peers.web_user import WebUser
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway, wait_until

FLOOD = 40
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


class DeskPhone(asyncio.DatagramProtocol):
    """INVITEs over UDP; the status codes each Call-ID got."""

    def __init__(self, gateway: tuple[str, int]) -> None:
        self.gateway = gateway
        self.transport: asyncio.DatagramTransport | None = None
        self.statuses: dict[str, set[int]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode("utf-8", "replace")
        status = re.match(r"SIP/2\.0 (\d{3})", text)
        call_id = re.search(r"^Call-ID:\s*(\S+)", text, re.MULTILINE | re.IGNORECASE)
        if status and call_id:
            self.statuses.setdefault(call_id.group(1), set()).add(int(status.group(1)))

    def invite(self, to: str, number: int) -> str:
        assert self.transport is not None
        host, port = self.gateway
        local = self.transport.get_extra_info("sockname")
        call_id = f"ring-{to}-{number}@127.0.0.1"
        request = (
            f"INVITE sip:{to}@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK-ring-{to}-{number};rport\r\n"
            "Max-Forwards: 70\r\n"
            f'From: "Desk" <sip:2000@127.0.0.1>;tag=r{number}\r\n'
            f"To: <sip:{to}@{host}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:2000@{local[0]}:{local[1]}>\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(SDP)}\r\n\r\n{SDP}"
        ).encode()
        self.transport.sendto(request, self.gateway)
        return call_id


@pytest.mark.parametrize(
    ("ringing_cap", "calls_cap", "rung"),
    [(3, 8, 3), (4, 2, 2)],  # calls.max_ringing_per_user, or limits.calls_per_user when lower
)
async def test_a_flood_of_calls_rings_alice_a_few_times_and_bob_still_rings(
    ringing_cap: int, calls_cap: int, rung: int
) -> None:
    config = gateway_config(
        None, calls={"max_ringing_per_user": ringing_cap}, limits={"calls_per_user": calls_cap}
    )
    async with (
        running_gateway(config) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
    ):
        loop = asyncio.get_running_loop()
        transport, phone = await loop.create_datagram_endpoint(
            lambda: DeskPhone(gateway.sip_address), local_addr=("127.0.0.1", 0)
        )
        try:
            flood = [phone.invite("1001", n) for n in range(FLOOD)]

            def answered() -> bool:
                return all(phone.statuses.get(c, set()) & {180, 486} for c in flood)

            await wait_until(answered, timeout=30)
            ringing = [c for c in flood if 180 in phone.statuses[c]]
            busy = [c for c in flood if 486 in phone.statuses[c]]
            assert len(ringing) == rung and len(busy) == FLOOD - rung, phone.statuses

            call = phone.invite("1002", 0)  # bob is not alice
            await wait_until(lambda: 180 in phone.statuses.get(call, set()), timeout=20)
            await bob.wait_for("incoming")
            await asyncio.sleep(0.5)
            assert len([e for e in alice.events if e.get("type") == "incoming"]) == rung
        finally:
            transport.close()
