"""A flood of SIP MESSAGEs to a web user (issue 32 item 10) from our own UA over UDP, against a whole
gateway with alice and bob logged in on the WebSocket:

- 200 MESSAGEs from one sender to alice: at most the bucket (burst 20, plus 5/s for the flood's
  duration) reach her page, each answered 200; every other one is answered 486 Busy Here with a
  Retry-After, and none of those reaches the page;
- another sender's MESSAGE to alice in the thick of it: refused too (her own bucket is empty);
- the flooder's MESSAGE to bob: shown to him (200), his buckets are his own.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, cast

from peers.web_user import WebUser
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway, wait_until

RATE, BURST, FLOOD = 5.0, 20, 200


class SipSender(asyncio.DatagramProtocol):
    """Our own UA: sends MESSAGEs over UDP, retransmits each until a final response (RFC 3261 §17.1.2.2
    timer E, simplified), and keeps the final responses by Call-ID."""

    def __init__(self, gateway: tuple[str, int]) -> None:
        self.gateway = gateway
        self.transport: asyncio.DatagramTransport | None = None
        self.sent: dict[str, bytes] = {}
        self.finals: dict[str, tuple[int, str]] = {}  # Call-ID -> status, whole response

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode("utf-8", "replace")
        status = re.match(r"SIP/2\.0 (\d{3})", text)
        call_id = re.search(r"^Call-ID:\s*(\S+)", text, re.MULTILINE | re.IGNORECASE)
        if status and call_id and int(status.group(1)) >= 200:
            self.finals[call_id.group(1)] = (int(status.group(1)), text)

    def message(self, to: str, sender: str, number: int, body: str) -> str:
        assert self.transport is not None
        host, port = self.gateway
        local = self.transport.get_extra_info("sockname")
        call_id = f"flood-{sender}-{number}@127.0.0.1"
        payload = body.encode()
        request = (
            f"MESSAGE sip:{to}@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK-{sender}-{number};rport\r\n"
            "Max-Forwards: 70\r\n"
            f'From: "Sender {sender}" <sip:{sender}@127.0.0.1>;tag=t{number}\r\n'
            f"To: <sip:{to}@{host}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 MESSAGE\r\n"
            "Content-Type: text/plain\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        self.sent[call_id] = request
        self.transport.sendto(request, self.gateway)
        return call_id

    def retransmit(self) -> None:
        assert self.transport is not None
        for call_id, request in self.sent.items():
            if call_id not in self.finals:
                self.transport.sendto(request, self.gateway)

    async def finals_of(self, call_ids: list[str], timeout: float = 30) -> list[tuple[int, str]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(c not in self.finals for c in call_ids):
            assert loop.time() < deadline, f"{sum(c not in self.finals for c in call_ids)} unanswered"
            await asyncio.sleep(0.5)
            self.retransmit()
        return [self.finals[c] for c in call_ids]


def _messages(user: WebUser) -> list[dict[str, Any]]:
    return [e for e in user.events if e.get("type") == "message"]


async def test_a_message_flood_reaches_the_page_at_most_the_bucket() -> None:
    config = gateway_config(None, limits={"message_rate": RATE, "message_burst": BURST})
    async with (
        running_gateway(config) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
    ):
        loop = asyncio.get_running_loop()
        transport, ua = await loop.create_datagram_endpoint(
            lambda: SipSender(gateway.sip_address), local_addr=("127.0.0.1", 0)
        )
        try:
            started = loop.time()
            flood = [ua.message("1001", "666", n, f"spam {n}") for n in range(FLOOD // 2)]
            other = ua.message("1001", "777", 0, "me too")  # in the thick of it, from someone else
            flood += [ua.message("1001", "666", n, f"spam {n}") for n in range(FLOOD // 2, FLOOD)]
            answers = await ua.finals_of(flood)
            took = loop.time() - started
            shown = [text for status, text in answers if status == 200]
            refused = [text for status, text in answers if status == 486]
            assert len(shown) + len(refused) == FLOOD, sorted({s for s, _ in answers})
            assert BURST <= len(shown) <= BURST + RATE * took + 1, (len(shown), took)
            assert all(re.search(r"^Retry-After:\s*\d+", t, re.MULTILINE) for t in refused), refused[0]

            # the page got exactly the ones answered 200, and no more come
            await wait_until(lambda: len(_messages(alice)) >= len(shown), timeout=20)
            assert (await ua.finals_of([other]))[0][0] == 486  # alice's own bucket is empty, whoever sends
            to_bob = await ua.finals_of([ua.message("1002", "666", 1000, "hello bob")])
            assert to_bob[0][0] == 200  # bob's buckets are not alice's
            await bob.wait_for("message")
            await asyncio.sleep(0.5)
            bodies = [m["body"] for m in _messages(alice)]
            assert len(bodies) == len(shown), (len(bodies), len(shown))
            assert "me too" not in bodies
        finally:
            transport.close()
