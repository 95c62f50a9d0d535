"""A call outlives its gateway instance (issue 34 item 3): three instances as real processes sharing a
real Redis, the pjsua2 desk phone as the PBX.

alice (peers.web_user over `/ws`, aiortc media, as the softphone page) calls the phone through instance
gw1, and they talk. gw1 gets SIGKILL. alice's page logs in again with its token at once, at gw3 (what
HAProxy does once gw1 is gone), before gw1's lease has lapsed: gw3 finds her call carried by gw1,
cannot reach it, and waits for the survivor that takes gw1's calls over (gw2 or gw3 itself). Within a
lease and a heartbeat that survivor takes the call over from the handover gw1 kept in Redis: it adopts
the SIP dialog and re-INVITEs the phone to its own media address (the phone's media moves; it never sees
a BYE) and the phone hears the reconnecting fill. alice's login is served there (relayed from gw3 when
gw2 took it), she is told the call, reattaches with a new RTCPeerConnection and both hear each other
again. When the phone hangs up, its BYE reaches the survivor (the re-INVITE's Contact), alice is told
`ended`, and the survivor writes the call's one record."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import handovers_written, instance_mapping, process_cluster
from tests.e2e.dialects.test_http_offer import API_KEY, KEY, _post
from tests.e2e.harness import ALICE_SECRET, wait_until
from tests.e2e.softphone.test_reconnect import call_the_phone, tail_has_tone

RTP_BASE = 49000  # this file's RTP ports: 49000-49199, 49600-49799, 50200-50399 (above test_media_ports' 40000-48000)
LEASE = 2.0


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_survivor_carries_on_the_call_of_a_killed_instance(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        with running_redis(tmp_path) as server:
            mappings = []
            for index in range(3):
                extra = {
                    "cdr": {"file": str(tmp_path / f"calls-gw{index + 1}.jsonl")},
                    "web_auth": {"reconnect_grace": 20},
                }
                mappings.append(
                    instance_mapping(
                        index, server.url, rtp_base=RTP_BASE, pbx=phone.address, lease=LEASE, extra=extra
                    )
                )
            async with process_cluster(tmp_path, mappings) as (gw1, gw2, gw3):
                first = WebPeer(freq=1000)
                alice = WebUser(gw1.http_url, "alice", ALICE_SECRET)
                await alice.__aenter__()
                try:
                    call_id, number = await call_the_phone(alice, first, phone)
                    await wait_until(lambda: first.heard(440, last=1.0), timeout=10)
                    client = redis.Redis.from_url(server.url)
                    try:
                        # its handover, and where its login's calls are (a reconnect elsewhere looks there)
                        await wait_until(lambda: client.hexists("gw:handover:gw1", call_id), timeout=5)
                        await wait_until(lambda: client.keys("gw:carried:*"), timeout=5)
                        # a steady call's handover is the same from beat to beat (rewritten only on change)
                        written = client.hget("gw:handover:gw1", call_id)
                        await asyncio.sleep(1.2)  # two heartbeats
                        assert client.hget("gw:handover:gw1", call_id) == written
                    finally:
                        client.close()
                    media_changes = len(phone.seen("media", call=number))
                    gw1.kill()
                    killed = time.monotonic()
                finally:
                    await asyncio.gather(alice.close(), first.close())  # its socket died with gw1
                token = alice.token

                second = WebPeer(freq=1300)
                try:
                    # the page's reconnect, at once, to another instance: served where the call goes
                    async with WebUser(gw3.http_url, "alice", "", token=token) as again:
                        calls = await again.wait_for("calls", timeout=LEASE + 8)
                        listed = time.monotonic() - killed
                        [summary] = calls["calls"]
                        assert summary["call_id"] == call_id and summary["state"] == "connected", calls
                        assert len(phone.seen("media", call=number)) > media_changes  # the re-INVITE
                        assert not phone.seen("state", call=number, state="DISCONNECTED"), (
                            "the phone heard a BYE"
                        )
                        survivor = gw2 if "taken over here" in gw2.log() else gw3
                        assert "taken over here" in survivor.log(), (gw2.log()[-2000:], gw3.log()[-2000:])
                        await again.request(
                            {"type": "reattach", "call_id": call_id, "sdp": await second.offer()}
                        )
                        reattached = await again.wait_for("reattached", call_id=call_id)
                        await second.accept(reattached["sdp"])
                        try:  # ICE and DTLS anew: at the suite's load of 12, slow
                            await wait_until(lambda: second.heard(440, last=1.0), timeout=20)
                        except AssertionError:  # once in a series (2026-11-26), not reproduced since
                            raise AssertionError(
                                f"the phone unheard: {second.received} packets received, web leg "
                                f"{second.pc.connectionState}; survivor's log:\n{survivor.log()[-4000:]}"
                            ) from None
                        back = time.monotonic() - killed
                        await asyncio.sleep(1.5)  # alice's new tone in the phone's recording
                        await phone.hangup(number)  # its BYE goes to the survivor, the re-INVITE's Contact
                        ended = await again.wait_for("ended", call_id=call_id, timeout=10)
                        assert ended["reason"] in ("remote_hangup", "hangup", "bye"), ended
                finally:
                    await second.close()
                wav = await phone.wait_for_recording(number)
                assert tail_has_tone(wav, 1300), "the phone did not hear alice after the takeover"
                survivor_file = tmp_path / f"calls-{survivor.id}.jsonl"
                await wait_until(lambda: records(survivor_file), timeout=5)
                (record,) = records(survivor_file)
                assert record["call_id"] == call_id and record["end_reason"] != "instance_lost", record
                assert not records(tmp_path / "calls-gw1.jsonl")
                other = gw3 if survivor is gw2 else gw2
                assert not records(tmp_path / f"calls-{other.id}.jsonl"), "two records of one call"
    print(
        f"{survivor.id} took over; alice told the call {listed:.2f} s after the kill, heard it after {back:.2f} s"
    )


async def test_a_survivor_carries_on_an_http_api_call(tmp_path: Path) -> None:
    """An HTTP API client (aiortc, an API key) calls the phone through gw1, which gets SIGKILL. Its next
    offer with its `session_id` goes to gw2 at once: 503 with Retry-After while gw1's call is being taken
    over (its owner is dead), then, once gw2 holds the session again under its ids, forwarded there and
    answered as new media for the same call; the phone saw a re-INVITE and no BYE, and hears the new tone."""
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        with running_redis(tmp_path) as server:
            keys = {"api_keys": [{"key": API_KEY, "name": "e2e"}]}
            mappings = [
                instance_mapping(
                    i, server.url, rtp_base=RTP_BASE, pbx=phone.address, lease=LEASE,
                    extra={"web_auth": {"reconnect_grace": 20}}, alice=keys,
                )
                for i in range(2)
            ]  # fmt: skip
            async with process_cluster(tmp_path, mappings) as (gw1, gw2), aiohttp.ClientSession() as http:
                first = WebPeer(freq=1000)
                try:
                    offer = {
                        "sdp": {"type": "offer", "sdp": await first.offer()},
                        "metadata": {"dial": "2000"},
                    }
                    status, body = await _post(http, f"{gw1.http_url}/webrtc/offer", offer, KEY)
                    assert status == 200, body
                    session_id = body["session_id"]
                    await first.accept(body["sdp"]["sdp"])
                    number = int((await phone.wait_for("incoming"))["call"])
                    await phone.wait_for("state", call=number, state="CONFIRMED")
                    await wait_until(lambda: first.heard(440, last=1.0), timeout=10)
                    await handovers_written(server.url, "gw1", 1)
                    media_changes = len(phone.seen("media", call=number))
                    gw1.kill()
                    killed = time.monotonic()
                finally:
                    await first.close()

                second = WebPeer(freq=1300)
                try:
                    retried = 0
                    renewal = {
                        "sdp": {"type": "offer", "sdp": await second.offer()},
                        "session_id": session_id,
                    }
                    while True:  # as a client does on 503 with Retry-After
                        status, body = await _post(http, f"{gw2.http_url}/webrtc/offer", renewal, KEY)
                        if status != 503:
                            break
                        retried += 1
                        assert time.monotonic() - killed < LEASE + 8, body
                        await asyncio.sleep(0.3)
                    assert status == 200 and body["session_id"] == session_id, body
                    await second.accept(body["sdp"]["sdp"])
                    await wait_until(
                        lambda: second.heard(440, last=1.0), timeout=20
                    )  # ICE and DTLS anew: at the suite's load of 12, slow
                    back = time.monotonic() - killed
                    assert len(phone.seen("media", call=number)) > media_changes  # the survivor's re-INVITE
                    assert not phone.seen("state", call=number, state="DISCONNECTED"), "the phone heard a BYE"
                    await asyncio.sleep(1.5)  # the new tone in the phone's recording
                    status, body = await _post(
                        http, f"{gw2.http_url}/webrtc/close", {"session_id": session_id}, KEY
                    )
                    assert status == 200, body
                    await phone.wait_for("state", call=number, state="DISCONNECTED")
                finally:
                    await second.close()
                wav = await phone.wait_for_recording(number)
                assert tail_has_tone(wav, 1300), "the phone did not hear the client after the takeover"
    print(f"HTTP API: heard again {back:.2f} s after the kill ({retried} offers answered 503 first)")
