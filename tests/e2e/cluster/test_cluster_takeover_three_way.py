"""A three-way call outlives its gateway instance (issue 34 item 3): two instances as real processes
sharing a real Redis, two pjsua2 desk phones called by their URIs.

alice (peers.web_user over `/ws`, aiortc media at 1000 Hz) calls phone A (440 Hz), holds it, calls
phone B (660 Hz) and merges the two calls on gw1. gw1 gets SIGKILL. gw2 takes both calls over from
their handovers, re-INVITEs both phones to its own media and, since the handovers name the conference,
makes it again at once: A and B hear each other again before alice is back. alice's page then logs in
at gw2 with its token and reattaches both calls with new RTCPeerConnections (1300 Hz now); reattaching
the carrier puts her in the mix again and tells her `merged`. A hears B and alice's new tone, B hears A
and it, alice hears both phones; neither phone ever sees a BYE.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from peers.audio import RATE, read_wav, rms, tone_ratio
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import instance_mapping, process_cluster
from tests.e2e.harness import wait_until
from tests.e2e.softphone.test_three_way import MIXED, hears, merged_page, reattach_merged, windows_with

RTP_BASE = 53200  # this file's RTP ports: 53200-53399, 53800-53999
LEASE = 2.0


def windows_of_the_other_phone_alone(path: Path, tone: float, *others: float, window_s: float = 0.5) -> int:
    """Windows of a phone's recording holding `tone` (the other phone) and none of `others` (alice's
    tones): the two phones talking while alice is away."""
    rate, samples = read_wav(path)
    size = int(rate * window_s)
    return sum(
        1
        for i in range(0, len(samples) - size + 1, size)
        if rms(samples[i : i + size]) > 100
        and tone_ratio(samples[i : i + size], rate, tone) >= 0.5
        and all(tone_ratio(samples[i : i + size], rate, other) < MIXED for other in others)
    )


async def test_a_survivor_makes_a_three_way_call_again(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", tone=660) as phone_b,
    ):
        with running_redis(tmp_path) as server:
            mappings = []
            for index in range(2):
                mapping = instance_mapping(
                    index, server.url, rtp_base=RTP_BASE, lease=LEASE,
                    extra={"web_auth": {"reconnect_grace": 20}},
                )  # fmt: skip
                mapping["users"][0]["allow_outbound"] = [phone_a.uri, phone_b.uri]
                mappings.append(mapping)
            async with process_cluster(tmp_path, mappings) as (gw1, gw2):
                async with merged_page(gw1.http_url, phone_a, phone_b) as (alice, merged):
                    call_a, call_b, number_a, number_b, event = merged
                    await asyncio.sleep(1.5)  # two heartbeats: both handovers, naming the conference
                    gw1.kill()
                    killed = time.monotonic()
                token = alice.token

                # gw2 takes both calls over and mixes the phones again before alice is back
                await wait_until(lambda: "merged again, taken over here" in gw2.log(), timeout=LEASE + 10)
                remade = time.monotonic() - killed
                await asyncio.sleep(2.5)  # A and B talk, alice away
                again_a, again_b = WebPeer(1300), WebPeer(1300)
                try:
                    async with WebUser(gw2.http_url, "alice", "", token=token) as again:
                        calls = await again.wait_for("calls", timeout=10)
                        listed = {c["call_id"]: c["state"] for c in calls["calls"]}
                        assert listed == {call_a: "connected", call_b: "connected"}, calls
                        await reattach_merged(again, call_b, call_a, (again_b, again_a))
                        # alice hears both phones on the carrier (ICE and DTLS anew: slow under load)
                        await wait_until(lambda: hears(again_b.pcm, RATE, 440, 660), timeout=20)
                        back = time.monotonic() - killed
                        # the phones record the mix with alice's new tone (her media into the mix comes up
                        # after she hears it: 2 s of it were not enough once in a full suite run at load 7)
                        await asyncio.sleep(4.0)
                        for phone, number in (phone_a, number_a), (phone_b, number_b):
                            assert not phone.seen("state", call=number, state="DISCONNECTED"), "a BYE"
                        for call_id, phone, number in (
                            (call_a, phone_a, number_a),
                            (call_b, phone_b, number_b),
                        ):
                            await again.request({"type": "hangup", "call_id": call_id})
                            await phone.wait_for("state", call=number, state="DISCONNECTED")
                finally:
                    await asyncio.gather(again_a.close(), again_b.close())
                wav_a = await phone_a.wait_for_recording(number_a)
                wav_b = await phone_b.wait_for_recording(number_b)
                assert windows_with(wav_a, 660, 1300) >= 1, "A did not hear B and alice after the takeover"
                assert windows_with(wav_b, 440, 1300) >= 1, "B did not hear A and alice after the takeover"
                assert windows_of_the_other_phone_alone(wav_a, 660, 1000, 1300) >= 2, (
                    "A did not hear B while alice was away"
                )
                assert windows_of_the_other_phone_alone(wav_b, 440, 1000, 1300) >= 2, (
                    "B did not hear A while alice was away"
                )
    print(
        f"{event['conference_id']}: made again {remade:.2f} s after the kill, alice heard it after {back:.2f} s"
    )
