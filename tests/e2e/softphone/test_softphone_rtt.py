"""Real-time text (issue 68 item 1) on the real softphone page in headless Chromium: sipp calls alice
offering RFC 4103 text (`uac_rtt`: m=text with T.140 98 and RED 100, two generations), its text RTP
played by a T.140 peer written here (sipp does the SIP; the peer's socket is the m=text port, -set tport).

- The gateway answers the m=text with its own port (sipp checks RED and T.140 in the 200) and opens an
  RFC 8865 T.140 data channel to the page, which shows its text panel.
- The peer types "Hello page" in RED packets 300 ms apart, with an erasure (U+0008) on the way, and one
  packet never sent: the redundancy of the next brings it back, the page shows the whole text.
- The page's typed text (with a Backspace) arrives as RED T.140 packets, decoded here byte by byte
  (RFC 2198 §3): at least 300 ms apart, the redundancy carrying the previous packets' text, and none
  once the typing stopped and its redundancy was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel

from gateway.config import Config
from peers.binaries import require_binary
from peers.ports import free_range
from peers.sipp import Sipp
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.signaling.browser import Page, chromium_page, expect, log_in

T140, RED = 98, 100


class T140Peer(asyncio.DatagramProtocol):
    """A text phone's RTP: sends RED T.140 packets it builds itself, keeps what comes back."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[tuple[float, bytes]] = []
        self.sequence = secrets.randbelow(60000)
        self.sent: list[tuple[int, bytes]] = []  # (timestamp, primary) of every packet built

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:  # RTP, not RTCP
            self.received.append((asyncio.get_running_loop().time(), data))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def packet(self, text: str, timestamp: int) -> bytes:
        """The next RED packet: ``text`` as primary, the two previous primaries as redundancy."""
        earlier = self.sent[-2:]
        self.sent.append((timestamp, text.encode()))
        headers = b"".join(
            bytes([0x80 | T140]) + (((timestamp - ts) << 10) | len(data)).to_bytes(3, "big")
            for ts, data in earlier
        )
        payload = headers + bytes([T140]) + b"".join(data for _, data in earlier) + text.encode()
        header = bytes([0x80, RED | (0x80 if len(self.sent) == 1 else 0)])
        header += (
            self.sequence.to_bytes(2, "big") + timestamp.to_bytes(4, "big") + (0x5EED).to_bytes(4, "big")
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        return header + payload


def decode(packets: list[bytes]) -> tuple[str, list[int], list[int]]:
    """The text of the gateway's RED packets (primaries, erasures applied), their timestamps and how many
    redundant blocks each carried."""
    text: list[str] = []
    stamps, generations = [], []
    for data in packets:
        assert data[1] & 0x7F == RED, data.hex()
        stamps.append(int.from_bytes(data[4:8], "big"))
        body, pos, lengths = data[12:], 0, []
        while body[pos] & 0x80:
            assert body[pos] & 0x7F == T140
            lengths.append(int.from_bytes(body[pos + 1 : pos + 4], "big") & 0x3FF)
            pos += 4
        assert body[pos] == T140
        generations.append(len(lengths))
        for char in body[pos + 1 + sum(lengths) :].decode():
            if char == "\b":
                text.pop()
            else:
                text.append(char)
    return "".join(text), stamps, generations


async def text_both_ways(
    page: Page, peer: T140Peer, transport: asyncio.DatagramTransport, target: tuple[str, int]
) -> None:
    """The text phone types to the page (one packet lost, brought back by the next one's redundancy),
    the page types to the phone: RED T.140 at least 300 ms apart, two generations, nothing while idle."""
    sent = len(peer.received)
    # the text phone types; its third packet is lost on the way, its fourth brings it back
    start = secrets.randbelow(1 << 20)
    for i, typed in enumerate(["Hel", "lp", "\bo ", "pa", "ge", "", ""]):
        data = peer.packet(typed, start + 300 * i)
        if i != 2:
            transport.sendto(data, target)
        await asyncio.sleep(0.3)
    await expect(page.locator("#rtt-theirs")).to_have_text("Hello page", timeout=5000)

    # the page types (a typo erased): RED T.140 packets to the phone
    box = page.locator("#rtt-input")
    await box.press_sequentially("Hi phonw", delay=60)
    await box.press("Backspace")
    await box.press_sequentially("e", delay=60)
    await wait_until(lambda: decode([d for _, d in peer.received[sent:]])[0] == "Hi phone", timeout=10)
    await asyncio.sleep(1.5)  # the redundancy goes out, then nothing while idle
    count = len(peer.received)
    await asyncio.sleep(1.2)
    assert len(peer.received) == count, "packets while idle"
    text, stamps, generations = decode([d for _, d in peer.received[sent:]])
    assert text == "Hi phone"
    assert all(b - a >= 300 for a, b in itertools.pairwise(stamps)), stamps
    assert generations[2:] and set(generations[2:]) == {2}, generations


async def channel_text_both_ways(
    channel: RTCDataChannel,
    texts: list[str],
    phone: T140Peer,
    transport: asyncio.DatagramTransport,
    port: int,
    word: str,
) -> None:
    """A scripted web client's T.140 ``channel`` (what arrives kept in ``texts``) and the text phone at
    the gateway's m=text ``port`` type to each other: the phone's "Hello <word>" (its third packet lost,
    the fourth's redundancy brings it back), the client's "Hi phone" as RED T.140 to the phone, at least
    300 ms apart, two generations."""
    start = phone.sent[-1][0] + 1000 if phone.sent else secrets.randbelow(1 << 20)  # its clock goes on
    for i, typed in enumerate(["Hel", "lo", " " + word[:1], word[1:], "", ""]):
        data = phone.packet(typed, start + 300 * i)
        if i != 2:
            transport.sendto(data, ("127.0.0.1", port))
        await asyncio.sleep(0.3)
    await wait_until(lambda: "".join(texts) == f"Hello {word}", timeout=5)

    sent = len(phone.received)
    for typed in ["Hi", " ph", "onw", "\be"]:
        channel.send(typed)
        await asyncio.sleep(0.1)
    await wait_until(lambda: decode([d for _, d in phone.received[sent:]])[0] == "Hi phone", timeout=10)
    _, stamps, generations = decode([d for _, d in phone.received[sent:]])
    assert all(b - a >= 300 for a, b in itertools.pairwise(stamps)), stamps
    assert set(generations[2:]) <= {2}, generations


def gateway_text_port(sipp: Sipp, ours: int) -> int | None:
    path = sipp.workdir / "messages.log"
    found = re.findall(r"m=text (\d+) RTP/AVP", path.read_text(errors="replace") if path.exists() else "")
    return next((int(p) for p in found if int(p) not in (0, ours)), None)


async def text_ready(page: Page, sipp: Sipp, peer: T140Peer) -> tuple[str, int]:
    """Once the page shows its text panel, ready to type, and the SDP gave the gateway's m=text port:
    where the text phone sends."""
    await expect(page.locator("#rtt")).to_be_visible(timeout=10000)
    await expect(page.locator("#rtt-input")).to_be_enabled(timeout=10000)
    await wait_until(lambda: gateway_text_port(sipp, peer.port) is not None)
    port = gateway_text_port(sipp, peer.port)
    assert port is not None
    return ("127.0.0.1", port)


@contextlib.asynccontextmanager
async def text_phone_calls(
    tmp_path: Path, scenario: str, duration_ms: int
) -> AsyncIterator[tuple[Page, Sipp, T140Peer, asyncio.DatagramTransport]]:
    """sipp's ``scenario`` calls alice with RFC 4103 text (its m=text port: a T140Peer's socket), the
    softphone page answers; after the body, the call must end (sipp's BYE) with sipp's checks passed."""
    require_binary("sipp")
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(T140Peer, local_addr=("127.0.0.1", 0))
    config = gateway_config(None, media={"rtp_ports": {"start": free_range()}})
    try:
        async with running_gateway(config) as gateway, chromium_page() as page:
            await page.goto(gateway.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
            host, port = gateway.sip_address
            sipp = Sipp(tmp_path, scenario, f"{host}:{port}", service="1001", duration_ms=duration_ms,
                        rtp_echo=True, extra_args=["-set", "tport", str(peer.port)], timeout=60)  # fmt: skip
            try:
                await sipp.start()
                await expect(page.locator("#incoming")).to_be_visible(timeout=10000)
                await page.get_by_role("button", name="Answer", exact=True).click()
                await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
                yield page, sipp, peer, transport
                await expect(page.locator("#call-state")).to_have_text("No call", timeout=20000)
                result = await sipp.wait(timeout=15)
            finally:
                await sipp.stop()
        assert result.ok, result
    finally:
        transport.close()


async def test_the_page_and_a_text_phone_type_to_each_other(tmp_path: Path) -> None:
    async with text_phone_calls(tmp_path, "uac_rtt", 14000) as (page, sipp, peer, transport):
        await text_both_ways(page, peer, transport, await text_ready(page, sipp, peer))
        await page.screenshot(path=str(tmp_path / "page-rtt.png"), full_page=True)


@contextlib.asynccontextmanager
async def text_phone_answers(
    tmp_path: Path, alice_extra: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Config, Sipp, T140Peer, asyncio.DatagramTransport]]:
    """A text phone the gateway calls: sipp's ``uas_rtt`` as its SIP (the PBX of the config given), a
    T140Peer as its m=text socket; ``alice_extra``: more keys of alice's users[] entry (api_keys...)."""
    require_binary("sipp")
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(T140Peer, local_addr=("127.0.0.1", 0))
    pbx = Sipp(tmp_path, "uas_rtt", calls=1, rtp_echo=True, auto_answer=True,
               extra_args=["-set", "tport", str(peer.port)])  # fmt: skip
    await pbx.start()
    try:
        config = gateway_config(
            pbx.address, alice_extra=alice_extra, media={"rtp_ports": {"start": free_range()}}
        )
        config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0.0))
        yield config, pbx, peer, transport
    finally:
        await pbx.stop()
        transport.close()


async def test_the_page_calls_a_text_phone(tmp_path: Path) -> None:
    """The page places the call with "Real-time text in my calls" on: its offer asks for T.140 (a=dcmap,
    RFC 8865 §5.1) and opens the channel itself, the gateway's INVITE offers m=text (sipp's `uas_rtt`
    checks RED 100 with T.140 98, two generations) and the text phone's answer takes it: text both ways."""
    async with text_phone_answers(tmp_path) as (config, pbx, peer, transport):
        async with running_gateway(config) as gateway, chromium_page() as page:
            await page.goto(gateway.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
            await page.get_by_role("checkbox", name="Real-time text in my calls").check()
            await page.locator("#number").fill("2000")
            await page.get_by_role("button", name="Call", exact=True).click()
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
            await text_both_ways(page, peer, transport, await text_ready(page, pbx, peer))
            await page.get_by_role("button", name="Hang up").click()
            await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
            result = await pbx.wait(timeout=15)
        assert result.ok, result


async def test_the_text_goes_on_after_the_phone_holds_and_resumes(tmp_path: Path) -> None:
    """Issue 68 item 2: the text phone's re-INVITEs (`uac_rtt_hold`: the audio held, then resumed, the
    m=text line offered again each time) are answered with the text line kept (sipp checks a port other
    than 0, RED 100 and T.140 98 in both 200s), and the text flows both ways after them."""
    async with text_phone_calls(tmp_path, "uac_rtt_hold", 12000) as (page, sipp, peer, transport):
        target = await text_ready(page, sipp, peer)
        log = sipp.workdir / "messages.log"
        await wait_until(lambda: "CSeq: 3 ACK" in log.read_text(errors="replace"), timeout=15)
        await text_both_ways(page, peer, transport, target)


async def test_the_page_keeps_its_text_through_a_new_connection(tmp_path: Path) -> None:
    """The page's call with real-time text is taken back on a new RTCPeerConnection (its reattach, as after
    a network change): the new offer asks for T.140 again and opens the channel, the gateway gives it the
    call's text, the conversation stays on the panel, and both sides go on typing."""
    async with text_phone_answers(tmp_path) as (config, pbx, peer, transport):
        async with running_gateway(config) as gateway, chromium_page() as page:
            await page.goto(gateway.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
            await page.get_by_role("checkbox", name="Real-time text in my calls").check()
            await page.locator("#number").fill("2000")
            await page.get_by_role("button", name="Call", exact=True).click()
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
            target = await text_ready(page, pbx, peer)
            await text_both_ways(page, peer, transport, target)
            await page.evaluate("window.firstPc = window.softphone.call.pc")
            await page.evaluate("window.softphone.call._reattach()")
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
            assert await page.evaluate("window.softphone.call.pc !== window.firstPc"), "no new connection"
            channel_open = "() => window.softphone.call.rtt && window.softphone.call.rtt.channel.readyState"
            for _ in range(100):
                if await page.evaluate(channel_open) == "open":
                    break
                await asyncio.sleep(0.1)
            assert await page.evaluate(channel_open) == "open"
            last = peer.sent[-1][0]
            for i, typed in enumerate([" and", " more", "", ""]):
                transport.sendto(peer.packet(typed, last + 300 * (i + 1)), target)
                await asyncio.sleep(0.3)
            await expect(page.locator("#rtt-theirs")).to_have_text("Hello page and more", timeout=5000)
            sent = len(peer.received)
            await page.locator("#rtt-input").press_sequentially(" again", delay=60)
            await wait_until(lambda: decode([d for _, d in peer.received[sent:]])[0] == " again", timeout=10)
            await page.get_by_role("button", name="Hang up").click()
            await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
            result = await pbx.wait(timeout=15)
        assert result.ok, result
