"""A three-way call outlives the instance that mixes it (issue 65 item 2), as the people in it notice it:
two gateway instances as real processes sharing a real Redis behind the shipped HAProxy, alice's softphone
page in headless Chromium through HAProxy, two pjsua2 desk phones called by their URIs.

alice calls phone A (440 Hz), holds it, calls phone B (660 Hz) and presses Merge: the page shows the
conference of both parties and hears both phones. The instance holding her session (and so both calls and
their mix) gets SIGKILL. Then, with nobody touching anything:

- the survivor takes both calls over (a re-INVITE to each phone, no BYE) and makes the mix again;
- the page says "Reconnecting the conference…" (its two parties still listed), reconnects through
  HAProxy to the survivor by itself and takes both calls back: it shows the conference of the same two
  parties again (not two separate calls, no error) and hears both phones;
- A hears B and alice's microphone (Chromium's 400 Hz beep) after the kill, B hears A and alice;
- neither phone ever sees a BYE; alice hangs both parties up from the conference afterwards.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from peers.audio import read_wav, rms, tone_ratio
from peers.demo import require_desk_phone
from peers.haproxy import running_haproxy
from peers.phone import DeskPhone
from peers.redis import running_redis
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster
from tests.e2e.cluster.test_cluster_failover import holder
from tests.e2e.harness import ALICE_SECRET
from tests.e2e.page_audio import FAKE_MIC_HZ, page_tone
from tests.e2e.softphone.test_browser_kamailio import dial
from tests.e2e.softphone.test_three_way import MIXED
from tests.signaling.browser import Page, chromium_page, expect, log_in

RTP_BASE = 58000  # this file's RTP ports: 58000-58199, 58600-58799
LEASE = 2.0
A_HZ, B_HZ = 440, 660


async def page_hears_both(page: Page, timeout: float = 20.0) -> float:
    """Seconds until the page hears both phones in one 2 s window (a mix: each tone has about half the
    power, so a block counts at a lower share than a lone tone)."""
    started = time.monotonic()
    while True:
        a, _ = await page_tone(page, A_HZ, seconds=1.0, ratio=0.2)
        b, _ = await page_tone(page, B_HZ, seconds=1.0, ratio=0.2)
        if a >= 0.5 and b >= 0.5:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"the page hears A in {a:.2f}, B in {b:.2f} of blocks"


def windows_after(
    path: Path, seconds: float, tone: float, window_s: float = 0.5, share: float = MIXED
) -> int:
    """`window_s` windows holding `tone` (at least `share` of their power) in the last `seconds` of a
    phone's recording. alice's beep: about 110 ms every 500 ms, mixed with the other phone's tone at a
    far higher level (a share of 0.05-0.07 in a 0.1 s window holding it; 0.00 in the others)."""
    rate, samples = read_wav(path)
    samples = samples[-int(seconds * rate) :]
    size = int(rate * window_s)
    return sum(
        1
        for i in range(0, len(samples) - size + 1, size)
        if rms(samples[i : i + size]) > 100 and tone_ratio(samples[i : i + size], rate, tone) >= share
    )


async def merge_two_calls(page: Page, phone_a: DeskPhone, phone_b: DeskPhone) -> tuple[int, int]:
    """As a person does it: call A, hold, call B, Merge. The phones' call numbers."""
    await dial(page, phone_a.uri)
    at_a = int((await phone_a.wait_for("incoming", timeout=15))["call"])
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    await page.get_by_role("button", name="Hold", exact=True).click()
    await phone_a.wait_for("media", call=at_a, status="remote_hold", timeout=10)
    await expect(page.locator("#call-state")).to_have_text("On hold", timeout=10000)
    await dial(page, phone_b.uri)
    at_b = int((await phone_b.wait_for("incoming", timeout=15))["call"])
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    await page.get_by_role("button", name=re.compile("^Merge with")).click()
    await expect_conference(page)
    await phone_a.wait_for("media", call=at_a, status="active", timeout=10)
    return at_a, at_b


async def expect_conference(page: Page, timeout: float = 10000) -> None:
    """The page shows the conference of both phones: two parties, each with Split and Hang up."""
    await expect(page.locator("#conference")).to_be_visible(timeout=timeout)
    await expect(page.locator("#call-state")).to_have_text("Conference with 2 parties", timeout=timeout)
    parties = page.locator("#conference-parties li")
    await expect(parties).to_have_count(2)
    await expect(parties.nth(0)).to_contain_text("2000")
    await expect(parties.nth(1)).to_contain_text("2001")
    await expect(page.get_by_role("button", name=re.compile("^Split off"))).to_have_count(2)
    await expect(page.locator("#calls")).to_be_hidden()


async def test_the_page_keeps_its_three_way_call_when_the_mixing_instance_dies(tmp_path: Path) -> None:
    require_desk_phone()
    async with asyncio.timeout(240):  # a hang fails with the await it hung at
        await _three_way_outlives_its_instance(tmp_path)


async def _three_way_outlives_its_instance(tmp_path: Path) -> None:
    async with (
        DeskPhone(tmp_path, user="2000", tone=A_HZ) as phone_a,
        DeskPhone(tmp_path, user="2001", tone=B_HZ) as phone_b,
    ):
        with running_redis(tmp_path) as redis:
            outbound = {"allow_outbound": [phone_a.uri, phone_b.uri]}  # no PBX: each phone by its URI
            mappings = [
                instance_mapping(i, redis.url, rtp_base=RTP_BASE, lease=LEASE, alice=outbound)
                for i in range(2)
            ]
            async with process_cluster(tmp_path, mappings) as instances:
                http = [i.http_address for i in instances]
                with running_haproxy(tmp_path / "haproxy", [*http, http[1]]) as front:
                    async with chromium_page() as page:
                        await page.goto(front.url + "/")
                        await log_in(page, "alice", ALICE_SECRET)
                        await expect(page.locator("#status")).to_have_text("Registered as Alice")
                        at_a, at_b = await merge_two_calls(page, phone_a, phone_b)
                        await page_hears_both(page)
                        mixing: GatewayProcess = await holder(instances, "users")
                        assert (await mixing.status())["calls"] == 2
                        await asyncio.sleep(1.5)  # two heartbeats: both handovers, naming the conference
                        mixing.kill()
                        killed = time.monotonic()

                        # meanwhile the page says so, its parties still listed
                        state = page.locator("#call-state")
                        await expect(state).to_have_text("Reconnecting the conference…", timeout=5000)
                        await expect(page.locator("#conference-parties li")).to_have_count(2)
                        # the page is back by itself, showing the same conference and hearing both
                        await expect(page.locator("#status")).to_have_text(
                            "Registered as Alice", timeout=15000
                        )
                        await expect_conference(page, timeout=20000)
                        await page_hears_both(page)
                        back = time.monotonic() - killed
                        survivor = next(i for i in instances if i is not mixing)
                        assert "merged again, taken over here" in survivor.log(), survivor.log()[-3000:]
                        assert (await survivor.status())["calls"] == 2
                        await expect(page.locator("#error")).to_be_hidden()
                        await asyncio.sleep(3.0)  # the phones record the mix made again
                        recorded = time.monotonic() - killed
                        for phone, number in ((phone_a, at_a), (phone_b, at_b)):
                            assert not phone.seen("state", call=number, state="DISCONNECTED"), "a BYE"

                        # alice hangs A up from the conference: B's call goes on alone; then B
                        await page.get_by_role("button", name=re.compile("^Hang up ")).first.click()
                        await phone_a.wait_for("state", call=at_a, state="DISCONNECTED", timeout=10)
                        await expect(page.locator("#conference")).to_be_hidden(timeout=10000)
                        await page.get_by_role("button", name="Hang up", exact=True).click()
                        await phone_b.wait_for("state", call=at_b, state="DISCONNECTED", timeout=10)
                        await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
                    wav_a = await phone_a.wait_for_recording(at_a)
                    wav_b = await phone_b.wait_for_recording(at_b)
                    # the last seconds of each recording: after the kill only
                    since = recorded - back + 2.0
                    assert windows_after(wav_a, since, B_HZ) >= 2, "A did not hear B after the takeover"
                    assert windows_after(wav_b, since, A_HZ) >= 2, "B did not hear A after the takeover"
                    for wav, who in ((wav_a, "A"), (wav_b, "B")):
                        assert windows_after(wav, since, FAKE_MIC_HZ, 0.1, 0.03) >= 4, (
                            f"{who} did not hear alice"
                        )
                for instance in instances:
                    assert "Traceback" not in instance.log(), instance.log()[-3000:]
    print(f"three-way call on the page: conference shown and both phones heard {back:.2f} s after the kill")
