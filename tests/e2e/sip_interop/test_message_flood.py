"""A flood of SIP MESSAGEs to a web user (issue 32 item 10) from our own UA over UDP, against a whole
gateway with alice and bob logged in on the WebSocket:

- 200 MESSAGEs from one sender to alice: at most the bucket (burst 20, plus 5/s for the flood's
  duration) reach her page, each answered 200; every other one is answered 486 Busy Here with a
  Retry-After, and none of those reaches the page;
- another sender's MESSAGE to alice in the thick of it: refused too (her own bucket is empty);
- the flooder's MESSAGE to bob: shown to him (200), his buckets are his own;
- the same flood in the dialog of a call the phone placed to alice (RFC 3428 §4, chat in the call):
  the same bucket, the same 486 with Retry-After on the wire, no more `message {call_id}` on her page.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
from typing import Any, cast

from peers.ports import free_port
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway, wait_until

RATE, BURST, FLOOD = 5.0, 20, 200
_branches = itertools.count(1)


def _header(text: str, name: str) -> str:
    found = re.search(rf"^{name}:\s*(.*?)\r?$", text, re.MULTILINE | re.IGNORECASE)
    return found.group(1) if found else ""


class SipSender(asyncio.DatagramProtocol):
    """Our own UA: sends MESSAGEs (and one INVITE) over UDP, retransmits each request until a final
    response (RFC 3261 §17.1.2.2 timer E, simplified), keeps the final responses by Via branch, ACKs a
    2xx to its INVITE (§13.2.2.4) and answers the gateway's own requests 200."""

    def __init__(self, gateway: tuple[str, int]) -> None:
        self.gateway = gateway
        self.transport: asyncio.DatagramTransport | None = None
        self.sent: dict[str, bytes] = {}
        self.finals: dict[str, tuple[int, str]] = {}  # branch -> status, whole response
        self.dialog: dict[str, str] = {}  # the INVITE's dialog: call_id, from, to (with their tag), target
        self._cseq = 1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode("utf-8", "replace")
        if not text.startswith("SIP/2.0 "):
            self._answer(text)
            return
        status = int(text[8:11])
        branch = re.search(r"branch=([^;\s,]+)", _header(text, "Via"))
        if status < 200 or branch is None:
            return
        self.finals[branch.group(1)] = (status, text)
        if _header(text, "CSeq").endswith("INVITE") and status < 300:
            self._ack(text)

    def _answer(self, request: str) -> None:
        """200 to a request of the gateway (a BYE, OPTIONS...): its Via, From, To, Call-ID and CSeq."""
        if request.startswith("ACK "):
            return
        assert self.transport is not None
        vias = re.findall(r"^Via:.*?\r?$", request, re.MULTILINE | re.IGNORECASE)
        copied = "".join(f"{v.rstrip()}\r\n" for v in vias)
        for name in ("From", "To", "Call-ID", "CSeq"):
            copied += f"{name}: {_header(request, name)}\r\n"
        self.transport.sendto(f"SIP/2.0 200 OK\r\n{copied}Content-Length: 0\r\n\r\n".encode(), self.gateway)

    def _send(self, branch: str, request: bytes) -> str:
        assert self.transport is not None
        self.sent[branch] = request
        self.transport.sendto(request, self.gateway)
        return branch

    def _via(self, branch: str) -> str:
        assert self.transport is not None
        local = self.transport.get_extra_info("sockname")
        return f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport\r\n"

    def message(self, to: str, sender: str, number: int, body: str) -> str:
        host, port = self.gateway
        branch = f"z9hG4bK-{sender}-{number}"
        payload = body.encode()
        request = (
            f"MESSAGE sip:{to}@{host}:{port} SIP/2.0\r\n"
            f"{self._via(branch)}"
            "Max-Forwards: 70\r\n"
            f'From: "Sender {sender}" <sip:{sender}@127.0.0.1>;tag=t{number}\r\n'
            f"To: <sip:{to}@{host}>\r\n"
            f"Call-ID: flood-{sender}-{number}@127.0.0.1\r\n"
            "CSeq: 1 MESSAGE\r\n"
            "Content-Type: text/plain\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        return self._send(branch, request)

    def invite(self, to: str, sender: str, offer: str) -> str:
        """A call to `to`; the dialog is ours once its 2xx came (`in_dialog`)."""
        assert self.transport is not None
        host, port = self.gateway
        local = self.transport.get_extra_info("sockname")
        branch = f"z9hG4bK-invite-{next(_branches)}"
        self.dialog = {
            "call_id": f"call-{branch}@127.0.0.1",
            "from": f'"Phone {sender}" <sip:{sender}@127.0.0.1>;tag=phone{branch[-4:]}',
            "uri": f"sip:{to}@{host}:{port}",
        }
        payload = offer.encode()
        request = (
            f"INVITE {self.dialog['uri']} SIP/2.0\r\n"
            f"{self._via(branch)}"
            "Max-Forwards: 70\r\n"
            f"From: {self.dialog['from']}\r\n"
            f"To: <{self.dialog['uri']}>\r\n"
            f"Call-ID: {self.dialog['call_id']}\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:{sender}@{local[0]}:{local[1]}>\r\n"
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        return self._send(branch, request)

    def _ack(self, response: str) -> None:
        """ACK the 2xx (each retransmission of it too) to its Contact, in a transaction of its own."""
        assert self.transport is not None
        contact = re.search(r"<([^>]+)>", _header(response, "Contact"))
        self.dialog["to"] = _header(response, "To")
        self.dialog["target"] = contact.group(1) if contact else self.dialog["uri"]
        self.transport.sendto(
            self._in_dialog_request("ACK", 1, f"z9hG4bK-ack-{next(_branches)}"), self.gateway
        )

    def _in_dialog_request(self, method: str, cseq: int, branch: str, body: str = "") -> bytes:
        payload = body.encode()
        kind = "Content-Type: text/plain\r\n" if payload else ""
        return (
            f"{method} {self.dialog['target']} SIP/2.0\r\n"
            f"{self._via(branch)}"
            "Max-Forwards: 70\r\n"
            f"From: {self.dialog['from']}\r\n"
            f"To: {self.dialog['to']}\r\n"
            f"Call-ID: {self.dialog['call_id']}\r\n"
            f"CSeq: {cseq} {'INVITE' if method == 'ACK' else method}\r\n"
            f"{kind}Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload

    def in_dialog(self, method: str, body: str = "") -> str:
        """A request in the call's dialog, the next CSeq (RFC 3261 §12.2.1.1)."""
        self._cseq += 1
        branch = f"z9hG4bK-{method.lower()}-{next(_branches)}"
        return self._send(branch, self._in_dialog_request(method, self._cseq, branch, body))

    def retransmit(self) -> None:
        assert self.transport is not None
        for branch, request in self.sent.items():
            if branch not in self.finals:
                self.transport.sendto(request, self.gateway)

    async def finals_of(self, branches: list[str], timeout: float = 30) -> list[tuple[int, str]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(b not in self.finals for b in branches):
            assert loop.time() < deadline, f"{sum(b not in self.finals for b in branches)} unanswered"
            await asyncio.sleep(0.5)
            self.retransmit()
        return [self.finals[b] for b in branches]


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


def _offer(rtp_port: int) -> str:
    return (
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )


async def test_a_message_flood_in_a_call_reaches_the_page_at_most_the_bucket() -> None:
    config = gateway_config(None, limits={"message_rate": RATE, "message_burst": BURST})
    peer = WebPeer(freq=1000)
    loop = asyncio.get_running_loop()
    rtp, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", free_port(socket.SOCK_DGRAM))
    )
    try:
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            transport, phone = await loop.create_datagram_endpoint(
                lambda: SipSender(gateway.sip_address), local_addr=("127.0.0.1", 0)
            )
            try:
                invite = phone.invite("1001", "666", _offer(rtp.get_extra_info("sockname")[1]))
                call_id = (await alice.wait_for("incoming"))["call_id"]
                await alice.answer(call_id, peer.answer)
                assert (await phone.finals_of([invite]))[0][0] == 200

                started = loop.time()
                flood = [phone.in_dialog("MESSAGE", f"chat {n}") for n in range(FLOOD // 2)]
                answers = await phone.finals_of(flood)
                took = loop.time() - started
                shown = [text for status, text in answers if status == 200]
                refused = [text for status, text in answers if status == 486]
                assert len(shown) + len(refused) == FLOOD // 2, sorted({s for s, _ in answers})
                assert BURST <= len(shown) <= BURST + RATE * took + 1, (len(shown), took)
                assert all(re.search(r"^Retry-After:\s*\d+", t, re.MULTILINE) for t in refused), refused[0]

                def in_call() -> list[str]:
                    return [m["body"] for m in _messages(alice) if m.get("call_id") == call_id]

                await wait_until(lambda: len(in_call()) >= len(shown), timeout=20)
                await asyncio.sleep(0.5)  # and no more come
                bodies = in_call()
                assert len(bodies) == len(shown), (len(bodies), len(shown))
                assert (await phone.finals_of([phone.in_dialog("BYE")]))[0][0] == 200
                await alice.wait_for("ended", call_id=call_id)
            finally:
                transport.close()
    finally:
        rtp.close()
        await peer.close()
