"""kill -9 of a gateway instance (issue 18 behaviour 2): three instances as real processes
(tests/e2e/cluster/cluster_procs.py) on 127.0.0.2-4 sharing a real Redis, behind the shipped Kamailio edge
(deploy/kamailio-cluster.cfg) and HAProxy (deploy/haproxy.cfg); alice's SIP identity (1001, pbx_auth) is
registered at a second Kamailio acting as the PBX's registrar.

alice's softphone page (headless Chromium) logs in through HAProxy and answers a call from a pjsua2 desk
phone through the edge. Then the instance holding her sessions gets SIGKILL:

- her page reconnects through HAProxy to a live instance by itself, and a survivor carries her call on
  (issue 34 item 3, gateway/runtime/continuity/takeover.py): it re-INVITEs the phone through the edge to
  its own media, her page takes the call back ("Connected") and hears the phone again;
- the edge's dialog keepalive reaches the survivor (the re-INVITE refreshed the target): the phone gets
  no BYE past KA_INTERVAL + 12 s; it hangs up, and a new call rings her where she is now;
- alice's PBX registration (one lock in Redis) is held by a live instance within one lease and that
  instance REGISTERs at the registrar, well within one refresh interval (if the first kill did not hit
  the holder, the holder is killed next and the same is checked);
- sampled all along, no two live instances hold alice's registration, her presence or a call at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from peers.demo import require_desk_phone
from peers.haproxy import running_haproxy
from peers.kamailio import Kamailio, running_kamailio
from peers.kamailio_edge import running_edge
from peers.phone import DeskPhone
from peers.redis import running_redis
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster
from tests.e2e.harness import ALICE_SECRET, wait_until
from tests.e2e.softphone.test_browser_kamailio import expect_page_hears_the_phone
from tests.signaling.browser import Page, chromium_page, expect, log_in

RTP_BASE = 42200  # this file's RTP ports: 42200-42399, 42800-42999, 43400-43599
KA_INTERVAL = 30  # the edge's dialog keepalive (seconds; the dialog module's minimum)
LEASE = 2.0
ALICE_PBX = ("1001", "pw1001")


def mappings(redis_url: str, registrar: Kamailio) -> list[dict[str, Any]]:
    found = []
    for index in range(3):
        mapping = instance_mapping(
            index, redis_url, rtp_base=RTP_BASE, pbx=registrar.address, heartbeat=0.5, lease=LEASE,
            extra={"pbx": {"register": True, "register_expiry": 60}},
        )  # fmt: skip
        mapping["users"][0]["pbx_auth"] = {"username": ALICE_PBX[0], "password": ALICE_PBX[1]}
        found.append(mapping)
    return found


async def statuses(instances: list[GatewayProcess]) -> dict[str, dict[str, Any]]:
    """/cluster/status of every live instance, by id."""
    found = {}
    for instance in instances:
        if instance.alive():
            with contextlib.suppress(OSError):
                found[instance.id] = await instance.status()
    return found


async def holder(instances: list[GatewayProcess], what: str, timeout: float = 10.0) -> GatewayProcess:
    """The one live instance whose status lists something under `what` (users, registrations)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [i for i in instances if (await statuses([i])).get(i.id, {}).get(what)]
        if len(found) == 1:
            return found[0]
        assert time.monotonic() < deadline, f"{what} held by {[i.id for i in found]}"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def watch_single_ownership(instances: list[GatewayProcess]) -> AsyncIterator[list[str]]:
    """Sample the live instances every 0.2 s; the list yielded collects every double ownership seen."""
    doubles: list[str] = []

    async def sample() -> None:
        while True:
            found = await statuses(instances)
            for what in ("registrations", "users"):
                holders = sorted(i for i, status in found.items() if status.get(what))
                if len(holders) > 1:
                    doubles.append(f"{what} on {holders}")
            calls = {i: status["calls"] for i, status in found.items() if status["calls"]}
            if sum(calls.values()) > 1:
                doubles.append(f"calls {calls}")
            await asyncio.sleep(0.2)

    task = asyncio.create_task(sample())
    try:
        yield doubles
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def answer_call_from(page: Page, phone: DeskPhone, aor: str) -> tuple[int, float]:
    """The phone calls `aor`; the page rings and answers. The phone's call number and when it rang
    (time.monotonic())."""
    number = await phone.call(aor)
    await expect(page.get_by_role("alertdialog")).to_contain_text("Incoming call from", timeout=15000)
    rang = time.monotonic()
    await page.get_by_role("button", name="Answer").click()
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    await phone.wait_for("state", call=number, state="CONFIRMED")
    await expect_page_hears_the_phone(page)
    return number, rang


async def registration_moved(
    registrar: Kamailio, instances: list[GatewayProcess], since: int, killed: float
) -> float:
    """Seconds from `killed` until a live instance holds alice's registration lock and the registrar
    logs its REGISTER (after byte `since` of its log)."""
    taker = await holder([i for i in instances if i.alive()], "registrations")
    while f"REGISTER sip:{registrar.address} from {taker.host}:" not in registrar.log()[since:]:
        assert time.monotonic() - killed < 30, registrar.log()[since:][-3000:]  # register_expiry 60 / 2
        await asyncio.sleep(0.1)
    return time.monotonic() - killed


async def test_kill_9_of_alices_instance(tmp_path: Path) -> None:
    require_desk_phone()
    with (
        running_redis(tmp_path) as redis,
        running_kamailio(tmp_path, users={ALICE_PBX[0]: ALICE_PBX[1]}) as registrar,
    ):
        async with process_cluster(tmp_path, mappings(redis.url, registrar)) as instances:
            sip = [i.sip for i in instances]
            http = [i.http_address for i in instances]
            with (
                running_edge(tmp_path, sip, ka_interval=KA_INTERVAL) as edge,
                running_haproxy(tmp_path / "haproxy", http) as front,
            ):
                async with (
                    DeskPhone(tmp_path, user="2000", tone=440) as phone,
                    chromium_page() as page,
                    watch_single_ownership(instances) as doubles,
                ):
                    registering = await holder(instances, "registrations")
                    await page.goto(front.url + "/")
                    await log_in(page, "alice", ALICE_SECRET)
                    await expect(page.locator("#status")).to_have_text("Registered as Alice")
                    owner = await holder(instances, "users")
                    first, _ = await answer_call_from(page, phone, edge.aor("1001"))
                    assert (await owner.status())["calls"] == 1

                    # kill -9 of the instance holding alice's sessions and her call
                    mark = len(registrar.log())
                    moves = len(phone.seen("media", call=first))
                    owner.kill()
                    killed = time.monotonic()
                    await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=10000)
                    # a survivor carries the call on (issue 34): it re-INVITEs the phone to its media, and
                    # the page takes the call back by itself and hears the phone again
                    await wait_until(lambda: len(phone.seen("media", call=first)) > moves, timeout=LEASE + 8)
                    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=10000)
                    await expect_page_hears_the_phone(page)
                    back_after = time.monotonic() - killed
                    new_owner = await holder(instances, "users")
                    assert new_owner is not owner
                    assert (await new_owner.status())["calls"] == 1
                    if registering is owner:
                        took = await registration_moved(registrar, instances, mark, killed)
                    # the edge's dialog keepalive reaches the survivor (the re-INVITE refreshed the
                    # target): no BYE to the phone, past a keepalive round and its 10 s timeout_bye
                    await asyncio.sleep(max(0.0, KA_INTERVAL + 12 - (time.monotonic() - killed)))
                    assert not phone.seen("state", call=first, state="DISCONNECTED"), "the phone got a BYE"
                    await expect_page_hears_the_phone(page)
                    await phone.hangup(first)
                    await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)

                    # a new call rings her where she is now
                    second, _ = await answer_call_from(page, phone, edge.aor("1001"))
                    await phone.hangup(second)
                    await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)

                    # the PBX registration, when its holder was not the instance killed: killed now
                    if registering is not owner:
                        mark = len(registrar.log())
                        registering.kill()
                        took = await registration_moved(registrar, instances, mark, time.monotonic())
                    await asyncio.sleep(1.0)
                assert doubles == [], doubles
                for instance in instances:
                    assert "Traceback" not in instance.log(), instance.log()[-3000:]
    print(f"kill -9: the call back on the page {back_after:.1f} s after, registration {took:.1f} s")
