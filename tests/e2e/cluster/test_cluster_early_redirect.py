"""The redirect decided before any call state (issue 18, runtime/early_route.py): two gateway instances
in this process sharing a real Redis, alice logged in on the first, a bare UDP client (this test) sending
INVITEs to the second, which does not hold her.

- the 302 carries a To tag and the first instance's Contact, tagged `gw-cluster=` (never redirected
  again), and is built without a dialog or an IncomingCall: the UA logs no incoming call for it;
- a retransmitted INVITE gets the same 302 again from the server transaction (RFC 3261 §17.2.1), and
  the ACK ends it;
- an INVITE that reached the holder still rings her (the target resolved early is the one used).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from pathlib import Path

import pytest

from peers.web_user import WebUser
from tests.e2e.cluster.cluster_harness import cluster
from tests.e2e.harness import ALICE_SECRET

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 42010 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def message(method: str, target: tuple[str, int], local: tuple[str, int], ids: tuple[str, str, str], to_tag: str = "") -> bytes:  # fmt: skip
    call_id, tag, branch = ids
    body = SDP if method == "INVITE" else ""
    to = f"<sip:1001@{target[0]}:{target[1]}>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:1001@{target[0]}:{target[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport\r\nMax-Forwards: 70\r\n"
        f"From: <sip:2000@{local[0]}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\n"
        f"Contact: <sip:2000@{local[0]}:{local[1]}>\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def final_response(sock: socket.socket, call_id: str) -> str:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        while True:
            data = (await loop.sock_recv(sock, 65535)).decode()
            if call_id in data and data.startswith("SIP/2.0 ") and not data.startswith("SIP/2.0 100"):
                return data


def header(response: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in response.split("\r\n") if line.lower().startswith(name + ":"))  # fmt: skip


async def test_the_redirect_goes_out_without_call_state(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    async with cluster(tmp_path, 2) as c:
        holder, other = ((cfg.sip.listen[0].host, cfg.sip.listen[0].port) for cfg in c.configs)
        async with WebUser(c.gateways[0].http_url, "alice", ALICE_SECRET) as alice:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            local = sock.getsockname()
            try:
                ids = (secrets.token_hex(8), secrets.token_hex(4), "z9hG4bK" + secrets.token_hex(6))
                sock.sendto(message("INVITE", other, local, ids), other)
                redirect = await final_response(sock, ids[0])
                assert redirect.startswith("SIP/2.0 302 "), redirect
                tag = header(redirect, "to").split("tag=", 1)[1]
                assert tag, redirect
                assert header(redirect, "contact") == (
                    f"<sip:1001@{holder[0]}:{holder[1]};gw-cluster={c.configs[1].cluster.instance_id}>"  # type: ignore[union-attr]
                ), redirect
                # the retransmission is answered by the transaction: the same 302, To tag and all
                sock.sendto(message("INVITE", other, local, ids), other)
                assert await final_response(sock, ids[0]) == redirect
                sock.sendto(message("ACK", other, local, ids, tag), other)
                incoming = [
                    r
                    for r in caplog.records
                    if r.name == "gateway.sip.useragent.ua" and ids[0] in r.getMessage()
                ]
                assert incoming == [], "the UA built a call for the redirected INVITE"
                assert any(
                    r.name == "gateway.runtime.early_route" and ids[0] in r.getMessage()
                    for r in caplog.records
                )

                ids = (secrets.token_hex(8), secrets.token_hex(4), "z9hG4bK" + secrets.token_hex(6))
                sock.sendto(message("INVITE", holder, local, ids), holder)
                ringing = await final_response(sock, ids[0])
                assert ringing.startswith("SIP/2.0 180 "), ringing
                rung = await alice.wait_for("incoming")
                assert rung["call_id"]
                sock.sendto(message("CANCEL", holder, local, ids), holder)
                while not (ended := await final_response(sock, ids[0])).startswith("SIP/2.0 487"):
                    pass
                sock.sendto(
                    message("ACK", holder, local, ids, header(ended, "to").split("tag=", 1)[1]), holder
                )
                await alice.wait_for("ended", call_id=rung["call_id"])
            finally:
                sock.close()
