"""Redis behind Sentinel loses its primary (issue 65 item 3): two instances as real processes configured
through `cluster.sentinel` (a primary, a replica and three sentinels, quorum 2: peers/redis.py
`running_sentinel`), the pjsua2 desk phone as the PBX.

alice and bob talk web to web through gw1; carol (on gw2) talks to the phone. The primary gets kill -9
and the sentinels promote the replica within a few seconds. Meanwhile and afterwards:
- every call goes on: each party hears the other in every quarter second, through the failover;
- both instances' /readyz `cluster` check comes back to ok (their client finds the new primary by
  itself), and a new login and a new call to the phone work on each instance;
- nothing the cluster holds was lost: gw1 then gets kill -9 too, and gw2 carries alice's and bob's calls
  on from what the new primary holds (their handovers, gw1's lease and live calls).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from peers.audio import detect_tone, read_wav
from peers.demo import ALICE_HASH, require_desk_phone
from peers.phone import DeskPhone
from peers.redis import SentinelGroup, running_sentinel
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster
from tests.e2e.cluster.test_cluster_takeover_web_to_web import back_at, in_a_call
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, wait_until
from tests.e2e.softphone.test_reconnect import call_the_phone

BACK_WITHIN = 20.0  # s from the primary's kill to every instance's `cluster` check ok (a loaded machine)
GAP_AT_MOST = 1.0  # s without its tone at any party (the event loop the pages share stalls now and then)


class AudioGaps:
    """The longest time each page went without its tone, sampled every 0.1 s while `async with` lasts:
    a sample is good when audio arrived since the last one and its last 0.2 s hold the tone (a page's
    `heard` alone would still find the tone in old audio when nothing arrives any more)."""

    def __init__(self, pages: Mapping[str, tuple[WebPeer, float]]) -> None:
        self.pages = pages
        self.longest = dict.fromkeys(pages, 0.0)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AudioGaps:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        now = time.monotonic()
        good = dict.fromkeys(self.pages, now)
        sizes = {name: len(peer.pcm) for name, (peer, _) in self.pages.items()}
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for name, (peer, freq) in self.pages.items():
                if len(peer.pcm) > sizes[name] and peer.heard(freq, last=0.2):
                    good[name] = now
                sizes[name] = len(peer.pcm)
                self.longest[name] = max(self.longest[name], now - good[name])

    def worst(self) -> tuple[str, float]:
        name = max(self.longest, key=lambda n: self.longest[n])
        return name, self.longest[name]


def with_more_users(mapping: dict[str, Any]) -> dict[str, Any]:
    """`mapping` with two more users, carol (1003) and dave (1004), who log in with alice's secret."""
    for name, number in (("carol", "1003"), ("dave", "1004")):
        mapping["users"].append(
            {"id": name, "sip": number, "allow_outbound": ["."], "web_secret_hash": ALICE_HASH}
        )
    return mapping


def sentinel_mapping(index: int, group: SentinelGroup, **options: Any) -> dict[str, Any]:
    """instance_mapping's gateway.yaml with Redis found through the sentinels of `group`, and carol and
    dave."""
    mapping = instance_mapping(index, "redis://unused", **options)
    cluster = mapping["cluster"]
    del cluster["redis"]
    cluster["sentinel"] = {"addresses": group.addresses, "service": group.service}
    return with_more_users(mapping)


def cluster_state(instance: GatewayProcess) -> str:
    """The state of an instance's /readyz `cluster` check ("unanswered" when it does not answer)."""
    try:
        with urllib.request.urlopen(instance.http_url + "/readyz", timeout=2) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except OSError:
        return "unanswered"
    return str(json.loads(body)["checks"]["cluster"]["state"])


async def states(*instances: GatewayProcess) -> list[str]:
    """Each instance's `cluster` check, asked off the event loop (the pages' media runs on it)."""
    return list(await asyncio.gather(*(asyncio.to_thread(cluster_state, g) for g in instances)))


async def phone_call(page: WebUser, phone: DeskPhone) -> None:
    """`page` (logged in) calls the phone, each hears the other's tone, the page hangs up."""
    peer = WebPeer(freq=1200)
    try:
        call_id, number = await call_the_phone(page, peer, phone)
        await wait_until(lambda: peer.heard(440, last=0.5), timeout=10)
        await asyncio.sleep(1.0)  # a second of the page's tone in the phone's recording
        await page.request({"type": "hangup", "call_id": call_id})
        await page.wait_for("ended", call_id=call_id)
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        rate, samples = read_wav(await phone.wait_for_recording(number))
        seconds = [samples[s * rate : (s + 1) * rate] for s in range(len(samples) // rate)]
        assert any(detect_tone(second, rate, 1200, threshold=0.3) for second in seconds), (
            "phone heard nothing"
        )
    finally:
        await peer.close()


async def a_call_to_the_phone(instance: GatewayProcess, user: str, phone: DeskPhone) -> None:
    """`user` logs in at `instance` and makes a `phone_call`."""
    async with WebUser(instance.http_url, user, ALICE_SECRET) as page:
        await phone_call(page, phone)


async def test_calls_logins_and_takeovers_survive_a_sentinel_failover(tmp_path: Path) -> None:
    require_desk_phone()
    slow = {"web_auth": {"reconnect_grace": 60}}
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        with running_sentinel(tmp_path) as group:
            mappings = [sentinel_mapping(i, group, pbx=phone.address, extra=slow) for i in range(2)]
            async with process_cluster(tmp_path, mappings) as (gw1, gw2):
                alice_media, bob_media, carol_media = WebPeer(1000), WebPeer(660), WebPeer(1500)
                alice = WebUser(gw1.http_url, "alice", ALICE_SECRET)
                bob = WebUser(gw1.http_url, "bob", BOB_SECRET)
                carol = WebUser(gw2.http_url, "carol", ALICE_SECRET)
                try:
                    calls = await in_a_call(alice, bob, alice_media, bob_media)
                    await carol.__aenter__()
                    carol_call, number = await call_the_phone(carol, carol_media, phone)
                    await wait_until(lambda: carol_media.heard(440, last=1.0), timeout=10)

                    assert await states(gw1, gw2) == ["ok", "ok"]
                    pages = {
                        "alice": (alice_media, 660),
                        "bob": (bob_media, 1000),
                        "carol": (carol_media, 440),
                    }
                    async with AudioGaps(pages) as gaps:
                        old = group.primary()
                        await asyncio.to_thread(old.stop, kill=True)
                        killed = time.monotonic()
                        promoted = await asyncio.to_thread(group.wait_for_primary, old)
                        while (now := await states(gw1, gw2)) != ["ok", "ok"]:
                            assert time.monotonic() - killed < BACK_WITHIN, (
                                f"cluster check {now} {BACK_WITHIN:g} s after the failover\n"
                                f"{gw1.log()[-3000:]}"
                            )
                            await asyncio.sleep(0.1)
                        back = time.monotonic() - killed
                        await asyncio.sleep(1.0)  # and the calls go on after it
                    page, gap = gaps.worst()
                    assert gap <= GAP_AT_MOST, f"{page} heard nothing for {gap:.2f} s: {gaps.longest}"

                    for instance in (gw1, gw2):  # a new login and a new call on each instance
                        await a_call_to_the_phone(instance, "dave", phone)
                    assert carol_media.heard(440, last=1.0)
                    await carol.request({"type": "hangup", "call_id": carol_call})
                    await carol.wait_for("ended", call_id=carol_call)
                    await phone.wait_for("state", call=number, state="DISCONNECTED")

                    # what the cluster holds is on the new primary: gw1's calls are carried on by gw2
                    assert promoted.role() == "master"
                    gw1.kill()
                finally:
                    await asyncio.gather(
                        alice.close(), bob.close(), carol.close(),
                        alice_media.close(), bob_media.close(), carol_media.close(),
                    )  # fmt: skip
                await back_at(gw2, alice, bob, calls, 20)
    print(
        f"Sentinel failover: cluster checks ok {back:.2f} s after the primary's kill -9; "
        f"longest silence {gap:.2f} s ({page})"
    )
