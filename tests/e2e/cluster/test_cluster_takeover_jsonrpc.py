"""A JSON-RPC call outlives its gateway instance (issue 34 item 3): instances as real processes sharing a
real Redis, the pjsua2 desk phone as the PBX, a JSON-RPC client (aiortc media, an API key in the URL)
that announced itself as `alice-desk`.

The client calls the phone through gw1 and they talk; gw1 gets SIGKILL. The client opens a new socket
at once, on another instance (what HAProxy does once gw1 is gone), and announces its id again. That
announce waits for the survivor that takes gw1's calls over (its lease, a heartbeat): the survivor adopts
the SIP dialog, re-INVITEs the phone to its own media (no BYE) and makes the peer again there, detached,
under its session id. The announce then resumes it: `resumed: true` with the call's id; when the
survivor is another instance than the one the client reached, the socket is carried on to it with the
client's own credentials (ws/relay.py). The client's `offer {call_id, sdp}` from a new
RTCPeerConnection renews the call's media, both hear each other again, and its `disconnect` ends the
call with a BYE from the survivor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import (
    GatewayProcess,
    handovers_written,
    instance_mapping,
    process_cluster,
)
from tests.e2e.dialects.test_jsonrpc import API_KEY, RpcClient
from tests.e2e.harness import wait_until
from tests.e2e.softphone.test_reconnect import tail_has_tone

LEASE = 2.0
PEER_ID = "alice-desk"


@asynccontextmanager
async def rpc_socket(http: aiohttp.ClientSession, gateway: GatewayProcess) -> AsyncIterator[RpcClient]:
    url = f"{gateway.http_url.replace('http', 'ws', 1)}/jsonrpc?api_key={API_KEY}"
    async with http.ws_connect(url) as ws:
        yield RpcClient(ws)


def mappings(redis_url: str, phone: str, count: int) -> list[dict[str, Any]]:
    found = []
    for index in range(count):
        mapping = instance_mapping(
            index,
            redis_url,
            pbx=phone,
            lease=LEASE,
            extra={"web_auth": {"reconnect_grace": 20}},
        )
        mapping["users"][0]["api_keys"] = [{"key": API_KEY, "default_dial": "2000"}]
        found.append(mapping)
    return found


@asynccontextmanager
async def phone_and_cluster(
    tmp_path: Path, count: int
) -> AsyncIterator[tuple[DeskPhone, str, list[GatewayProcess], aiohttp.ClientSession]]:
    """The desk phone (2000, a 440 Hz tone), Redis, `count` instances in front of the phone, an HTTP
    client: (phone, Redis URL, instances, client)."""
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        with running_redis(tmp_path) as server:
            async with (
                process_cluster(tmp_path, mappings(server.url, phone.address, count)) as instances,
                aiohttp.ClientSession() as http,
            ):
                yield phone, server.url, instances, http


async def talk_to_the_phone(client: RpcClient, peer: WebPeer, phone: DeskPhone) -> tuple[str, int]:
    """alice-desk announces itself and calls the phone, which answers; it hears the phone: (call id,
    the phone's call number)."""
    announced = await client.request("announce", {"peer_id": PEER_ID})
    assert announced["result"]["peer_id"] == PEER_ID, announced
    reply = await client.request("offer", {"sdp": await peer.offer(), "type": "offer"})
    call_id = reply["result"]["call_id"]
    await peer.accept(reply["result"]["answer"]["sdp"])
    number = int((await phone.wait_for("incoming"))["call"])
    await phone.wait_for("state", call=number, state="CONFIRMED")
    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
    return call_id, number


async def call_then_kill(
    http: aiohttp.ClientSession, gw1: GatewayProcess, phone: DeskPhone, redis_url: str
) -> tuple[str, int, int, float]:
    """alice-desk calls the phone through gw1, both hear each other, gw1's handover is in Redis, gw1 is
    killed: (call id, the phone's call number, its media changes so far, when gw1 died)."""
    first = WebPeer(freq=1000)
    try:
        async with rpc_socket(http, gw1) as client:
            call_id, number = await talk_to_the_phone(client, first, phone)
            await handovers_written(redis_url, "gw1", 1)
            media_changes = len(phone.seen("media", call=number))
            gw1.kill()
            return call_id, number, media_changes, time.monotonic()
    finally:
        await first.close()


async def renew_and_hang_up(
    client: RpcClient, call_id: str, phone: DeskPhone, number: int, media_changes: int, killed: float
) -> float:
    """The resumed peer renews the call's media from a new RTCPeerConnection, hears the phone, is heard,
    and hangs up: how long after the kill it heard the phone again."""
    second = WebPeer(freq=1300)
    try:
        reply = await client.request(
            "offer", {"call_id": call_id, "sdp": await second.offer(), "type": "offer"}
        )
        assert reply.get("result", {}).get("call_id") == call_id, reply
        await second.accept(reply["result"]["answer"]["sdp"])
        await wait_until(lambda: second.heard(440, last=1.0), timeout=20)  # ICE and DTLS anew
        back = time.monotonic() - killed
        assert len(phone.seen("media", call=number)) > media_changes  # the survivor's re-INVITE
        assert not phone.seen("state", call=number, state="DISCONNECTED"), "the phone heard a BYE"
        await asyncio.sleep(1.5)  # the new tone in the phone's recording
        reply = await client.request("disconnect", {"call_id": call_id, "reason": "done"})
        assert reply["result"] == {"call_ids": [call_id], "status": "disconnected"}, reply
        await phone.wait_for("state", call=number, state="DISCONNECTED")
    finally:
        await second.close()
    wav = await phone.wait_for_recording(number)
    assert tail_has_tone(wav, 1300), "the phone did not hear the client after the takeover"
    return back


async def test_a_json_rpc_peer_takes_its_call_back_at_the_survivor(tmp_path: Path) -> None:
    """Two instances: the client reconnects to gw2 at once, before gw1's lease lapsed; gw2 finds the
    peer's calls carried by gw1, cannot reach it, waits for the takeover (its own) and resumes the peer."""
    async with phone_and_cluster(tmp_path, 2) as (phone, redis_url, (gw1, gw2), http):
        call_id, number, changes, killed = await call_then_kill(http, gw1, phone, redis_url)
        async with rpc_socket(http, gw2) as client:
            resumed = await client.request("announce", {"peer_id": PEER_ID})
            listed = time.monotonic() - killed
            result = resumed.get("result", {})
            assert result.get("resumed") is True and result.get("call_ids") == [call_id], resumed
            assert (await gw2.status())["calls"] == 1
            back = await renew_and_hang_up(client, call_id, phone, number, changes, killed)
    print(f"JSON-RPC: resumed {listed:.2f} s after the kill, heard again after {back:.2f} s")


async def test_a_json_rpc_peer_on_another_survivor_is_carried_on_to_the_one_that_took_its_call(
    tmp_path: Path,
) -> None:
    """Three instances: once a survivor took the call over, the client reaches the other one, whose
    relay carries the socket on (with the client's API key) to the survivor holding the peer."""
    async with phone_and_cluster(tmp_path, 3) as (phone, redis_url, (gw1, gw2, gw3), http):
        call_id, number, changes, killed = await call_then_kill(http, gw1, phone, redis_url)
        holder: list[GatewayProcess] = []

        async def taken() -> bool:
            for gateway in (gw2, gw3):
                if (await gateway.status())["calls"] == 1:
                    holder.append(gateway)
                    return True
            return False

        async with asyncio.timeout(LEASE + 10):
            while not await taken():
                await asyncio.sleep(0.2)
        other = gw3 if holder[0] is gw2 else gw2
        async with rpc_socket(http, other) as client:
            resumed = await client.request("announce", {"peer_id": PEER_ID})
            result = resumed.get("result", {})
            assert result.get("resumed") is True and result.get("call_ids") == [call_id], resumed
            assert (await other.status())["calls"] == 0  # served by the holder, through the relay
            assert "relayed to" in other.log()
            back = await renew_and_hang_up(client, call_id, phone, number, changes, killed)
    print(f"JSON-RPC through a relay: {holder[0].id} took the call, heard again {back:.2f} s after the kill")


async def test_a_json_rpc_peer_whose_socket_went_is_carried_on_to_its_instance(tmp_path: Path) -> None:
    """No instance dies: the client's socket to gw1 goes (a network change), and its new one reaches
    gw2. gw2 finds the peer waiting on gw1 (Redis: `detached`) and carries the socket on there; the
    announce resumes the peer on gw1, whose call never stopped for the phone (no re-INVITE, no BYE)."""
    async with phone_and_cluster(tmp_path, 2) as (phone, redis_url, (gw1, gw2), http):
        # the old RTCPeerConnection is not closed (that would be a hang-up): its network went
        first, second = WebPeer(freq=1000), WebPeer(freq=1300)
        try:
            async with rpc_socket(http, gw1) as client:
                call_id, number = await talk_to_the_phone(client, first, phone)
                changes = len(phone.seen("media", call=number))
                store = redis.Redis.from_url(redis_url)
                try:  # gw1 says in Redis that it carries the peer's call (a heartbeat after it began)
                    await wait_until(lambda: store.exists(f"gw:carried:rpc:alice:{PEER_ID}") == 1, timeout=5)
                finally:
                    store.close()
            went = time.monotonic()  # the socket closed without `disconnect`: detached on gw1
            async with rpc_socket(http, gw2) as client:
                resumed = await client.request("announce", {"peer_id": PEER_ID})
                result = resumed.get("result", {})
                assert result.get("resumed") is True and result.get("call_ids") == [call_id], resumed
                assert (await gw2.status())["calls"] == 0 and (await gw1.status())["calls"] == 1
                assert "relayed to" in gw2.log()
                offer = {"call_id": call_id, "sdp": await second.offer(), "type": "offer"}
                reply = await client.request("offer", offer)
                assert reply.get("result", {}).get("call_id") == call_id, reply
                await second.accept(reply["result"]["answer"]["sdp"])
                await wait_until(lambda: second.heard(440, last=1.0), timeout=20)
                back = time.monotonic() - went
                assert len(phone.seen("media", call=number)) == changes  # the call never moved
                await asyncio.sleep(1.5)
                reply = await client.request("disconnect", {"call_id": call_id})
                assert reply["result"]["status"] == "disconnected", reply
                await phone.wait_for("state", call=number, state="DISCONNECTED")
        finally:
            await first.close()
            await second.close()
        wav = await phone.wait_for_recording(number)
        assert tail_has_tone(wav, 1300), "the phone did not hear the client after it came back"
    print(f"JSON-RPC relayed to its instance: heard again {back:.2f} s after its socket went")
