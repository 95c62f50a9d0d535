"""Example 7: a web user calls a desk phone through the gateway.

Run it from anywhere:  python examples/07_web_client_calls_phone.py   (needs pjsua2 for the desk phone)

It starts a pjsua2 desk phone (extension 2000, plays 440 Hz) and a whole gateway in this process whose
PBX is that phone. An aiortc client logs in as alice on the gateway's WebSocket, calls 2000 with its
WebRTC offer (it sends 1000 Hz), gets `connected` with the gateway's answer, hears the phone's tone,
sends DTMF 1 2 3, and hangs up. The phone reports the call, the digits and the hangup.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from peers.audio import wait_for_tone
from peers.demo import ALICE_SECRET, running_demo
from peers.web_user import WebUser
from peers.webpeer import WebPeer


async def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    peer = WebPeer(1000)
    try:
        async with running_demo(tone=440) as (gateway, phone):
            print(f"1. desk phone 2000 on {phone.address}; gateway at {gateway.http_url}")
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                print("2. alice logged in on the WebSocket")
                call_id = await alice.call("2000", await peer.offer())
                print(f"3. call {call_id} to 2000 placed")
                connected = await alice.wait_for("connected")
                await peer.accept(connected["sdp"])
                incoming = await phone.wait_for("incoming")
                print(f"4. connected; the phone got a call from {incoming['from']}")
                print(f"5. alice hears the phone's 440 Hz: {await wait_for_tone(peer, 440)}")
                await alice.request({"type": "dtmf", "call_id": call_id, "digits": "123"})
                digits = [(await phone.wait_for("dtmf"))["digit"] for _ in range(3)]
                print(f"6. DTMF sent; the phone received {' '.join(digits)}")
                await alice.request({"type": "hangup", "call_id": call_id})
                ended = await alice.wait_for("ended")
                state = await phone.wait_for("state", state="DISCONNECTED")
                print(
                    f"7. hung up: ended {ended['reason']}; the phone says {state['state']} {state['reason']}"
                )
    finally:
        await peer.close()
    print("8. gateway and phone stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
