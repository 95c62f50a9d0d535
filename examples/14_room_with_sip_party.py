"""Example 14: a web peer and a desk phone talk in a room.

Run it from anywhere:  python examples/14_room_with_sip_party.py   (needs pjsua2 for the desk phone)

Rooms are the dialect of "WebRTC Implementation in FastAPI" (docs/signaling.md "Rooms and peer relay"): a
WebSocket per peer at `/webrtc/signaling/{room_id}/{peer_id}`, offers, answers and ICE candidates relayed
between the browsers of a room, whose media flow browser to browser. A phone takes part as a SIP party:
the gateway then joins the room as the peer `gateway`, offers each browser a connection, and mixes what
everyone says (docs/signaling.md "A SIP party in a room").

alice's aiortc peer (it sends 1000 Hz) opens the room `standup` (she becomes its owner), then
1. calls the desk phone 2000 (plays 440 Hz) into it with `{"type": "dial", "to": "2000"}`: `dialing`,
   `sip_party` states, `peer_joined gateway` and the gateway's `offer`, which she answers; she hears the
   phone, the room's members are listed, and she hangs the party up (`hangup`);
2. the phone calls the room's number 3001 (gateway.yaml `rooms: {numbers: {"3001": standup}}`) and joins:
   the gateway comes back, she answers its new offer and hears the phone, the phone hangs up.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import sys
from typing import Any

import aiohttp

from gateway.app import Gateway
from peers.audio import detect_tone, read_wav, wait_for_tone
from peers.demo import ALICE_SECRET, demo_config, require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer

AUTH = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}
PEERS = "/webrtc/rooms/standup/peers"


class RoomSocket:
    """One peer's WebSocket: `next` returns the first message of a type not taken yet, reading on."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []

    async def next(self, kind: str, **match: Any) -> dict[str, Any]:
        while True:
            for message in self.pending:
                if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                    self.pending.remove(message)
                    return message
            self.pending.append(await self.ws.receive_json(timeout=15))

    async def answer_the_gateway(self, peer: WebPeer) -> None:
        """The gateway's offer (its peer joined the room for a SIP party), answered by `peer`."""
        offer = await self.next("offer", from_peer_id="gateway")
        answer = await peer.answer(offer["offer"]["sdp"])
        await self.ws.send_json(
            {"type": "answer", "answer": {"type": "answer", "sdp": answer}, "target_peer_id": "gateway"}
        )


async def listing(gateway: Gateway, path: str) -> Any:
    """GET a rooms listing with alice's credentials (she sees the rooms she may watch)."""
    async with aiohttp.ClientSession() as http, http.get(gateway.http_url + path, headers=AUTH) as r:
        return await r.json()


async def phone_heard_alice(phone: DeskPhone, call: int) -> bool:
    rate, samples = read_wav(await phone.wait_for_recording(call))
    return detect_tone(samples[-rate:], rate, 1000)


async def room_calls_the_phone(room: RoomSocket, phone: DeskPhone, gateway: Gateway) -> None:
    peer = WebPeer(1000)
    try:
        await room.ws.send_json({"type": "dial", "to": "2000"})  # under alice's allow_outbound
        call_id = (await room.next("dialing"))["call_id"]
        await room.next("peer_joined", peer_id="gateway")
        await room.answer_the_gateway(peer)
        await room.next("sip_party", call_id=call_id, state="connected")
        print(f"3. dial 2000: SIP party {call_id} connected; the gateway joined, alice answered its offer")
        incoming = await phone.wait_for("incoming")
        print(f"4. alice hears the phone's 440 Hz: {await wait_for_tone(peer, 440)}")
        print(f"   GET /webrtc/rooms/standup/peers: {(await listing(gateway, PEERS))['peers']}")
        await asyncio.sleep(1.0)  # a second of alice's tone into the phone's recording
        await room.ws.send_json({"type": "hangup", "call_id": call_id})
        ended = await room.next("sip_party", call_id=call_id, state="ended")
        await room.next("peer_left", peer_id="gateway")  # its last SIP party gone, the gateway leaves
        print(f"5. hangup: the SIP party ended ({ended['reason']}); peer_left gateway")
        print(f"   the phone heard alice's 1000 Hz: {await phone_heard_alice(phone, incoming['call'])}")
    finally:
        await peer.close()


async def phone_calls_the_room(room: RoomSocket, phone: DeskPhone, gateway: Gateway) -> None:
    peer = WebPeer(1000)  # a new connection to the gateway's peer: the first one closed as it left
    try:
        host, port = gateway.sip_address
        call = await phone.call(f"sip:3001@{host}:{port}")
        await room.next("peer_joined", peer_id="gateway")
        await room.answer_the_gateway(peer)
        party = await room.next("sip_party", state="connected")
        await phone.wait_for("state", call=call, state="CONFIRMED")
        print(f"6. the phone called 3001: SIP party {party['call_id']} joined standup, the gateway too")
        print(f"7. alice hears the phone's 440 Hz: {await wait_for_tone(peer, 440)}")
        await asyncio.sleep(1.0)
        await phone.hangup(call)
        await room.next("peer_left", peer_id="gateway")
        print("8. the phone hung up: peer_left gateway")
        print(f"   the phone heard alice's 1000 Hz: {await phone_heard_alice(phone, call)}")
    finally:
        await peer.close()


async def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    require_desk_phone()
    async with DeskPhone(user="2000", tone=440) as phone:
        config = demo_config(phone.port)  # the demo's gateway (free ports), plus a room's number:
        rooms = dataclasses.replace(config.rooms, numbers=(("3001", "standup"),))  # {"3001": standup}
        gateway = Gateway(dataclasses.replace(config, rooms=rooms))
        await gateway.start()
        try:
            print(f"1. desk phone 2000 on {phone.address}; gateway at {gateway.http_url}; 3001 rings standup")
            url = gateway.http_url.replace("http", "ws", 1) + "/webrtc/signaling/standup/alice-web"
            # credentials at the upgrade (or a first message {"type": "login", "user", "secret"})
            async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=AUTH) as ws:
                room = RoomSocket(ws)
                joined, existing = await room.next("joined"), await room.next("existing_peers")
                print(f"2. alice-web joined {joined['room_id']}, owner {joined['owner']}; "
                      f"existing_peers {existing['peers']}")  # fmt: skip
                print(f"   GET /webrtc/rooms: {(await listing(gateway, '/webrtc/rooms'))['rooms']}")
                await room_calls_the_phone(room, phone, gateway)
                await phone_calls_the_room(room, phone, gateway)
            for _ in range(50):  # the room closes with its last peer
                rooms_left = (await listing(gateway, "/webrtc/rooms"))["rooms"]
                if not rooms_left:
                    break
                await asyncio.sleep(0.1)
            print(f"9. alice left: GET /webrtc/rooms: {rooms_left}")
        finally:
            await gateway.close()
    print("10. gateway and phone stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
