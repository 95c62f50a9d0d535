"""The JSON-RPC dialect's `offer` has the WebRTC answer in the loop iteration after it exists, and replies
before the gateway's INVITE leaves (issue 14 goal 3, call setup), as the HTTP offer API does
(tests/e2e/dialects/test_http_offer_order.py).

Awaited through `asyncio.shield`, the answer reached the `offer` request one loop iteration late: behind
the web leg's ICE start and every other call's work scheduled meanwhile. A callback scheduled right after
the answer is set marks that next iteration: the reply must be made before it.

Real peers: sipp's UAS (`uas_basic_call`, RTP echo) as the PBX, an aiortc web peer over the `/jsonrpc`
WebSocket; the spies only record the order of the gateway's own two writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.signaling.jsonrpc.peer import RpcPeer
from peers.binaries import require_binary
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_offer_order import answering_far_end, far_end_answered, record_order
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import running_gateway, wait_until

API_KEY = "order-rpc-key-0123456789"


async def test_the_answer_reaches_the_offer_request_at_once_and_before_the_invite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("sipp")
    order: list[str] = []
    offer = RpcPeer._offer

    async def recording_offer(self: RpcPeer, params: Any) -> Any:
        result = await offer(self, params)
        order.append("answer")  # the reply frame is written right after, in this step
        return result

    record_order(monkeypatch, order, RpcPeer)
    monkeypatch.setattr(RpcPeer, "_offer", recording_offer)
    far_end, config = answering_far_end(tmp_path, {"key": API_KEY, "default_dial": "2000"})
    async with far_end, running_gateway(config) as gateway, aiohttp.ClientSession() as http:
        url = f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}"
        async with http.ws_connect(url) as ws:
            client = RpcClient(ws)
            for number in range(3):  # not a lucky first call: each of several
                peer = WebPeer(1000)
                try:
                    order.clear()
                    reply = await client.request("offer", {"sdp": await peer.offer(), "type": "offer"})
                    assert reply["result"]["answer"]["type"] == "answer", reply
                    await wait_until(lambda: "INVITE" in order, timeout=5)
                    assert order == ["answer", "next iteration", "INVITE"], f"call {number}: {order}"
                    await far_end_answered(gateway)
                    call_id = reply["result"]["call_id"]
                    reply = await client.request("disconnect", {"call_id": call_id, "reason": "done"})
                    assert reply["result"]["status"] == "disconnected", reply
                finally:
                    await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
