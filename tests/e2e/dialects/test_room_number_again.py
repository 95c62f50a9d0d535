"""A phone that hangs up on a room and calls its number again at once joins it again (rooms.numbers).

The room's conference ends with its last SIP party: the gateway closes its browsers' legs, then leaves the
room. A call arriving meanwhile made a new conference whose gateway peer could not join the room it had
not left yet (`Conflict`), and the phone got 404 (a CI failure of the cluster rooms test, whose third call
came right after the second's end). It now waits for the old conference to finish leaving. Here the
gateway takes 0.5 s to leave the room, as a loaded one can (its browsers' legs closing first)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import aiohttp
import pytest

from gateway.signaling.rooms.endpoint import RoomsContext
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_room_access import RoomPeer
from tests.e2e.harness import gateway_config, running_gateway, wait_until

ROOMS = {"allow_anonymous": True, "rules": [{"room": "*", "public": True}], "numbers": {"3001": "lab"}}


async def test_a_phone_calling_a_rooms_number_again_at_once_joins_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_desk_phone()
    leave = RoomsContext.leave_gateway

    async def slow_leave(self: RoomsContext, room_id: str) -> None:
        await asyncio.sleep(0.5)
        await leave(self, room_id)

    monkeypatch.setattr(RoomsContext, "leave_gateway", slow_leave)
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address, rooms=ROOMS)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        media = WebPeer(1000)
        url = f"{gateway.http_url.replace('http', 'ws', 1)}/webrtc/signaling/lab/p1"
        room_peer = RoomPeer(await http.ws_connect(url), media)
        host, port = gateway.sip_address
        try:
            await room_peer.wait_for("joined")
            number = await phone.call(f"sip:3001@{host}:{port}")
            await phone.wait_for("state", call=number, state="CONFIRMED")
            await wait_until(functools.partial(media.heard, 440, last=1.0), timeout=15)  # the room works
            for _ in range(3):  # each call right after the last one's end is answered (it was 404)
                old, media = media, WebPeer(1000)
                room_peer.media = media  # (the gateway's next connection to the peer is a new one)
                await phone.hangup(number)  # and at once the next call: no wait for the room to settle
                number = await phone.call(f"sip:3001@{host}:{port}")
                await old.close()
                await phone.wait_for("state", call=number, state="CONFIRMED")
        finally:
            await media.close()
            await room_peer.close()
