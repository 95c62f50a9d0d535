"""Busy lamps and the voicemail light (issue 37 item 1) against a PBX's notifier played by sipp
(peers/scenarios/uas_blf_mwi.xml), through a whole gateway:

- alice (pbx_auth, `watch: [1002, 1003]`) gets her subscriptions at the PBX: a SUBSCRIBE per watched
  extension (Event: dialog, RFC 4235) and one to her mailbox (Event: message-summary, RFC 3842), on by
  default; her `/ws` session and her JSON-RPC peer hear `voicemail` (2 new, 8 old, then 3 and 8) and
  1002's lamp go ringing (with the pickup number), busy and idle again, in that order;
- the PBX's NOTIFY with malformed XML gets 400 (sipp checks it) and the gateway goes on;
- bob, who watches nobody and has no pbx_auth, hears none of it; with `voicemail: false` alice's
  mailbox is not subscribed to;
- when the gateway stops it unsubscribes (Expires: 0), which every sipp call waits for (sipp exits 0).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config import Config
from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.web_user import WebUser
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway, wait_until

API_KEY = "e2e-lamps-key-0123456789abc"


def lamps_config(pbx: str, **alice: Any) -> Config:
    """alice (1001, pbx_auth) watches 1002 and 1003; `pbx.pickup_prefix` *8; no OPTIONS keep-alive."""
    base = gateway_config(
        pbx,
        alice_auth=("1001", "secret"),
        alice_extra={"watch": ["1002", "sip:1003@127.0.0.1"], "api_keys": [{"key": API_KEY}], **alice},
    )
    return dataclasses.replace(
        base, pbx=dataclasses.replace(base.pbx, keepalive_interval=0.0, pickup_prefix="*8")
    )


def lamps_of(user: WebUser, number: str) -> list[str]:
    return [e["state"] for e in user.events if e.get("type") == "contact_state" and e["number"] == number]


async def test_the_pbx_notifies_reach_the_web_users_pages_and_json_rpc(tmp_path: Path) -> None:
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_blf_mwi", calls=3, duration_ms=4000, timeout=60)
    await pbx.start()
    try:
        async with (
            running_gateway(lamps_config(pbx.address)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}") as ws,
        ):
            rpc = RpcClient(ws)
            reply = await rpc.request("announce", {"peer_id": "alice-desk", "capabilities": {"audio": True}})
            assert reply["result"]["user"] == "alice", reply
            reader = asyncio.create_task(read_all(ws, rpc.notes))  # (and answer the gateway's pings)

            voicemail = await alice.wait_for("voicemail", new=2)
            assert voicemail == {"type": "voicemail", "mailbox": "1001", "waiting": True, "new": 2, "old": 8,
                                 "urgent_new": 0, "urgent_old": 0}, voicemail  # fmt: skip
            ringing = await alice.wait_for("contact_state", number="1002", state="ringing", timeout=20)
            assert ringing["pickup"] == "*81002", ringing  # pbx.pickup_prefix + the extension
            await alice.wait_for("contact_state", number="1003", state="ringing")
            busy = await alice.wait_for("contact_state", number="1002", state="busy")
            assert busy["pickup"] is None, busy
            await alice.wait_for("contact_state", number="1002", state="idle", timeout=10)
            # in order, each once: a change is told, the same state again is not
            await wait_until(lambda: lamps_of(alice, "1002")[-3:] == ["ringing", "busy", "idle"])
            assert (await alice.wait_for("voicemail", new=3))["urgent_new"] == 1

            # the same events on JSON-RPC, as notifications named after the event types
            await wait_until(lambda: noted(rpc, "voicemail", new=3), timeout=10)
            assert noted(rpc, "voicemail", new=3, old=8, waiting=True)
            assert noted(rpc, "contact_state", number="1002", state="ringing", pickup="*81002")
            assert noted(rpc, "contact_state", number="1002", state="busy", pickup=None)
            assert noted(rpc, "contact_state", number="1003", state="idle")
            reader.cancel()

            # the malformed NOTIFY got 400 (sipp waited for it) and changed nothing
            await wait_until(lambda: pbx_count(pbx, "SIP/2.0 400") == 2, timeout=10)
            await asyncio.sleep(0.3)
            assert lamps_of(alice, "1002")[-1] == "idle"
            assert not [e for e in bob.events if e.get("type") in ("contact_state", "voicemail")], bob.events
            # a later login gets what is known at once
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as again:
                assert (await again.wait_for("voicemail", timeout=5))["new"] == 3
                assert (await again.wait_for("contact_state", number="1003", timeout=5))["state"] == "idle"
    finally:
        result = await pbx.wait(timeout=20)  # the gateway's unsubscribes end each sipp call
    assert result.ok, result
    assert result.count("SUBSCRIBE") == 6 and result.count("SIP/2.0 400") == 2, result
    assert "unsubscribed: Expires 0" in result.logs, result.logs[-500:]


async def read_all(ws: aiohttp.ClientWebSocketResponse, notes: list[dict[str, Any]]) -> None:
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            notes.append(json.loads(message.data))


def noted(rpc: RpcClient, method: str, **match: Any) -> bool:
    return any(
        n.get("method") == method and all(n["params"].get(k) == v for k, v in match.items())
        for n in rpc.notes
    )


def pbx_count(pbx: Sipp, start_line: str) -> int:
    """Messages traced so far by the running sipp that begin with `start_line`."""
    path = pbx.workdir / "messages.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return sum(1 for line in text.splitlines() if line.strip().startswith(start_line))


async def test_voicemail_false_subscribes_only_to_the_lamps(tmp_path: Path) -> None:
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_blf_mwi", calls=2, duration_ms=500, timeout=60)
    await pbx.start()
    try:
        config = lamps_config(pbx.address, voicemail=False)
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            await alice.wait_for("contact_state", number="1002", state="idle", timeout=15)
            await alice.wait_for("contact_state", number="1003", state="busy", timeout=15)
            await wait_until(lambda: pbx_count(pbx, "SIP/2.0 400") == 2, timeout=15)
            assert not [e for e in alice.events if e.get("type") == "voicemail"], alice.events
    finally:
        result = await pbx.wait(timeout=20)
    assert result.ok, result
    assert "message-summary" not in result.messages, json.dumps(result.messages[-800:])
