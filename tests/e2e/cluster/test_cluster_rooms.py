"""Rooms shared by the instances of a cluster (issue 34; gateway/cluster/room_owners.py): three instances
as real processes sharing a real Redis, two aiortc peers talking browser to browser through a room.

p1 opens room `lab` at gw1; p2 reaches gw2 (no stickiness), is relayed to gw1 and meets p1 there: they
offer and answer through the room and hear each other. gw1 gets SIGKILL: both sockets close (p2's relay
with it), the media goes on browser to browser. p1 comes back at gw2, which waits for gw1's lease to
lapse and takes the room; p2 comes back at gw3 and is relayed to gw2: the peers meet again (each told the
other) and relay to each other through the room, their media never having stopped.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_harness import cluster
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster
from tests.e2e.dialects.test_room_access import RoomPeer
from tests.e2e.harness import ALICE_SECRET, wait_until

LEASE = 2.0
INSTANCES = ("127.0.0.1/32", "127.0.0.2/31", "127.0.0.4/32")  # Kamailio, the phone and the instances
ROOMS = {"allow_anonymous": True, "rules": [{"room": "*", "public": True}]}
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2130706431 192.0.2.7 40000 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}


def url(instance: GatewayProcess, peer: str) -> str:
    return f"{instance.http_url.replace('http', 'ws', 1)}/webrtc/signaling/lab/{peer}"


async def join(
    http: aiohttp.ClientSession, instance: GatewayProcess, peer: str, timeout: float = 10
) -> RoomPeer:
    room_peer = RoomPeer(await http.ws_connect(url(instance, peer)))
    await room_peer.wait_for("joined", timeout=timeout)
    return room_peer


async def listed(http: aiohttp.ClientSession, instance: GatewayProcess) -> list[tuple[str, int]]:
    """GET /webrtc/rooms at `instance`: (room, peers) of every room in the cluster."""
    async with http.get(f"{instance.http_url}/webrtc/rooms") as response:
        assert response.status == 200
        return [(room["room_id"], room["peers"]) for room in (await response.json())["rooms"]]


async def lists(http: aiohttp.ClientSession, instance: GatewayProcess, rooms: list[tuple[str, int]]) -> None:
    """`instance` lists `rooms` within a few heartbeats (another's rooms as it published them last)."""
    found: list[tuple[str, int]] = []
    for _ in range(40):
        found = await listed(http, instance)
        if found == rooms:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{instance.id} lists {found}, not {rooms}")


async def test_a_rooms_peers_meet_across_instances_and_outlive_one(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        mappings = [instance_mapping(i, server.url, lease=LEASE, extra={"rooms": ROOMS}) for i in range(3)]
        async with process_cluster(tmp_path, mappings) as (gw1, gw2, gw3), aiohttp.ClientSession() as http:
            media1, media2 = WebPeer(700), WebPeer(900)
            one = await join(http, gw1, "p1")
            two = await join(http, gw2, "p2")  # relayed to gw1, where the room lives
            try:
                assert (await two.wait_for("existing_peers"))["peers"] == ["p1"]
                await one.wait_for("peer_joined", peer_id="p2")
                # one room of two peers, wherever it is asked (it lives on gw1: gw2 lists it from Redis)
                await lists(http, gw1, [("lab", 2)])
                await lists(http, gw2, [("lab", 2)])
                async with http.get(f"{gw2.http_url}/webrtc/rooms/lab/peers") as response:
                    assert (await response.json())["peers"] == ["p1", "p2"]
                offer = {"type": "offer", "sdp": await media2.offer()}
                await two.ws.send_json({"type": "offer", "offer": offer, "target_peer_id": "p1"})
                sdp = (await one.wait_for("offer", from_peer_id="p2"))["offer"]["sdp"]
                answer = {"type": "answer", "sdp": await media1.answer(sdp)}
                await one.ws.send_json({"type": "answer", "answer": answer, "target_peer_id": "p2"})
                await media2.accept((await two.wait_for("answer", from_peer_id="p1"))["answer"]["sdp"])
                await wait_until(
                    lambda: media1.heard(900, last=1.0) and media2.heard(700, last=1.0), timeout=10
                )

                gw1.kill()
                killed = time.monotonic()
                await wait_until(lambda: one.ws.closed and two.ws.closed, timeout=10)  # p2's relay too
                await one.close()
                await two.close()
                media1.clear()
                media2.clear()
                await wait_until(
                    lambda: media1.heard(900, last=1.0) and media2.heard(700, last=1.0), timeout=5
                )

                # p1 back at gw2 (gw1's lease waited on, the room taken), p2 at gw3 (relayed to gw2)
                one = await join(http, gw2, "p1", timeout=LEASE + 8)
                assert (await one.wait_for("existing_peers"))["peers"] == []
                two = await join(http, gw3, "p2")
                assert (await two.wait_for("existing_peers"))["peers"] == ["p1"]
                await one.wait_for("peer_joined", peer_id="p2")
                rejoined = time.monotonic() - killed
                await lists(http, gw3, [("lab", 2)])  # one room (gw2's): no second one at gw3
                await two.ws.send_json(
                    {"type": "ice_candidate", "candidate": CANDIDATE, "target_peer_id": "p1"}
                )
                relayed = await one.wait_for("ice_candidate", from_peer_id="p2")
                assert relayed["candidate"]["candidate"] == CANDIDATE["candidate"], relayed
                # the media never stopped
                media1.clear()
                media2.clear()
                await wait_until(
                    lambda: media1.heard(900, last=1.0) and media2.heard(700, last=1.0), timeout=5
                )
            finally:
                for closing in (one, two):
                    await closing.close()
                await media1.close()
                await media2.close()
    print(f"the room met again at gw2 {rejoined:.2f} s after gw1's kill -9")


async def test_a_phone_calling_a_rooms_number_reaches_the_room_wherever_it_lands(tmp_path: Path) -> None:
    """Three in-process instances behind the shipped Kamailio edge; room `lab` (number 3001) lives on the
    first, where its browser peer is. The desk phone calls 3001 through Kamailio three times (dispatcher's
    round robin: each instance once): an instance the room does not live on answers 302 with the room's
    instance (tagged), Kamailio follows, and each time the phone joins the room there: the peer hears it.
    alice's page on the second instance dialling 3001 goes to the room's instance too (tagged: it is not
    redirected again) and joins the mix: the peer and she hear each other."""
    require_desk_phone()
    rooms = {**ROOMS, "numbers": {"3001": "lab"}}
    async with (
        cluster(tmp_path, 3, fronts=True, rooms=rooms, trusted=INSTANCES) as c,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        aiohttp.ClientSession() as http,
    ):
        home = c.gateways[0]
        media = WebPeer(1000)
        room_peer = RoomPeer(
            await http.ws_connect(f"{home.http_url.replace('http', 'ws', 1)}/webrtc/signaling/lab/p1"), media
        )
        try:
            await room_peer.wait_for("joined")
            for _ in range(3):  # (round robin: each instance gets one INVITE)
                await media.close()  # (the gateway's connection to the peer closes with each party)
                media = room_peer.media = WebPeer(1000)
                number = await phone.call(c.edge.aor("3001"))
                await phone.wait_for("state", call=number, state="CONFIRMED")
                party = await room_peer.wait_for("sip_party", state="connected", timeout=10)
                await wait_until(functools.partial(media.heard, 440, last=1.0), timeout=15)
                await phone.hangup(number)
                await room_peer.wait_for("sip_party", call_id=party["call_id"], state="ended")
                room_peer.messages.clear()
                await wait_until(lambda: home.driver.calls == 0, timeout=10)
            assert all(g.driver.calls == 0 for g in c.gateways[1:])
            log = c.edge.log()
            assert log.count("redirected by the gateway") == 2, log[-3000:]  # from the two others

            # alice's page on the second instance dials the room's number: her call goes to the room's
            # instance (tagged, not redirected), joins its mix, and the room's peer hears her
            await media.close()
            media = room_peer.media = WebPeer(1000)
            alice_media = WebPeer(1300)
            try:
                async with WebUser(c.urls[1], "alice", ALICE_SECRET) as alice:
                    call_id = await alice.call("3001", await alice_media.offer())
                    await alice_media.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
                    await room_peer.wait_for("sip_party", state="connected", timeout=10)
                    await wait_until(functools.partial(media.heard, 1300, last=1.0), timeout=15)
                    await wait_until(functools.partial(alice_media.heard, 1000, last=1.0), timeout=15)
                    await alice.request({"type": "hangup", "call_id": call_id})
            finally:
                await alice_media.close()
        finally:
            await room_peer.close()
            await media.close()
