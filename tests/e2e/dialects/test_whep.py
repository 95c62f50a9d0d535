"""WHEP (draft-ietf-wish-whep) through a whole gateway: the pjsua2 desk phone calls a room's number
(`rooms.numbers: {"3001": "room-a"}`) and an aiortc WHEP client (a recvonly WebPeer) plays the room's
mix: POST application/sdp to /whep/room-a -> 201 with Location and the answer, the phone's 440 Hz is
heard, PATCH 405, DELETE 200 (then 404); a room that is not open 404, no credentials 401, another
Content-Type 415, an offer that is not SDP 400."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from yarl import URL

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.webpeer import WebPeer
from tests.e2e.harness import gateway_config, running_gateway, wait_until

API_KEY = "e2e-whep-key-0123456789"
BEARER = {"Authorization": f"Bearer {API_KEY}"}
SDP_HEADERS = {**BEARER, "Content-Type": "application/sdp"}


async def test_whep_client_hears_a_room_with_the_phone(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = gateway_config(
            phone.address,
            alice_extra={"api_keys": [{"key": API_KEY}]},
            media={"rtp_ports": {"start": free_range()}},  # this branch's range
            rooms={"numbers": {"3001": "room-a"}, "rules": [{"room": "room-a", "owner": "alice"}]},
        )
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            endpoint = f"{gateway.http_url}/whep/room-a"
            player = WebPeer(direction="recvonly")
            try:
                offer = await player.offer()
                assert "a=recvonly" in offer
                async with http.post(endpoint, data=offer, headers=SDP_HEADERS) as r:  # not open yet
                    assert (r.status, (await r.json())["field"]) == (404, "room_id")

                host, port = gateway.sip_address
                call = await phone.call(f"sip:3001@{host}:{port}")
                await phone.wait_for("state", call=call, state="CONFIRMED", timeout=15)

                async with http.post(endpoint, data=offer, headers=SDP_HEADERS) as r:
                    assert r.status == 201, await r.text()
                    assert r.content_type == "application/sdp"
                    resource = str(r.url.join(URL(r.headers["Location"])))
                    answer = await r.text()
                assert "/whep/sessions/" in resource and "a=sendonly" in answer
                await player.accept(answer)
                await wait_until(lambda: player.heard(440, last=1.0), timeout=10)

                async with http.patch(resource, data="", headers=BEARER) as r:
                    assert r.status == 405
                async with http.delete(resource + "x", headers=BEARER) as r:
                    assert r.status == 404
                async with http.delete(resource) as r:
                    assert r.status == 401
                async with http.delete(resource, headers=BEARER) as r:
                    assert r.status == 200
                async with http.delete(resource, headers=BEARER) as r:
                    assert r.status == 404
            finally:
                await player.close()

            async with http.post(endpoint, data=offer, headers={"Content-Type": "application/sdp"}) as r:
                assert r.status == 401
            async with http.post(endpoint, data=offer, headers={**BEARER, "Content-Type": "text/plain"}) as r:
                assert r.status == 415
            async with http.post(endpoint, data="not sdp", headers=SDP_HEADERS) as r:
                assert (r.status, (await r.json())["field"]) == (400, "sdp")
            await phone.hangup(call)
            await phone.wait_for("state", call=call, state="DISCONNECTED")
            await wait_until(lambda: gateway._health_details()["calls"] == 0)
            for _ in range(50):  # the gateway leaves the room once the party's call is over
                async with http.get(f"{gateway.http_url}/webrtc/rooms", headers=BEARER) as r:
                    rooms = (await r.json())["rooms"]
                if not rooms:
                    break
                await asyncio.sleep(0.1)
            assert rooms == [], rooms
