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
from pathlib import Path

import redis

from peers.redis import running_redis
from peers.sip_webrtc import SipWebRtcPeer
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import instance_mapping, process_cluster
from tests.e2e.harness import ALICE_SECRET, wait_until
from tests.e2e.media.test_webrtc_passthrough import aiortc_calls_7001

RTP_BASE = 52200  # this file's RTP ports: 52200-52399, 52800-52999 (none used: the media passes through)
LEASE = 2.0
ROUTES = [{"match": "7xxx", "media": "passthrough"}]


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
                        calls = await again.wait_for("calls", timeout=LEASE + 8)
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
