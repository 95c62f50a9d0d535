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
from pathlib import Path
from typing import Any

import aiohttp

from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, running_gateway, wait_until
from tests.e2e.softphone.test_softphone_rtt import (
    channel_text_both_ways,
    gateway_text_port,
    text_phone_answers,
)

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

            await channel_text_both_ways(channel, texts, phone, transport, port, "API")

            close = {"session_id": body["session_id"]}
            async with http.post(f"{base}/webrtc/close", json=close, headers=AUTH) as response:
                assert response.status == 200, await response.text()
            result = await pbx.wait(timeout=15)
            assert result.ok, result
    finally:
        await peer.close()
