"""Real-time text through the HTTP offer/answer API (issue 68 item 3): an aiortc client opens a data
channel with label and subprotocol ``t140`` (RFC 8865 §4.1, DCEP) and asks for it in its offer
(``a=dcmap:1 label="t140";subprotocol="t140"`` on its data channel m-line, RFC 8865 §5.1); the
gateway's INVITE then offers RFC 4103 text, sipp's ``uas_rtt`` (the text phone's SIP) answers it on
the port of a T.140 RED peer written in tests/e2e/softphone/test_softphone_rtt.py, and text goes both
ways: the phone's RED packets (one lost, recovered from the next's redundancy) as text messages on the
client's channel, the client's messages as RED T.140 packets to the phone.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
from pathlib import Path
from typing import Any

import aiohttp

from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, running_gateway, wait_until
from tests.e2e.softphone.test_softphone_rtt import decode, gateway_text_port, text_phone_answers

AUTH = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}


def ask_t140(offer: str) -> str:
    """``offer`` with the a=dcmap line asking for T.140 at the end of its data channel media section."""
    lines = offer.split("\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("m=application "))
    end = next((i for i, line in enumerate(lines) if i > start and line.startswith("m=")), None)
    if end is None:
        end = len(lines) - 1 if lines[-1] == "" else len(lines)
    lines.insert(end, 'a=dcmap:1 label="t140";subprotocol="t140"')
    return "\r\n".join(lines)


async def test_an_api_client_types_with_a_text_phone(tmp_path: Path) -> None:
    peer = WebPeer(freq=1000)
    channel = peer.pc.createDataChannel("t140", protocol="t140")
    texts: list[str] = []
    channel.on("message", lambda data: texts.append(data) if isinstance(data, str) else None)
    try:
        async with (
            text_phone_answers(tmp_path) as (config, pbx, phone, transport),
            running_gateway(config) as gateway,
            aiohttp.ClientSession() as http,
        ):
            base = gateway.http_url
            offer = {
                "sdp": {"type": "offer", "sdp": ask_t140(await peer.offer())},
                "metadata": {"dial": "2000"},
            }
            async with http.post(f"{base}/webrtc/offer", json=offer, headers=AUTH) as response:
                body: dict[str, Any] = await response.json()
                assert response.status == 200, body
            await peer.accept(body["sdp"]["sdp"])

            async def answered() -> bool:
                async with http.get(f"{base}{body['status_url']}", headers=AUTH) as poll:
                    return bool((await poll.json())["state"] == "answered")

            for _ in range(100):
                if await answered():
                    break
                await asyncio.sleep(0.1)
            await wait_until(lambda: channel.readyState == "open" and gateway_text_port(pbx, phone.port))
            port = gateway_text_port(pbx, phone.port)
            assert port is not None

            # the phone types; its third packet is lost, the fourth's redundancy brings it back
            start = secrets.randbelow(1 << 20)
            for i, typed in enumerate(["Hel", "lo", " A", "PI", "", ""]):
                data = phone.packet(typed, start + 300 * i)
                if i != 2:
                    transport.sendto(data, ("127.0.0.1", port))
                await asyncio.sleep(0.3)
            await wait_until(lambda: "".join(texts) == "Hello API", timeout=5)

            # the client types: RED T.140 to the phone, at least 300 ms apart, two generations
            for typed in ["Hi", " ph", "onw", "\be"]:
                channel.send(typed)
                await asyncio.sleep(0.1)
            await wait_until(lambda: decode([d for _, d in phone.received])[0] == "Hi phone", timeout=10)
            _, stamps, generations = decode([d for _, d in phone.received])
            assert all(b - a >= 300 for a, b in itertools.pairwise(stamps)), stamps
            assert set(generations[2:]) <= {2}, generations

            close = {"session_id": body["session_id"]}
            async with http.post(f"{base}/webrtc/close", json=close, headers=AUTH) as response:
                assert response.status == 200, await response.text()
            result = await pbx.wait(timeout=15)
            assert result.ok, result
    finally:
        await peer.close()
