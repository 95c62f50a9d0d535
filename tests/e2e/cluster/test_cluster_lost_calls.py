"""The calls of a killed instance get records (issue 36 item 3): two instances as real processes sharing a
real Redis, each writing its call records to a JSON lines file.

A pjsua2 desk phone calls alice at instance gw1, where she is logged in with an aiortc peer; she answers
and the tones flow. gw1 gets SIGKILL: it writes nothing more. Within a lease and a heartbeat the
survivor gw2 writes the call's record, to its own file and to the cluster's Redis stream: the same call
id, both parties, the answer time, ended `instance_lost` by the gateway at gw1's last heartbeat,
`recorded_by: gw2`. Exactly one record, however many heartbeats pass.

Then with no survivor (gw2 killed too), gw1 comes back under its id, takes a call, is killed and comes back
again: the restarted gw1 finds its own calls of the previous life in Redis and records them itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import redis

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster
from tests.e2e.harness import ALICE_SECRET, wait_until

RTP_BASE = 42600  # this file's RTP ports: 42600-42799, 43200-43399
LEASE = 2.0


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def call_alice(instance: GatewayProcess, phone: DeskPhone, peer: WebPeer) -> tuple[WebUser, str]:
    """The phone calls alice at `instance`; she answers there. Her session (to close) and the call id."""
    alice = WebUser(instance.http_url, "alice", ALICE_SECRET)
    await alice.__aenter__()
    host, port = instance.sip
    number = await phone.call(f"sip:1001@{host}:{port}")
    ringing = await alice.wait_for("incoming")
    await alice.answer(ringing["call_id"], peer.answer)
    await phone.wait_for("state", call=number, state="CONFIRMED")
    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
    return alice, str(ringing["call_id"])


async def test_a_survivor_records_the_calls_of_a_killed_instance(tmp_path: Path) -> None:
    require_desk_phone()
    with running_redis(tmp_path) as server:
        mappings = []
        for index in range(2):
            cdr = {"file": str(tmp_path / f"calls-gw{index + 1}.jsonl")}
            # no reconnect grace: no browser would come back for the call, so no survivor carries it
            # on (test_cluster_takeover.py has that): it is recorded as lost
            extra = {"cdr": cdr, "web_auth": {"reconnect_grace": 0}}
            mappings.append(instance_mapping(index, server.url, rtp_base=RTP_BASE, lease=LEASE, extra=extra))
        gw1_file, gw2_file = tmp_path / "calls-gw1.jsonl", tmp_path / "calls-gw2.jsonl"
        async with (
            process_cluster(tmp_path, mappings) as (gw1, gw2),
            DeskPhone(tmp_path, user="2000", tone=440) as phone,
        ):
            peer = WebPeer(freq=1000)
            try:
                alice, call_id = await call_alice(gw1, phone, peer)
                await asyncio.sleep(1.5)  # past two heartbeats: the call is in Redis
                client = redis.Redis.from_url(server.url)
                try:
                    live = client.hkeys("gw:live:gw1")
                finally:
                    client.close()
                assert call_id.encode() in live, live
                gw1.kill()
                killed = time.time()
                await alice.close()
            finally:
                await peer.close()
            await wait_until(lambda: records(gw2_file), timeout=LEASE + 5)
            recorded = time.time() - killed
            await asyncio.sleep(1.5)  # more heartbeats: still exactly one record
            (record,) = records(gw2_file)
            assert not records(gw1_file), "the killed instance wrote a record"
            assert record["call_id"] == call_id and record["direction"] == "inbound", record
            assert record["end_reason"] == "instance_lost" and record["hangup_by"] == "gateway", record
            assert record["recorded_by"] == "gw2" and record["user"] == "alice", record
            assert "2000" in (record["from"] or "") and "1001" in (record["to"] or ""), record
            assert record["answer_time"] is not None and record["start_time"] <= record["answer_time"]
            assert killed - 1.5 <= record["end_time"] <= killed + 0.5, (record["end_time"], killed)
            client = redis.Redis.from_url(server.url)
            try:
                stream: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange("gw:calls")  # type: ignore[assignment]
                lost = [fields for _, fields in stream if fields[b"call_id"] == call_id.encode()]
                assert len(lost) == 1 and lost[0][b"instance"] == b"gw2", stream
                assert not client.exists("gw:live:gw1"), "the lost instance's live calls stayed in Redis"
            finally:
                client.close()

            gw2.kill()  # no survivor now
            await gw1.wait(10)  # reaped: restart() refuses a process still there
            await gw1.restart()
            peer = WebPeer(freq=1000)
            try:
                alice, call_id = await call_alice(gw1, phone, peer)
                await asyncio.sleep(1.5)
                gw1.kill()
                await alice.close()
            finally:
                await peer.close()
            await gw1.wait(10)
            await gw1.restart()
            await wait_until(lambda: records(gw1_file), timeout=5)
            (record,) = records(gw1_file)
            assert record["call_id"] == call_id and record["end_reason"] == "instance_lost", record
            assert record["recorded_by"] == "gw1", record
    print(f"a killed instance's call recorded by the survivor {recorded:.2f} s after the kill")
