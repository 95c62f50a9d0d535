"""Example 8: a desk phone calls a web user through the gateway.

Run it from anywhere:  python examples/08_phone_calls_web_user.py   (needs pjsua2 for the desk phone)

A whole gateway runs in this process; alice logs in on its WebSocket with an aiortc client (it sends
1000 Hz). A pjsua2 desk phone (2000, plays 440 Hz) calls sip:1001@<gateway> - alice's number. alice
gets `incoming`, accepts it, answers the gateway's WebRTC `offer`, and is `connected`; she hears the
phone, the phone hangs up, and alice gets `ended` (remote_hangup).
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
            host, sip_port = gateway.sip_address
            print(f"1. gateway: SIP on {host}:{sip_port}, web at {gateway.http_url}")
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                print("2. alice logged in: the gateway now rings her for sip:1001")
                await phone.call(f"sip:1001@{host}:{sip_port}")
                incoming = await alice.wait_for("incoming")
                call_id = incoming["call_id"]
                print(f"3. alice's browser rings: call {call_id} from {incoming['from']}")
                # {"type": "answer"}, then the gateway's WebRTC `offer`, answered with the peer's SDP
                await alice.answer(call_id, peer.answer)
                await phone.wait_for("state", state="CONFIRMED")
                print("4. answered: alice is connected, the phone says CONFIRMED")
                print(f"5. alice hears the phone's 440 Hz: {await wait_for_tone(peer, 440)}")
                await phone.hangup()
                ended = await alice.wait_for("ended")
                print(f"6. the phone hung up: alice's call ended ({ended['reason']})")
    finally:
        await peer.close()
    print("7. gateway and phone stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
