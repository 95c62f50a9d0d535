"""Who may join and watch a room (issue 32 item 1), against a whole gateway with real HTTP clients, the
real rooms WebSocket and aiortc peers. alice opens `alice-private` from an aiortc peer playing 700 Hz;
bob, with his own API key, gets `forbidden` (close 4009) joining it, 403 on `POST /whep/alice-private`
(the same 403 as for a room that is not open), 403 publishing over WHIP or calling over the HTTP offer
API to its number, and does not see
it in `GET /webrtc/rooms`, while alice sees nothing of him. carol (a member of the group the rule lets
watch) sees it listed and her WHEP player hears alice's 700 Hz, and alice's peer is told `watcher_joined`
with carol's id; carol still may not join. alice watches her own room. A public room stays open to all."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

from gateway.app import Gateway
from gateway.config.loader import config_from_mapping
from peers.demo import ALICE_HASH
from peers.ports import free_port, free_range
from peers.scratch import scratch_dir
from peers.webpeer import WebPeer
from tests.e2e.harness import running_gateway, wait_until

KEYS = {user: f"e2e-rooms-{user}-key-0123456789" for user in ("alice", "bob", "carol")}
ALICE_HZ = 700


def headers(user: str, **extra: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[user], **extra}


def sdp_headers(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[user]}", "Content-Type": "application/sdp"}


def config_mapping() -> dict[str, Any]:
    rtp = free_range()
    users = [
        {
            "id": user,
            "sip": sip,
            "allow_outbound": ["."],
            "api_keys": [{"key": KEYS[user]}],
            "web_secret_hash": ALICE_HASH,  # unused: they sign in with their API keys
        }
        for user, sip in (("alice", "1001"), ("bob", "1002"), ("carol", "1003"))
    ]
    return {
        "sip": {"listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}]},
        "media": {"rtp_ports": {"start": rtp, "end": rtp + 199}},
        "pbx": {"domain": "127.0.0.1"},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "users": users,
        "state_dir": str(scratch_dir("gateway-state-")),
        "rooms": {
            "numbers": {"3009": "alice-private"},
            "groups": {"listeners": ["carol"]},
            "rules": [
                {"room": "alice-*", "create": ["alice"], "watch": ["@listeners"]},
                {"room": "lab-*", "public": True},
            ],
        },
    }


class RoomPeer:
    """One peer on the rooms WebSocket: keeps every message; answers the gateway's offer (the gateway
    joins the room for a WHEP player) with its aiortc peer, which plays its tone to the room's mix."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, media: WebPeer | None = None) -> None:
        self.ws, self.media = ws, media
        self.messages: list[dict[str, Any]] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            message = frame.json()
            self.messages.append(message)
            if message.get("type") == "offer" and message.get("from_peer_id") == "gateway" and self.media:
                answer = await self.media.answer(message["offer"]["sdp"])
                await self.ws.send_json(
                    {
                        "type": "answer",
                        "answer": {"type": "answer", "sdp": answer},
                        "target_peer_id": "gateway",
                    }
                )

    async def wait_for(self, kind: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next(
                (
                    m
                    for m in self.messages
                    if m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())
                ),
                None,
            )

        await wait_until(lambda: found() is not None, timeout=timeout)
        message = found()
        assert message is not None
        return message

    async def settled(self) -> list[dict[str, Any]]:
        """Every message sent to it so far (a ping's pong comes after them all, on one socket)."""
        count = sum(m.get("type") == "pong" for m in self.messages)
        await self.ws.send_json({"type": "ping"})
        await wait_until(lambda: sum(m.get("type") == "pong" for m in self.messages) > count)
        return [m for m in self.messages if m.get("type") != "pong"]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def gateway_and_http() -> AsyncIterator[tuple[Gateway, aiohttp.ClientSession]]:
    config = config_from_mapping(config_mapping(), {})
    async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
        yield gateway, http


def ws_url(gateway: Gateway, room: str, peer: str) -> str:
    return f"{gateway.http_url.replace('http', 'ws', 1)}/webrtc/signaling/{room}/{peer}"


async def listed(http: aiohttp.ClientSession, base: str, user: str) -> list[str]:
    async with http.get(f"{base}/webrtc/rooms", headers=headers(user)) as r:
        assert r.status == 200
        return [room["room_id"] for room in (await r.json())["rooms"]]


async def refused_join(gateway: Gateway, http: aiohttp.ClientSession, room: str, peer: str, user: str) -> str:
    """Join `room` as `user`: the error message the gateway sends before closing with 4009."""
    async with http.ws_connect(ws_url(gateway, room, peer), headers=headers(user)) as ws:
        error = await ws.receive_json(timeout=10)
        closing = await ws.receive(timeout=10)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
    assert ws.close_code == 4009, ws.close_code
    assert (error["type"], error["code"], error["field"]) == ("error", "forbidden", "room_id"), error
    return str(error["message"])


async def test_a_private_room_is_its_owners_and_the_rules() -> None:
    async with gateway_and_http() as (gateway, http):
        base = gateway.http_url
        media = WebPeer(freq=ALICE_HZ)
        alice = RoomPeer(
            await http.ws_connect(ws_url(gateway, "alice-private", "a1"), headers=headers("alice")), media
        )
        player = WebPeer(direction="recvonly")
        own = WebPeer(direction="recvonly")
        try:
            joined = await alice.wait_for("joined")
            assert (joined["user"], joined["owner"], joined["watchers"]) == ("alice", "alice", [])

            # bob, with his own API key: refused everywhere, and alice sees nothing of him
            message = await refused_join(gateway, http, "alice-private", "b1", "bob")
            assert (
                message
                == "user 'bob' may not join room 'alice-private': not its owner, and rooms.rules do not allow it"
            )
            assert "alice-private" not in await listed(http, base, "bob")
            async with http.ws_connect(ws_url(gateway, "alice-private", "b2")) as ws:  # credentials in login
                await ws.send_json({"type": "login", "api_key": KEYS["bob"]})
                error = await ws.receive_json(timeout=10)
                assert (error["code"], (await ws.receive(timeout=10)).data) == ("forbidden", 4009), error
            offer = await player.offer()
            for room in ("alice-private", "nobody-here"):  # open or not: one answer
                async with http.post(f"{base}/whep/{room}", data=offer, headers=sdp_headers("bob")) as r:
                    body = await r.json()
                    assert (r.status, body["reason"], body["field"]) == (403, "forbidden", "room_id"), body
                    assert body["error"] == (
                        f"user 'bob' may not watch room {room!r}: not its owner, and rooms.rules do not allow it"
                    )
                async with http.get(f"{base}/webrtc/rooms/{room}/peers", headers=headers("bob")) as r:
                    assert (r.status, (await r.json())["reason"]) == (403, "forbidden")
            async with http.post(f"{base}/whip/3009", data=offer, headers=sdp_headers("bob")) as r:
                assert (r.status, (await r.json())["reason"]) == (403, "forbidden")  # the room's number
            call = {"sdp": {"type": "offer", "sdp": offer}, "metadata": {"dial": "sip:3009@127.0.0.1"}}
            async with http.post(f"{base}/webrtc/offer", json=call, headers=headers("bob")) as r:
                body = await r.json()  # the HTTP API's call to it too (every dialect's dial meets the check)
                assert (r.status, body["reason"], body["field"]) == (403, "forbidden", "room_id"), body
            assert await refused_join(gateway, http, "alice-other", "b1", "bob") == (
                "user 'bob' may not create room 'alice-other': not its owner, and rooms.rules do not allow it"
            )
            seen = await alice.settled()
            assert [m["type"] for m in seen] == ["joined", "existing_peers"], (
                seen
            )  # no peer_joined, no gateway

            # carol may watch (the rule's group): listed, her player hears alice, alice is told who
            assert "alice-private" in await listed(http, base, "carol")
            assert await refused_join(gateway, http, "alice-private", "c1", "carol") == (
                "user 'carol' may not join room 'alice-private': not its owner, and rooms.rules do not allow it"
            )  # watching is not talking
            async with http.post(f"{base}/whep/alice-private", data=offer, headers=sdp_headers("carol")) as r:
                assert r.status == 201, await r.text()
                resource = str(r.url.join(URL(r.headers["Location"])))
                answer = await r.text()
            await player.accept(answer)
            watcher = await alice.wait_for("watcher_joined", user="carol")
            await wait_until(lambda: player.heard(ALICE_HZ, last=1.0), timeout=15)

            # alice watches her own room
            async with http.post(
                f"{base}/whep/alice-private", data=await own.offer(), headers=sdp_headers("alice")
            ) as r:
                assert r.status == 201, await r.text()
                own_resource = str(r.url.join(URL(r.headers["Location"])))
            await alice.wait_for("watcher_joined", user="alice")
            async with http.delete(own_resource, headers=headers("alice")) as r:
                assert r.status == 200
            async with http.delete(resource, headers=headers("bob")) as r:
                assert r.status == 404  # not bob's player
            async with http.delete(resource, headers=headers("carol")) as r:
                assert r.status == 200
            await alice.wait_for("watcher_left", watcher_id=watcher["watcher_id"], user="carol")
        finally:
            await alice.close()
            for peer in (media, player, own):
                await peer.close()


async def test_a_public_room_stays_open_to_every_user() -> None:
    async with gateway_and_http() as (gateway, http):
        base = gateway.http_url
        bob = RoomPeer(await http.ws_connect(ws_url(gateway, "lab-1", "b1"), headers=headers("bob")))
        carol: RoomPeer | None = None
        player = WebPeer(direction="recvonly")
        try:
            assert (await bob.wait_for("joined"))["owner"] == "bob"
            carol = RoomPeer(await http.ws_connect(ws_url(gateway, "lab-1", "c1"), headers=headers("carol")))
            await carol.wait_for("existing_peers", peers=["b1"])
            await bob.wait_for("peer_joined", peer_id="c1")
            for user in ("alice", "bob", "carol"):
                assert await listed(http, base, user) == ["lab-1"]
            async with http.get(f"{base}/webrtc/rooms/lab-1/peers", headers=headers("alice")) as r:
                assert (r.status, (await r.json())["peers"]) == (200, ["b1", "c1"])
            async with http.get(f"{base}/webrtc/rooms/lab-2/peers", headers=headers("alice")) as r:
                assert (r.status, (await r.json())["reason"]) == (404, "not_found")  # may see it: not open
            async with http.post(
                f"{base}/whep/lab-1", data=await player.offer(), headers=sdp_headers("alice")
            ) as r:
                assert r.status == 201, await r.text()
            await bob.wait_for("watcher_joined", user="alice")
            await carol.wait_for("watcher_joined", user="alice")
        finally:
            await bob.close()
            if carol is not None:
                await carol.close()
            await player.close()
