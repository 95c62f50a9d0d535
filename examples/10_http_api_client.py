"""Example 10: the Python client library of the HTTP offer/answer API (gateway.signaling.client.WebRtcClient), the
shape of RustPBX's WebRtcClient: exchange_sdp, progress events, get_ice_servers, close_session.

Run it from anywhere:  python examples/10_http_api_client.py   (needs pjsua2 for the desk phone)

An aiortc peer makes the offer; exchange_sdp sends it with alice's Basic credentials and no destination,
so alice's default_dial (2000, the desk phone, gateway.yaml) is called. The answer comes back before the
phone picks up; the client follows the call's progress (server-sent events), hears the phone's tone,
and closes the session; a second close fails with the error's code 404.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from gateway.signaling.client import WebRtcClient, WebRtcClientError
from peers.audio import wait_for_tone
from peers.demo import ALICE_SECRET, running_demo
from peers.webpeer import WebPeer


async def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    async with running_demo(tone=440) as (gateway, phone):
        peer = WebPeer(1000)
        try:
            async with WebRtcClient(gateway.http_url, basic=("alice", ALICE_SECRET)) as client:
                print(f"1. ICE servers for the browser: {await client.get_ice_servers()}")
                session_id, answer = await client.exchange_sdp(await peer.offer())
                print(f"2. exchange_sdp: session {session_id}, an answer of {len(answer)} bytes")
                await peer.accept(answer)
                async for event in client.events(session_id):
                    print(f"3. progress: {event.event}")
                    if event.event in ("answered", "failed"):
                        break
                print(f"4. the client hears the phone: {await wait_for_tone(peer, 440)}")
                await client.close_session(session_id, "Completed")
                state = await phone.wait_for("state", state="DISCONNECTED")
                print(f"5. close_session: the phone's call ended ({state['state']})")
                try:
                    await client.close_session(session_id)
                except WebRtcClientError as exc:
                    print(f"6. closing it again: error code {exc.code} ({exc.reason}): {exc.message}")
        finally:
            await peer.close()
    print("7. gateway and phone stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
