"""A room's SIP party outlives its gateway instance (issue 34): two instances as real processes sharing a
real Redis, the pjsua2 desk phone as the PBX, a browser peer (aiortc) in a room.

alice's peer opens room `meet` at gw1 and dials the phone into it (`dial`): the gateway joins the room,
connects to her peer and mixes; she hears the phone, the phone hears her. gw1 gets SIGKILL. gw2 takes
the party's call over from its handover: it takes the room for itself (gw1's lease lapsed), re-INVITEs
the phone to its own media (the phone never sees a BYE), re-opens the room with the gateway peer and
gives the call a new leg to the mix. alice's peer comes back at gw2 (her socket died with gw1), finds
the gateway in the room, connects to it, and she and the phone hear each other again.

A WHEP viewer of the room asks gw2 while the room lives on gw1: its offer is forwarded there and it
hears the phone. Its connection dies with gw1; asking again (at gw2, where the room went) it hears the
phone again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import redis

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster
from tests.e2e.dialects.test_room_access import RoomPeer
from tests.e2e.harness import wait_until
from tests.e2e.softphone.test_reconnect import tail_has_tone

RTP_BASE = 54600  # this file's RTP ports: 54600-54799, 55200-55399
LEASE = 2.0
KEY = "e2e-room-party-key-0123456789"


async def watch(http: aiohttp.ClientSession, instance: GatewayProcess, viewer: WebPeer) -> None:
    """A WHEP viewer of room `meet` asking `instance`: 201, and it hears the phone."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"}
    async with http.post(f"{instance.http_url}/whep/meet", data=await viewer.offer(), headers=headers) as r:
        assert r.status == 201, await r.text()
        answer = await r.text()
    await viewer.accept(answer)
    await wait_until(lambda: viewer.heard(440, last=1.0), timeout=15)


def url(instance: GatewayProcess) -> str:
    return f"{instance.http_url.replace('http', 'ws', 1)}/webrtc/signaling/meet/p1?api_key={KEY}"


async def connect_to_gateway(peer: RoomPeer, media: WebPeer) -> None:
    """The peer's connection to the gateway's own peer: offered by it when it joined after the peer (the
    peer's RoomPeer answers), or by the peer when the gateway was there first (`existing_peers`)."""
    existing = await peer.wait_for("existing_peers")
    if "gateway" in existing["peers"]:
        offer = {"type": "offer", "sdp": await media.offer()}
        await peer.ws.send_json({"type": "offer", "offer": offer, "target_peer_id": "gateway"})
        answer = await peer.wait_for("answer", from_peer_id="gateway")
        await media.accept(answer["answer"]["sdp"])
    else:
        await peer.wait_for("offer", from_peer_id="gateway", timeout=15)


async def test_a_survivor_carries_on_a_rooms_sip_party(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        with running_redis(tmp_path) as server:
            mappings = [
                instance_mapping(
                    i, server.url, rtp_base=RTP_BASE, pbx=phone.address, lease=LEASE,
                    extra={"web_auth": {"reconnect_grace": 20}}, alice={"api_keys": [{"key": KEY}]},
                )
                for i in range(2)
            ]  # fmt: skip
            async with process_cluster(tmp_path, mappings) as (gw1, gw2), aiohttp.ClientSession() as http:
                first, viewer = WebPeer(1000), WebPeer(direction="recvonly")
                peer = RoomPeer(await http.ws_connect(url(gw1)), first)
                try:
                    await peer.wait_for("joined")
                    await peer.ws.send_json({"type": "dial", "to": "2000"})
                    call_id = (await peer.wait_for("dialing", timeout=10))["call_id"]
                    number = int((await phone.wait_for("incoming"))["call"])
                    await phone.wait_for("state", call=number, state="CONFIRMED")
                    await peer.wait_for("sip_party", call_id=call_id, state="connected")
                    await peer.wait_for("offer", from_peer_id="gateway")  # answered by its RoomPeer
                    await wait_until(lambda: first.heard(440, last=1.0), timeout=15)
                    await watch(http, gw2, viewer)  # the room lives on gw1: forwarded there
                    assert "forwarded to" in gw2.log()
                    client = redis.Redis.from_url(server.url)
                    try:
                        await wait_until(lambda: client.hexists("gw:handover:gw1", call_id), timeout=5)
                    finally:
                        client.close()
                    media_changes = len(phone.seen("media", call=number))
                    gw1.kill()
                    killed = time.monotonic()
                finally:
                    await peer.close()
                    await asyncio.gather(first.close(), viewer.close())

                await wait_until(lambda: "taken over here" in gw2.log(), timeout=LEASE + 10)
                second, viewer = WebPeer(1300), WebPeer(direction="recvonly")
                try:
                    peer = RoomPeer(await http.ws_connect(url(gw2)), second)
                    await peer.wait_for("joined", timeout=10)
                    await connect_to_gateway(peer, second)
                    await wait_until(lambda: second.heard(440, last=1.0), timeout=20)
                    back = time.monotonic() - killed
                    assert len(phone.seen("media", call=number)) > media_changes  # gw2's re-INVITE
                    assert not phone.seen("state", call=number, state="DISCONNECTED"), "the phone heard a BYE"
                    await watch(http, gw2, viewer)  # the viewer asks again: the room is gw2's now
                    await asyncio.sleep(1.5)  # alice's new tone in the phone's recording
                    await peer.ws.send_json({"type": "hangup", "call_id": call_id})
                    await phone.wait_for("state", call=number, state="DISCONNECTED")
                    await peer.wait_for("sip_party", call_id=call_id, state="ended")
                finally:
                    await peer.close()
                    await asyncio.gather(second.close(), viewer.close())
                wav = await phone.wait_for_recording(number)
                assert tail_has_tone(wav, 1300), "the phone did not hear alice after the takeover"
    print(f"alice heard the phone again {back:.2f} s after gw1's kill -9")
