"""Example 9: the full flow - a desk phone calls a web user, and a web user calls the desk phone
through the HTTP offer/answer API (no WebSocket: a click-to-call button, a kiosk).

Run it from anywhere:  python examples/09_webrtc_integration.py   (needs pjsua2 for the desk phone)

Part 1: alice is logged in on the WebSocket; the desk phone (2000) calls her (sip:1001@<gateway>); she
answers, hears the phone, and hangs up. Part 2: an aiortc client POSTs its offer to /webrtc/offer with
Basic credentials and metadata {"dial": "2000"}; the gateway answers the POST at once and calls the
phone; audio flows once the phone answered; POST /webrtc/close ends the phone's call.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sys

import aiohttp

from gateway.app import Gateway
from peers.audio import wait_for_tone
from peers.demo import ALICE_SECRET, running_demo
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer

BASIC = "Basic " + base64.b64encode(b"alice:alice-demo").decode()


async def phone_calls_web_user(gateway: Gateway, phone: DeskPhone) -> None:
    host, sip_port = gateway.sip_address
    peer = WebPeer(1000)
    try:
        async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
            await phone.call(f"sip:1001@{host}:{sip_port}")
            incoming = await alice.wait_for("incoming")
            call_id = incoming["call_id"]
            print(f"1. the desk phone calls alice: incoming from {incoming['from']}")
            await alice.answer(call_id, peer.answer)
            print(f"2. alice answered and hears the phone: {await wait_for_tone(peer, 440)}")
            await alice.request({"type": "hangup", "call_id": call_id})
            state = await phone.wait_for("state", state="DISCONNECTED")
            print(f"3. alice hung up; the phone says {state['state']}")
    finally:
        await peer.close()


async def web_user_calls_phone_over_http(gateway: Gateway, phone: DeskPhone) -> None:
    peer = WebPeer(1000)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": BASIC}) as http:
            body = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "metadata": {"dial": "2000"}}
            async with http.post(f"{gateway.http_url}/webrtc/offer", json=body) as response:
                answer = await response.json()
            print(
                f"4. POST /webrtc/offer dialling 2000: HTTP {response.status}, session {answer['session_id']}"
            )
            await peer.accept(answer["sdp"]["sdp"])
            await phone.wait_for("state", state="CONFIRMED")
            print(f"5. the phone answered; the HTTP client hears it: {await wait_for_tone(peer, 440)}")
            close = {"session_id": answer["session_id"]}
            async with http.post(f"{gateway.http_url}/webrtc/close", json=close) as response:
                print(f"6. POST /webrtc/close: HTTP {response.status}")
            state = await phone.wait_for("state", state="DISCONNECTED")
            print(f"7. the phone's call ended: {state['state']} {state['reason']}")
    finally:
        await peer.close()


async def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    async with running_demo(tone=440) as (gateway, phone):
        await phone_calls_web_user(gateway, phone)
        await web_user_calls_phone_over_http(gateway, phone)
    print("8. gateway and phone stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
