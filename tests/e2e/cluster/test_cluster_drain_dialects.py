"""A drain hands a JSON-RPC peer's and an HTTP API session's call over without a gap (issue 65 item 4):
two instances as real processes sharing a real Redis, the pjsua2 desk phone (440 Hz) as the PBX, the
client aiortc with its own tone.

The client calls the phone through gw1, which is drained (SIGUSR1, as in a rolling upgrade). gw1 hands
the call to gw2 and keeps carrying its media; gw2 waits for the client's new connection before it
re-INVITEs the phone (make before break):

- JSON-RPC: gw1 closes the peer's socket, idle now, with 1012; the client's new socket on gw2 (a second
  later: its reconnect backoff) announces its `peer_id` (`resumed`, its call listed) and renews the
  media with `offer {call_id, sdp}` from a new RTCPeerConnection, playing the old one until the new one
  plays;
- HTTP API: the session's event stream on gw1 says `web_lost` with cause `moved`; the client posts a new
  offer with its `session_id` (to gw2, where HAProxy sends it once gw1's /readyz fails), the same way.

Neither the client nor the phone hears its tone gone for 0.5 s (the client's, sampled every 20 ms; the
phone's recording, in 0.1 s windows), the phone sees a re-INVITE and no BYE, and gw1 exits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from peers.audio import detect_tone, read_wav
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
from tests.e2e.cluster.test_cluster_drain_handover import Gaps
from tests.e2e.cluster.test_cluster_takeover_jsonrpc import PEER_ID, talk_to_the_phone
from tests.e2e.dialects.test_http_offer import API_KEY as HTTP_KEY
from tests.e2e.dialects.test_http_offer import KEY, _post
from tests.e2e.dialects.test_jsonrpc import API_KEY as RPC_KEY
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import wait_until
from tests.e2e.softphone.test_reconnect import tail_has_tone

RTP_BASE = 56000  # this file's RTP ports: 56000-56199, 56600-56799
GAP_MAX = 0.5  # s: the longest gap issue 65 allows at any party
BACKOFF = 1.0  # s a JSON-RPC client waits before it reconnects after 1012 (its own reconnect logic)
FRESH = 0.06  # s since a connection's last audio frame for its tone to count as heard now


def playing(freq: float, *peers: WebPeer) -> Callable[[], bool]:
    """Whether any of `peers` plays `freq` now (a connection whose audio stopped still holds its last
    tone: it must have played a frame within FRESH s)."""

    def now() -> bool:
        at = time.monotonic()
        return any(at - p.heard_at < FRESH and p.heard(freq, last=0.1) for p in peers)

    return now


def phone_gap(wav: Path, freqs: tuple[float, ...], window: float = 0.1) -> float:
    """The longest run of `window`s of the phone's recording without any of `freqs`, between the first and
    the last window that has one (the client's tones before and after the hand-off)."""
    rate, samples = read_wav(wav)
    size = int(rate * window)
    toned = [
        any(detect_tone(samples[i : i + size], rate, f, threshold=0.3) for f in freqs)
        for i in range(0, len(samples) - size + 1, size)
    ]
    heard = [i for i, yes in enumerate(toned) if yes]
    longest = run = 0
    for yes in toned[heard[0] : heard[-1] + 1] if heard else []:
        run = 0 if yes else run + 1
        longest = max(longest, run)
    return longest * window


@asynccontextmanager
async def phone_and_two(
    tmp_path: Path,
) -> AsyncIterator[tuple[DeskPhone, str, GatewayProcess, GatewayProcess, aiohttp.ClientSession]]:
    require_desk_phone()
    keys = {"api_keys": [{"key": RPC_KEY, "default_dial": "2000"}, {"key": HTTP_KEY, "name": "e2e"}]}
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        with running_redis(tmp_path) as server:
            mappings = [
                instance_mapping(
                    i, server.url, rtp_base=RTP_BASE, pbx=phone.address,
                    extra={"web_auth": {"reconnect_grace": 20}}, alice=keys,
                )
                for i in range(2)
            ]  # fmt: skip
            async with process_cluster(tmp_path, mappings) as (gw1, gw2), aiohttp.ClientSession() as http:
                yield phone, server.url, gw1, gw2, http


async def carried(
    phone: DeskPhone,
    number: int,
    changes: int,
    peers: tuple[WebPeer, WebPeer],
    gw1: GatewayProcess,
    gaps: Gaps,
) -> float:
    """The client's new connection hears the phone, the phone was re-INVITEd (no BYE), gw1 exits; the old
    connection closed (as a client does once the new one plays): the longest gap the client heard."""
    first, second = peers
    await wait_until(lambda: second.heard(440, last=0.5), timeout=15)
    await wait_until(lambda: len(phone.seen("media", call=number)) > changes, timeout=10)
    assert not phone.seen("state", call=number, state="DISCONNECTED"), "the phone got a BYE"
    assert await gw1.wait(20) == 0, gw1.log()[-3000:]
    await first.close()
    await asyncio.sleep(1.5)  # the new tone in the phone's recording
    return gaps.stop()


async def no_gap_anywhere(gap: float, phone: DeskPhone, number: int) -> float:
    """The client's longest gap and the phone's (its recording) under GAP_MAX; the phone's."""
    assert gap < GAP_MAX, f"the client heard nothing for {gap:.2f} s during the hand-off"
    wav = await phone.wait_for_recording(number)
    heard = phone_gap(wav, (1000, 1300))
    assert tail_has_tone(wav, 1300), "the phone did not hear the client's new connection"
    assert heard < GAP_MAX, f"the phone heard nothing for {heard:.2f} s during the hand-off"
    return heard


async def test_a_json_rpc_peers_call_makes_before_it_breaks_when_its_instance_drains(tmp_path: Path) -> None:
    async with phone_and_two(tmp_path) as (phone, redis_url, gw1, gw2, http):
        first, second = WebPeer(freq=1000), WebPeer(freq=1300)
        try:
            old = await http.ws_connect(f"{gw1.http_url.replace('http', 'ws', 1)}/jsonrpc?api_key={RPC_KEY}")
            call_id, number = await talk_to_the_phone(RpcClient(old), first, phone)
            await handovers_written(redis_url, "gw1", 1)
            changes = len(phone.seen("media", call=number))
            gaps = Gaps(playing(440, first, second))
            gw1.drain()
            async with asyncio.timeout(10):
                while (await old.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    pass
            assert old.close_code == 1012, old.close_code
            await asyncio.sleep(BACKOFF)  # a client's reconnect backoff: the old connection plays meanwhile
            url = f"{gw2.http_url.replace('http', 'ws', 1)}/jsonrpc?api_key={RPC_KEY}"
            async with http.ws_connect(url) as ws:
                client = RpcClient(ws)
                resumed = (await client.request("announce", {"peer_id": PEER_ID})).get("result", {})
                assert resumed.get("resumed") is True and resumed.get("call_ids") == [call_id], resumed
                offer = {"call_id": call_id, "sdp": await second.offer(), "type": "offer"}
                reply = await client.request("offer", offer)
                assert reply.get("result", {}).get("call_id") == call_id, reply
                await second.accept(reply["result"]["answer"]["sdp"])
                gap = await carried(phone, number, changes, (first, second), gw1, gaps)
                reply = await client.request("disconnect", {"call_id": call_id})
                assert reply["result"]["status"] == "disconnected", reply
                await phone.wait_for("state", call=number, state="DISCONNECTED")
        finally:
            await asyncio.gather(first.close(), second.close())
        heard = await no_gap_anywhere(gap, phone, number)
    print(f"JSON-RPC drained: longest gap {gap:.2f} s at the client, {heard:.1f} s at the phone")


async def moved_event(stream: aiohttp.ClientResponse, timeout: float = 10) -> dict[str, Any]:
    """The session's `web_lost` with cause `moved` on its event stream."""
    event: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line:
                key, _, value = line.partition(": ")
                event[key] = value
                continue
            if event.get("event") == "web_lost" and '"moved"' in event.get("data", ""):
                return event
            event = {}


async def test_an_http_api_sessions_call_makes_before_it_breaks_when_its_instance_drains(
    tmp_path: Path,
) -> None:
    async with phone_and_two(tmp_path) as (phone, redis_url, gw1, gw2, http):
        first, second = WebPeer(freq=1000), WebPeer(freq=1300)
        try:
            offer = {"sdp": {"type": "offer", "sdp": await first.offer()}, "metadata": {"dial": "2000"}}
            answered = await _post(http, f"{gw1.http_url}/webrtc/offer", offer, KEY)
            assert answered[0] == 200, answered
            session_id, answer = answered[1]["session_id"], answered[1]["sdp"]["sdp"]
            await first.accept(answer)
            number = int((await phone.wait_for("incoming"))["call"])
            await wait_until(lambda: first.heard(440, last=1.0), timeout=10)  # (the phone answered)
            await handovers_written(redis_url, "gw1", 1)
            changes = len(phone.seen("media", call=number))
            async with http.get(f"{gw1.http_url}/webrtc/sessions/{session_id}/events", headers=KEY) as stream:
                assert stream.status == 200
                gaps = Gaps(playing(440, first, second))
                gw1.drain()
                await moved_event(stream)
                renewal = {"sdp": {"type": "offer", "sdp": await second.offer()}, "session_id": session_id}
                status, body = await _post(http, f"{gw2.http_url}/webrtc/offer", renewal, KEY)
            assert status == 200 and body["session_id"] == session_id, body
            await second.accept(body["sdp"]["sdp"])
            gap = await carried(phone, number, changes, (first, second), gw1, gaps)
            status, body = await _post(http, f"{gw2.http_url}/webrtc/close", {"session_id": session_id}, KEY)
            assert status == 200, body
            await phone.wait_for("state", call=number, state="DISCONNECTED")
        finally:
            await asyncio.gather(first.close(), second.close())
        heard = await no_gap_anywhere(gap, phone, number)
    print(f"HTTP API drained: longest gap {gap:.2f} s at the client, {heard:.1f} s at the phone")
