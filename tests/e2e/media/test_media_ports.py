"""Issue 36 item 8: every media socket of the gateway in the configured range, the web leg's ICE too.

The real command runs as a process of its own, so that the UDP sockets it holds can be read from
/proc/<pid>/fd and /proc/net/udp (only its own: the test's aiortc peer and the pjsua2 phone hold theirs
elsewhere). A web user (aiortc, over the WebSocket protocol) calls a real SIP phone (pjsua2) through
it; tones are checked both ways. While the call is up, every UDP socket the gateway opened since it
started is inside `media.rtp_ports` (or `media.web_ports`), the answer's ICE candidates name ports
there, readiness counts the pairs the call holds; after the hang-up they are all free again.

Headless Chromium on the softphone page calls the phone and is called by it, with every host address of
the machine gathered on (a gateway in the test's process: its sockets are the process's).

Exhaustion: the ranges left with room for one call only (the other pairs held by this test process: for
the gateway, another process's), a second call from the web user and a call from the phone are refused
cleanly (an `ended` event with a reason, SIP 503) while the first call keeps its audio both ways.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from peers.demo import ALICE_HASH, ALICE_SECRET, require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port, free_range
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.page_audio import assert_phone_heard_the_browser
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone
from tests.e2e.softphone.test_browser_phone import page_calls_phone, phone_calls_page
from tests.signaling.browser import chromium_page, expect, log_in

PAIRS = 10  # the smallest range the configuration takes (RtpPorts: MIN_RTP_PAIRS)


def gateway_udp_ports(pid: int) -> set[int]:
    """The local ports of the UDP sockets process ``pid`` holds (IPv4 and IPv6)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}", encoding="ascii") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def candidate_ports(sdp: str) -> list[int]:
    """The ports of the a=candidate lines of a description (RFC 8839 §5.1)."""
    return [int(m.group(1)) for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ", sdp, re.I)]


def even_start() -> int:
    """The even start of a range of PAIRS pairs that are all free now (peers.ports.free_range)."""
    return free_range(2 * PAIRS)


@asynccontextmanager
async def gateway_process(tmp_path: Path, pbx: str, media: str) -> AsyncIterator[tuple[int, str, int]]:
    """``python -m gateway run`` on loopback with ``media`` (YAML flow mapping): (pid, http URL, SIP port)."""
    http_port, sip_port = free_port(), free_port(socket.SOCK_DGRAM)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"sip: {{listen: [{{transport: udp, host: 127.0.0.1, port: {sip_port}}}], "
        "trusted_sources: [127.0.0.1/32]}\n"
        f"media: {media}\n"
        "ice: {host_addresses: [127.0.0.1]}\n"  # one host candidate per web leg: one pair
        f"pbx: {{address: '{pbx}', domain: 127.0.0.1}}\n"
        f"http: {{host: 127.0.0.1, port: {http_port}}}\n"
        f"users: [{{id: alice, sip: '1001', allow_outbound: ['.'], web_secret_hash: '{ALICE_HASH}'}}]\n"
        f"state_dir: '{tmp_path / 'state'}'\n"
    )
    log = (tmp_path / "gateway.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "-c", str(config), stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                try:
                    async with http.get(f"{url}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            for _ in range(300):
                if process.returncode is not None:
                    raise AssertionError((tmp_path / "gateway.log").read_text()[-3000:])
                if await up():
                    break
                await asyncio.sleep(0.1)
            yield process.pid, url, sip_port
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
    text = (tmp_path / "gateway.log").read_text()
    assert "Traceback" not in text, text[-3000:]


async def readiness(url: str) -> str:
    """The detail of /readyz's rtp_ports check: "<free> free, <in use> in use"."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
        body = json.loads(await response.text())
    return str(body["checks"]["rtp_ports"]["detail"])


def all_free(ports: range) -> bool:
    """Whether every port of ``ports`` can be bound on 127.0.0.1 now."""
    opened = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            opened.append(sock)
            sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        for sock in opened:
            sock.close()
    return True


def hold_all_but(start: int, left: int) -> list[socket.socket]:
    """Bind both ports of every pair of [start, start + 2 * PAIRS) but the last ``left``: the gateway's
    allocator finds them taken (EADDRINUSE, another process for it) and has ``left`` pairs."""
    held = []
    for port in range(start, start + 2 * (PAIRS - left)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", port))
        held.append(sock)
    return held


async def call_the_phone(alice: WebUser, peer: WebPeer, phone: DeskPhone) -> tuple[str, str, int]:
    """alice calls the phone from ``peer`` until she hears its 440 Hz: (call id, the gateway's answer,
    the phone's call)."""
    call_id = await alice.call("2000", await peer.offer())
    connected = await alice.wait_for("connected", call_id=call_id, timeout=20)
    await peer.accept(connected["sdp"])
    incoming = await phone.wait_for("incoming")
    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
    return call_id, str(connected["sdp"]), int(incoming["call"])


async def hang_up(alice: WebUser, call_id: str, phone: DeskPhone, number: int) -> None:
    """After a second more of the call, alice hangs up; the phone must have heard her 1000 Hz."""
    await asyncio.sleep(1.0)
    await alice.request({"type": "hangup", "call_id": call_id})
    await alice.wait_for("ended", call_id=call_id)
    wav = await phone.wait_for_recording(number)
    assert wav_has_tone(wav, 1000), "the phone did not hear the web user's 1000 Hz"


async def test_a_call_holds_only_ports_of_the_range_and_gives_them_back(tmp_path: Path) -> None:
    require_desk_phone()
    start = even_start()
    rtp = range(start, start + 2 * PAIRS)
    media = f"{{rtp_ports: {{start: {start}, end: {rtp[-1]}}}}}"
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        gateway_process(tmp_path, phone.address, media) as (pid, url, sip_port),
        WebUser(url, "alice", ALICE_SECRET) as alice,
    ):
        before = gateway_udp_ports(pid)
        # the ICE socket pool's (ice_pool.py): one pair bound ahead (a share of the range's 10), free
        pooled = before & set(rtp)
        assert sip_port in before and len(pooled) == 1, before
        assert await readiness(url) == f"{PAIRS} free, 0 in use"
        peer = WebPeer(freq=1000)
        try:
            call_id, answer, number = await call_the_phone(alice, peer, phone)
            # the web leg's one ICE socket (host candidate, rtcp-mux) is the pooled one, bound before
            offered = candidate_ports(answer)
            assert set(offered) == pooled, (offered, pooled)
            # the SIP leg's RTP and RTCP, the pool's new socket: all in the range
            await wait_until(lambda: len(gateway_udp_ports(pid) - before) == 3, timeout=10)
            assert gateway_udp_ports(pid) - before <= set(rtp)
            assert await readiness(url) == f"{PAIRS - 2} free, 2 in use"  # the web leg's pair counted

            await hang_up(alice, call_id, phone, number)
        finally:
            await peer.close()
        # every port of the call back; the pool holds one pair as before
        await wait_until(lambda: len(gateway_udp_ports(pid) & set(rtp)) == 1, timeout=10)
        assert gateway_udp_ports(pid) - set(rtp) == before - set(rtp)
        assert sum(map(all_free, (range(p, p + 2) for p in rtp[::2]))) == PAIRS - 1
        assert await readiness(url) == f"{PAIRS} free, 0 in use"


async def test_a_full_range_refuses_the_next_call_and_the_first_goes_on(tmp_path: Path) -> None:
    """With `media.web_ports` (the web legs' own range) and one free pair in each range."""
    require_desk_phone()
    start, web_start = even_start(), 0
    while not web_start or abs(web_start - start) < 2 * PAIRS:
        web_start = even_start()
    rtp, web = range(start, start + 2 * PAIRS), range(web_start, web_start + 2 * PAIRS)
    media = f"{{rtp_ports: {{start: {start}, end: {rtp[-1]}}}, web_ports: {{start: {web_start}, end: {web[-1]}}}}}"
    # the SIP legs' range has room for two calls, the web legs' for one: the second call's SIP leg gets
    # its ports, its web leg none (and gives the SIP leg's back)
    held = hold_all_but(start, 2) + hold_all_but(web_start, 1)
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        gateway_process(tmp_path, phone.address, media) as (pid, url, sip_port),
        WebUser(url, "alice", ALICE_SECRET) as alice,
    ):
        before = gateway_udp_ports(pid)
        assert before & set(web) == {web[-2]}  # the ICE socket pool bound the web range's free pair
        first, second = WebPeer(freq=1000), WebPeer(freq=1000)
        try:
            call_id, answer, number = await call_the_phone(alice, first, phone)
            opened = gateway_udp_ports(pid) - before
            assert opened == {rtp[-4], rtp[-3]}, (opened, rtp, web)  # the first free pairs
            assert set(candidate_ports(answer)) == {web[-2]}  # the pooled socket
            # the fewer free of the two ranges (as far as the gateway knows: the ports this test holds are
            # found taken only when tried), the pairs in use in both
            assert await readiness(url) == f"{PAIRS - 1} free, 2 in use"

            # a second call from the web user: refused before the phone rings, nothing kept
            refused = await alice.call("2000", await second.offer())
            ended = await alice.wait_for("ended", call_id=refused, timeout=20)
            assert ended["reason"] == "media_failed", ended
            assert f"no free RTP port pair in [{web_start}, {web[-1]}]" in ended["message"], ended
            assert len(phone.seen("incoming")) == 1, "the phone rang for a call the range could not carry"
            assert gateway_udp_ports(pid) - before == opened
            # a call from the phone to the web user, who takes it: no port for it
            inbound = await phone.call(f"sip:1001@127.0.0.1:{sip_port}")
            ringing = await alice.wait_for("incoming", timeout=20)
            await alice.request({"type": "answer", "call_id": ringing["call_id"]})
            gone = await alice.wait_for("ended", call_id=ringing["call_id"], timeout=20)
            assert gone["reason"] == "media_failed" and gone["sip_status"] == 503, gone
            final = await phone.wait_for("state", call=inbound, state="DISCONNECTED", timeout=20)
            assert (final["code"], final["reason"]) == (503, "Service Unavailable"), final
            assert gateway_udp_ports(pid) - before == opened

            # the first call goes on, audio both ways
            await wait_until(lambda: first.heard(440, last=1.0), timeout=10)
            await hang_up(alice, call_id, phone, number)
        finally:
            await first.close()
            await second.close()
            for sock in held:
                sock.close()
        # every port of the calls back; the pool holds a pair of the web range again
        await wait_until(lambda: gateway_udp_ports(pid) - set(web) == before - set(web), timeout=10)
        await wait_until(lambda: len(gateway_udp_ports(pid) & set(web)) == 1, timeout=10)
        assert all_free(rtp) and sum(map(all_free, (range(p, p + 2) for p in web[::2]))) == PAIRS - 1


async def test_chromium_calls_and_is_called_on_ports_of_the_range_only(tmp_path: Path) -> None:
    """The softphone page in headless Chromium and the phone call each other through a gateway in this
    process (its UDP sockets are this process's: Chromium, Playwright and the phone run in others), every
    host address of the machine gathered on: each is a pair of the range, and all come back."""
    require_desk_phone()
    start = even_start()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address, media={"rtp_ports": {"start": start}})) as gateway,
        chromium_page() as page,
    ):
        rtp = range(start, gateway.config.media.rtp_ports.end + 1)
        before = gateway_udp_ports(os.getpid())
        pool = gateway.ice_pool  # its pairs bound ahead on every host address (ice_pool.py)

        def back() -> bool:  # every port of the call back, the pool as large as before
            now = gateway_udp_ports(os.getpid())
            return now - set(rtp) == before - set(rtp) and len(now & set(rtp)) == len(before & set(rtp))

        await page.goto(gateway.http_url + "/")
        await log_in(page, "alice", ALICE_SECRET)
        await expect(page.locator("#status")).to_have_text("Registered as Alice")
        incoming = await page_calls_phone(page, phone)
        opened = gateway_udp_ports(os.getpid()) - before
        assert len(opened) >= 2 and opened <= set(rtp) and pool.taken >= 1, (opened, rtp)
        await asyncio.sleep(2.0)  # the page's beep in the phone's recording
        await page.get_by_role("button", name="Hang up").click()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        assert_phone_heard_the_browser(await phone.wait_for_recording(incoming["call"]))
        await wait_until(back, timeout=10)

        number = await phone_calls_page(page, phone, gateway.sip_address)
        opened = gateway_udp_ports(os.getpid()) - before
        assert len(opened) >= 2 and opened <= set(rtp), (opened, rtp)
        await phone.hangup(number)
        await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
        await wait_until(back, timeout=10)
        assert len(gateway.ports.held) == pool.idle  # none but the pool's, no call's
