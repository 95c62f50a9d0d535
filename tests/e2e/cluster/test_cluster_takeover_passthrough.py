"""A pass-through call outlives its gateway instance (issue 34 item 3): two instances as real processes
sharing a real Redis; the far end a WebRTC SIP endpoint (aiortc behind peers/sip_webrtc.py) on a route
with ``media: passthrough``, so the call's media flows browser <-> far end, never through a gateway.

alice (peers.web_user over `/ws`, aiortc media) calls 7001 through gw1; they hear each other. gw1 gets
SIGKILL. The media goes on end to end meanwhile: it never went through gw1. Within a lease gw2 takes the
call's signaling over from gw1's handover: it adopts the SIP dialog and re-INVITEs the far end with the
same session (the browser's description, its settled DTLS role, the same o= version), which moves the
dialog to gw2 and changes nothing else. alice's page logs in again with its token at gw2, is told the
call, and reattaches with a new RTCPeerConnection: the offer goes to the far end in a re-INVITE, its
answer is `reattached`, and they hear each other on the new connection. Her hangup reaches the far end
from gw2. Before, a pass-through call had no handover: gw1's death left the browser's media up with
nobody to end the call or take it back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis

from peers.redis import running_redis
from peers.sip_webrtc import SipWebRtcPeer
from peers.softphones import Softphone, require_softphones
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster
from tests.e2e.cluster.test_cluster_sip_flows import Front
from tests.e2e.cluster.test_cluster_takeover_websip import address
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import ALICE_SECRET, wait_until
from tests.e2e.media.test_webrtc_passthrough import (
    aiortc_calls_7001,
    expect_peer_hears_the_beep,
    rpc_calls_7001,
)
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD
from tests.signaling.browser import chromium_page

RTP_BASE = 52200  # this file's RTP ports: 52200-52399, 52800-52999 (none used: the media passes through)
LEASE = 2.0
ROUTES = [{"match": "7xxx", "media": "passthrough"}]
API_KEY = "e2e-takeover-passthrough-key-0123456"
GRACE = 6.0  # the JSON-RPC peer's reconnect grace: waited past after the takeover


async def test_a_survivor_carries_on_a_pass_through_calls_signaling(tmp_path: Path) -> None:
    async with SipWebRtcPeer(freq=440, user="7001") as peer:
        with running_redis(tmp_path) as server:
            extra = {"web_auth": {"reconnect_grace": 20}, "routes": ROUTES}
            mappings = [
                instance_mapping(i, server.url, rtp_base=RTP_BASE, pbx=peer.address, lease=LEASE, extra=extra)
                for i in range(2)
            ]
            async with process_cluster(tmp_path, mappings) as (gw1, gw2):
                first, second = WebPeer(freq=1000), WebPeer(freq=1300)
                try:
                    alice = WebUser(gw1.http_url, "alice", ALICE_SECRET)
                    await alice.__aenter__()
                    try:
                        call_id = await aiortc_calls_7001(alice, first, peer)
                        client = redis.Redis.from_url(server.url)
                        try:  # the call's handover, kept although the gateway carries none of its media
                            await wait_until(lambda: client.hexists("gw:handover:gw1", call_id), timeout=5)
                        finally:
                            client.close()
                        gw1.kill()
                        killed = time.monotonic()
                    finally:
                        await alice.close()  # its socket died with gw1

                    # the media never went through gw1: both still hear each other, end to end
                    first.clear()
                    peer.media.clear()
                    await asyncio.sleep(1.2)
                    assert first.heard(440, last=1.0) and peer.media.heard(1000, last=1.0)

                    async with WebUser(gw2.http_url, "alice", "", token=alice.token) as again:
                        # a login at the survivor waits for its claim of gw1's calls (wiring.SETTLE_MAX
                        # more while it is under way): 10 s was seen too short at a full suite's load
                        calls = await again.wait_for("calls", timeout=LEASE + 25)
                        [summary] = calls["calls"]
                        assert summary["call_id"] == call_id and summary["state"] == "connected", calls
                        assert "taken over here" in gw2.log(), gw2.log()[-3000:]
                        assert len(peer.reinvites) == 1, "the survivor's re-INVITE (a target refresh)"
                        assert peer.renewals == 0, "the survivor's re-INVITE changed the session"
                        assert not peer.ended.is_set(), "the far end heard a BYE"
                        await first.close()  # the page's new RTCPeerConnection replaces its old one
                        await again.request(
                            {"type": "reattach", "call_id": call_id, "sdp": await second.offer()}
                        )
                        reattached = await again.wait_for("reattached", call_id=call_id)
                        assert len(peer.reinvites) == 2 and peer.renewals == 1  # the new connection's offer
                        await second.accept(reattached["sdp"])
                        await wait_until(lambda: second.heard(440, last=1.0), timeout=15)
                        await wait_until(lambda: peer.media.heard(1300, last=1.0), timeout=15)
                        back = time.monotonic() - killed
                        await again.request({"type": "hangup", "call_id": call_id})
                        await asyncio.wait_for(peer.ended.wait(), 10)  # gw2's BYE
                finally:
                    await asyncio.gather(first.close(), second.close())
    print(f"the page heard the far end on its new connection {back:.2f} s after the kill")


@asynccontextmanager
async def two_instances(
    tmp_path: Path, rtp_base: int, grace: float, *, sip_websocket: bool = False
) -> AsyncIterator[tuple[SipWebRtcPeer, str, GatewayProcess, GatewayProcess]]:
    """The far end 7001 on the pass-through route, Redis, two instances whose alice has an API key dialling
    7001 (and ``sip_websocket``: SIP over WebSocket, alice's SIP password): (the far end, the Redis URL,
    gw1, gw2)."""
    async with SipWebRtcPeer(
        freq=440, user="7001", addresses=None if sip_websocket else ("127.0.0.1",)
    ) as peer:
        with running_redis(tmp_path) as server:
            extra: dict[str, Any] = {"web_auth": {"reconnect_grace": grace}, "routes": ROUTES}
            alice: dict[str, Any] = {"api_keys": [{"key": API_KEY, "default_dial": "7001"}]}
            if sip_websocket:
                extra["sip"] = {"websocket": {}}
                alice["sip_auth"] = {"password": ALICE_SIP_PASSWORD}
            mappings = [
                instance_mapping(
                    i, server.url, rtp_base=rtp_base, pbx=peer.address, lease=LEASE, extra=extra, alice=alice
                )
                for i in range(2)
            ]
            async with process_cluster(tmp_path, mappings) as (gw1, gw2):
                yield peer, server.url, gw1, gw2


async def handed_over_then_killed(redis_url: str, gw1: GatewayProcess, call_id: str) -> float:
    """gw1's handover of the call is in Redis, then gw1 is killed: when."""
    client = redis.Redis.from_url(redis_url)
    try:
        await wait_until(lambda: client.hexists("gw:handover:gw1", call_id), timeout=5)
    finally:
        client.close()
    gw1.kill()
    return time.monotonic()


async def test_a_json_rpc_peers_pass_through_call_is_carried_on_at_the_survivor(tmp_path: Path) -> None:
    """Before, only a page's pass-through call had a handover; a JSON-RPC peer's was recorded as lost with
    its instance. Now the survivor takes its signaling over (a target refresh that changes nothing) and
    makes the peer again there; the client's new socket announces its id and is told `resumed`. Its media
    never stopped, so it needs no new offer: no grace ends the call (waited past). A new
    RTCPeerConnection's `offer {call_id, sdp}` still goes to the far end (our re-INVITE, its answer the
    result), and the client's `disconnect` reaches the far end from the survivor."""
    first, second = WebPeer(freq=1000), WebPeer(freq=1300)
    announce = {"peer_id": "alice-pt"}
    async with (
        two_instances(tmp_path, RTP_BASE, GRACE) as (peer, redis_url, gw1, gw2),
        aiohttp.ClientSession() as http,
    ):
        try:
            url = "/jsonrpc?api_key=" + API_KEY
            async with http.ws_connect(gw1.http_url.replace("http", "ws") + url) as ws:
                call_id = await rpc_calls_7001(RpcClient(ws), announce, first, peer)
                await handed_over_then_killed(redis_url, gw1, call_id)
            first.clear()
            peer.media.clear()
            await asyncio.sleep(1.2)  # end to end: the media never went through gw1
            assert first.heard(440, last=1.0) and peer.media.heard(1000, last=1.0)
            # the survivor has taken the call over (its lease of gw1 expired) before the client comes
            await wait_until(lambda: "taken over here" in gw2.log(), timeout=10)
            async with http.ws_connect(gw2.http_url.replace("http", "ws") + url) as ws:
                client = RpcClient(ws)
                resumed = await client.request("announce", announce)
                assert resumed.get("result", {}).get("resumed") is True, resumed
                assert resumed["result"]["call_ids"] == [call_id], resumed
                assert "taken over here" in gw2.log(), gw2.log()[-3000:]
                assert len(peer.reinvites) == 1 and peer.renewals == 0, "the survivor's target refresh"
                for _ in range(int(GRACE) + 1):  # past the grace: none runs, the media goes on
                    await client.request("ping", {})  # (reading: the socket's heartbeat answered)
                    await asyncio.sleep(1.0)
                assert not peer.ended.is_set(), "the far end heard a BYE"
                first.clear()
                peer.media.clear()
                await wait_until(
                    lambda: first.heard(440, last=1.0) and peer.media.heard(1000, last=1.0), timeout=5
                )
                await first.close()
                renewed = await client.request("offer", {"call_id": call_id, "sdp": await second.offer()})
                assert renewed.get("result", {}).get("call_id") == call_id, renewed
                assert len(peer.reinvites) == 2 and peer.renewals == 1  # the new connection's offer
                await second.accept(renewed["result"]["answer"]["sdp"])
                await wait_until(lambda: second.heard(440, last=1.0), timeout=15)
                await wait_until(lambda: peer.media.heard(1300, last=1.0), timeout=15)
                await client.request("disconnect", {"call_id": call_id})
                await asyncio.wait_for(peer.ended.wait(), 10)  # gw2's BYE
        finally:
            await asyncio.gather(first.close(), second.close())


async def test_an_http_api_sessions_pass_through_call_goes_on_at_the_survivor(tmp_path: Path) -> None:
    """An HTTP API session's pass-through call: its media flows end to end and outlives gw1, so the
    survivor takes the signaling over and makes the session again under its id, and the call goes on as
    it was: no grace runs (3 s here, waited past), the client does nothing, and its `POST /webrtc/close`
    to the survivor ends the call with the survivor's BYE. Before, the call was recorded as lost and
    nobody could end it."""
    web = WebPeer(freq=1000)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        two_instances(tmp_path, RTP_BASE + 100, 3) as (peer, redis_url, gw1, gw2),
        aiohttp.ClientSession(headers=headers) as http,
    ):
        try:
            body: dict[str, Any] = {
                "sdp": {"type": "offer", "sdp": await web.offer()},
                "session_id": "pt-take",
            }
            posting = asyncio.ensure_future(http.post(f"{gw1.http_url}/webrtc/offer", json=body))
            await peer.wait_for_call()
            await peer.answer()
            async with await posting as response:
                assert response.status == 200, await response.text()
                answered = await response.json()
            await web.accept(answered["sdp"]["sdp"])
            await wait_until(
                lambda: web.heard(440, last=1.0) and peer.media.heard(1000, last=1.0), timeout=10
            )
            await handed_over_then_killed(redis_url, gw1, answered["call_id"])
            await wait_until(lambda: "taken over here" in gw2.log(), timeout=LEASE + 8)
            assert len(peer.reinvites) == 1 and peer.renewals == 0, "the survivor's target refresh"
            await asyncio.sleep(4.0)  # past the 3 s grace: none runs, the media goes on
            assert not peer.ended.is_set(), "the far end heard a BYE"
            web.clear()
            peer.media.clear()
            await wait_until(lambda: web.heard(440, last=1.0) and peer.media.heard(1000, last=1.0), timeout=5)
            async with http.post(f"{gw2.http_url}/webrtc/close", json={"session_id": "pt-take"}) as response:
                assert response.status == 200, await response.text()
            await asyncio.wait_for(peer.ended.wait(), 10)  # gw2's BYE
        finally:
            await web.close()


async def test_a_sip_librarys_pass_through_call_goes_on_at_the_survivor(tmp_path: Path) -> None:
    """JsSIP in Chromium (through a TCP front, HAProxy's part) calls 7001 through gw1; gw1 is killed. The
    survivor takes the signaling over both ways: its re-INVITE to the far end (a target refresh that
    changes nothing) and the library's dialog, made again under its session's id. The library reconnects
    through the front to gw2 and registers again; the call goes on as it was: its media never stopped, so
    the survivor asks the library for no offer, and no grace ends the call (3 s, waited past). The far
    end's BYE reaches the library through the survivor. Before, a SIP library's pass-through call was
    recorded as lost with its instance and nobody could end it."""
    require_softphones()
    async with (
        two_instances(tmp_path, RTP_BASE + 200, 3, sip_websocket=True) as (peer, _, gw1, gw2),
        Front().running() as front,
        chromium_page() as page,
        Softphone(page, "jssip", origin=front.url) as softphone,
    ):
        front.target = address(gw1.http_url)
        await softphone.start(
            front.url.replace("http", "ws", 1) + "/sip", "sip:alice@127.0.0.1", ALICE_SIP_PASSWORD
        )
        await softphone.wait_for("registered")
        await softphone.call("sip:7001@127.0.0.1")
        await peer.wait_for_call()
        await peer.answer()
        await softphone.wait_for("confirmed")
        await peer.media.connected(timeout=15)
        await softphone.hears(440)
        await asyncio.sleep(1.5)  # two heartbeats: the call's handover written
        front.target = address(gw2.http_url)  # HAProxy's choice once gw1 is gone
        gw1.kill()
        await softphone.wait_for("disconnected", timeout=10)
        await softphone.wait_for("registered", timeout=LEASE + 20)  # on the survivor
        await wait_until(lambda: "taken over here" in gw2.log(), timeout=LEASE + 8)
        assert len(peer.reinvites) == 1 and peer.renewals == 0 and peer.restarts == 0, "a target refresh only"
        await asyncio.sleep(4.0)  # past the 3 s grace: none runs, nothing asked of the library
        assert "asking the SIP library for an offer" not in gw2.log()
        assert not peer.ended.is_set(), "the far end heard a BYE"
        peer.media.clear()
        await softphone.hears(440)
        await expect_peer_hears_the_beep(peer, tmp_path)  # Chromium's fake microphone, end to end
        await peer.hangup()
        ended = await softphone.wait_for("ended", timeout=15)
        assert ended["originator"] == "remote", ended
