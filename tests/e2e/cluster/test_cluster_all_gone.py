"""Every instance that could carry a call on is gone (issue 65 item 5): each party gets an honest end, never
dead air. Two gateway instances as real processes sharing a real Redis, behind the shipped Kamailio edge
(deploy/kamailio-cluster.cfg, its dialog keepalive at KA_INTERVAL: the module's minimum) and HAProxy; each
instance writes its call records to a JSON lines file.

alice's softphone page (headless Chromium, through HAProxy) answers a call from a pjsua2 desk phone
through the edge. Both instances get SIGKILL at once. Then, with nobody touching anything:

- the page: its call says "Reconnecting the call…" while the page tries to get back; once the gateway's
  reconnect grace is over (web_auth.reconnect_grace, GRACE s here, told in `registered`) the call ends
  and the page says so in words ("could not be restored: call ended", with what to do), and has no call
  any more; only its login goes on reconnecting;
- the phone: the edge's keepalive finds the gateway side gone and the edge sends it a BYE giving the
  reason (RFC 3326: `Reason: SIP;cause=408;text="Gateway unreachable"`) within KA_INTERVAL + 12 s;
- once the instance that held the call is started again (same id), it finds the call in Redis and writes
  its record: ended `instance_lost` by the gateway, with both parties.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from peers.demo import require_desk_phone
from peers.haproxy import running_haproxy
from peers.kamailio_edge import running_edge
from peers.phone import DeskPhone
from peers.redis import running_redis
from tests.e2e.cluster.cluster_procs import instance_mapping, process_cluster
from tests.e2e.cluster.test_cluster_failover import answer_call_from, holder
from tests.e2e.cluster.test_cluster_lost_calls import records
from tests.e2e.harness import ALICE_SECRET, wait_until
from tests.signaling.browser import chromium_page, expect, log_in

RTP_BASE = 58200  # this file's RTP ports: 58200-58399, 58800-58999
KA_INTERVAL = 30  # the edge's dialog keepalive (seconds; the dialog module's minimum)
LEASE = 2.0
GRACE = 6  # web_auth.reconnect_grace: how long a call waits for its page


async def test_every_instance_gone_ends_the_call_with_a_reason_at_each_party(tmp_path: Path) -> None:
    require_desk_phone()
    async with asyncio.timeout(240):  # a hang fails with the await it hung at
        await _all_gone(tmp_path)


async def _all_gone(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        mappings = []
        for index in range(2):
            extra = {
                "cdr": {"file": str(tmp_path / f"calls-gw{index + 1}.jsonl")},
                "web_auth": {"reconnect_grace": GRACE},
            }
            mappings.append(instance_mapping(index, redis.url, rtp_base=RTP_BASE, lease=LEASE, extra=extra))
        async with process_cluster(tmp_path, mappings) as instances:
            sip = [i.sip for i in instances]
            http = [i.http_address for i in instances]
            with (
                running_edge(tmp_path, sip, ka_interval=KA_INTERVAL) as edge,
                running_haproxy(tmp_path / "haproxy", [*http, http[1]]) as front,
            ):
                async with DeskPhone(tmp_path, user="2000", tone=440) as phone, chromium_page() as page:
                    await page.goto(front.url + "/")
                    await log_in(page, "alice", ALICE_SECRET)
                    await expect(page.locator("#status")).to_have_text("Registered as Alice")
                    owner = await holder(instances, "users")
                    number, _ = await answer_call_from(page, phone, edge.aor("1001"))
                    call_id = await page.evaluate("window.softphone.call.id")
                    await asyncio.sleep(1.5)  # past two heartbeats: the call is in Redis
                    for instance in instances:
                        instance.kill()
                    killed = time.monotonic()

                    # the page: reconnecting for the grace, then the call ends, said in words
                    await expect(page.locator("#call-state")).to_have_text("Reconnecting the call…")
                    error = page.locator("#error")
                    await expect(error).to_have_text(
                        "The connection to the gateway could not be restored: call ended.",
                        timeout=(GRACE + 10) * 1000,
                    )
                    page_ended = time.monotonic() - killed
                    await expect(page.locator("#error-hint")).to_contain_text(
                        "call again once it says Registered"
                    )
                    await expect(page.locator("#call-state")).to_have_text("No call")
                    await expect(page.locator("#status")).to_have_text("Reconnecting…")

                    # the phone: the edge's BYE, with its reason
                    bye = await phone.wait_for("bye", call=number, timeout=KA_INTERVAL + 15)
                    phone_ended = time.monotonic() - killed
                    assert "cause=408" in bye["reason"] and "Gateway unreachable" in bye["reason"], bye
                    await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=5)

                    # the instance that held the call back: its record
                    await owner.wait(10)  # reaped: restart() refuses a process still there
                    await owner.restart()
                    restarted = time.monotonic()
                    path = tmp_path / f"calls-{owner.id}.jsonl"
                    await wait_until(lambda: records(path), timeout=5)
                    recorded = time.monotonic() - restarted
                    (record,) = records(path)
                    assert record["call_id"] == call_id and record["end_reason"] == "instance_lost", record
                    assert record["hangup_by"] == "gateway" and record["user"] == "alice", record
                    assert "2000" in (record["from"] or "") and "1001" in (record["to"] or ""), record
                    assert (await owner.status())["calls"] == 0
    assert GRACE - 0.5 <= page_ended <= GRACE + 8, page_ended
    assert phone_ended <= KA_INTERVAL + 14, phone_ended
    print(
        f"all instances gone: the page ended the call after {page_ended:.1f} s, the phone got BYE after "
        f"{phone_ended:.1f} s, the record {recorded:.1f} s after a restart"
    )
