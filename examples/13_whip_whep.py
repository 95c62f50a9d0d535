"""Example 13: publish a call with WHIP (RFC 9725) and listen to it with WHEP.

Run it from anywhere:  python examples/13_whip_whep.py   (needs pjsua2 for the desk phone)

WHIP's resource is a call here: `POST /whip/2000` publishes the client's offer to the destination in the
URL (the desk phone 2000, which plays 440 Hz; `POST /whip` calls the credentials' default destination).
Each step prints its HTTP status and the headers WHIP is about:

1. OPTIONS: what the endpoint accepts (`Accept-Post`), its ICE servers as `Link` headers (none here).
2. POST the offer (`application/sdp`): 201, `Location` (the session's resource), `ETag`, the SDP answer,
   sent before the phone picks up. An aiortc client (it sends 1000 Hz) applies it and hears the phone.
3. PATCH the resource with a trickle fragment (`application/trickle-ice-sdpfrag`, RFC 8840): 204. Here it
   only says end-of-candidates, since aiortc put every candidate in its offer already.
4. WHEP (`POST /whep/{session id}`): a recvonly aiortc player hears the call's far end (the phone's 440
   Hz, not the client's 1000 Hz); DELETE ends the player. (WHEP of a room's mix: docs/signaling.md.)
5. DELETE the WHIP resource: the phone's call ends (then 404).

Credentials: WHIP's are `Authorization: Bearer <API key>` (§4.6, gateway.yaml `users[].api_keys`) or a
session token; the demo's user has no API key, so its Basic credentials serve here.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sys

import aiohttp
from yarl import URL

from peers.audio import detect_tone, read_wav, wait_for_tone
from peers.demo import ALICE_SECRET, running_demo
from peers.webpeer import WebPeer

AUTH = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}
SDP = {**AUTH, "Content-Type": "application/sdp"}


def shown(response: aiohttp.ClientResponse, *names: str) -> str:
    """`HTTP 201, Location: ..., ETag: ...`: the status and the headers named that the response has."""
    headers = [
        f"{name}: {', '.join(response.headers.getall(name))}" for name in names if name in response.headers
    ]
    return ", ".join([f"HTTP {response.status}", *headers])


async def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    client, player = WebPeer(1000), WebPeer(direction="recvonly")  # the player only listens
    try:
        async with running_demo(tone=440) as (gateway, phone), aiohttp.ClientSession() as http:
            endpoint = f"{gateway.http_url}/whip/2000"
            async with http.options(endpoint) as r:
                print(f"1. OPTIONS {endpoint}: {shown(r, 'Accept-Post', 'Allow', 'Link')}")

            offer = await client.offer()
            async with http.post(endpoint, data=offer, headers=SDP) as r:
                print(f"2. POST the offer: {shown(r, 'Location', 'ETag', 'Content-Type')}")
                resource = str(r.url.join(URL(r.headers["Location"])))  # Location may be relative
                etag = r.headers["ETag"]
                await client.accept(await r.text())
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            heard = await wait_for_tone(client, 440)
            print(
                f"   the phone answered; the WHIP client {'hears' if heard else 'does NOT hear'} its 440 Hz tone"
            )

            # RFC 8840: the client's ICE ufrag and pwd, the m-line and mid, then the candidates (none left)
            ice = [line for line in offer.splitlines() if line.startswith(("a=ice-ufrag:", "a=ice-pwd:"))]
            media = ["m=audio 9 UDP/TLS/RTP/SAVPF 0", "a=mid:0", "a=end-of-candidates"]
            fragment = "\r\n".join([*ice, *media, ""])
            headers = {**AUTH, "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": etag}
            async with http.patch(resource, data=fragment, headers=headers) as r:
                print(f"3. PATCH {URL(resource).path} (trickle, end-of-candidates): {shown(r)}")

            session_id = URL(resource).name  # WHEP names the call by its WHIP session (or its call_id)
            watch = f"{gateway.http_url}/whep/{session_id}"
            async with http.post(watch, data=await player.offer(), headers=SDP) as r:
                print(f"4. POST /whep/{session_id}: {shown(r, 'Location', 'Content-Type')}")
                playback = str(r.url.join(URL(r.headers["Location"])))
                await player.accept(await r.text())
            heard, other = await wait_for_tone(player, 440), player.heard(1000, last=1)
            if heard and not other:  # as it should: a WHEP player plays the call's far end only
                print("   the WHEP player hears the phone's 440 Hz, and not the WHIP client's own 1000 Hz")
            else:
                print(f"   UNEXPECTED: the WHEP player hears the phone: {heard}, the WHIP client: {other}")
            async with http.delete(playback, headers=AUTH) as r:
                print(f"   DELETE {URL(playback).path}: {shown(r)}")

            async with http.delete(resource, headers=AUTH) as r:
                print(f"5. DELETE {URL(resource).path}: {shown(r)}")
            state = await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            async with http.delete(resource, headers=AUTH) as r:
                print(f"   the phone says {state['state']}; DELETE again: {shown(r)}")
            rate, samples = read_wav(await phone.wait_for_recording(incoming["call"]))
            recorded = detect_tone(samples[-rate:], rate, 1000)
            print(f"6. the phone {'heard' if recorded else 'did NOT hear'} the WHIP client's 1000 Hz tone")
    finally:
        await client.close()
        await player.close()
    print("7. gateway and phone stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
