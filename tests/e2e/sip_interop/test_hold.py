"""Hold and resume with a real desk phone, both ways.

The web user's hold re-INVITEs the phone with a=sendonly (the phone reports remote_hold), the browser
hears `held`/`resumed` by local, and while held no audio flows either way: the phone's recording has a
silent stretch as long as the hold between stretches of the browser's tone, the browser receives no
packet of the phone's, and the bridge forwards nothing; after resume both directions flow again. The
phone's hold is answered and the browser hears `held`/`resumed` by remote; audio flows again afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import Config
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeStats
from peers.audio import detect_tone, read_wav, rms
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

HOLD_SECONDS = 3.0
SILENT_RMS = 60.0  # 16-bit samples: well under the tones (8000 peak), over PLC tails


def hold_gap(path: Path, freq: float, window_s: float = 0.1) -> tuple[float, bool, bool]:
    """The first run of silent `window_s` windows of the recording as long as the web user's hold
    (else the longest run), in seconds, and whether `freq` is heard before that run and after it. The
    first: the phone's own hold later may leave a silent tail in its recording (pjsua's recorder)."""
    rate, samples = read_wav(path)
    size = int(rate * window_s)
    windows = [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]
    silent = [rms(w) < SILENT_RMS for w in windows]
    runs, start = [], None
    for index, quiet in enumerate([*silent, False]):
        if quiet and start is None:
            start = index
        elif not quiet and start is not None:
            runs.append((start, index))
            start = None
    if not runs:
        return 0.0, False, False
    wanted = int((HOLD_SECONDS - 0.8) / window_s)
    first, end = next((r for r in runs if r[1] - r[0] >= wanted), max(runs, key=lambda r: r[1] - r[0]))
    toned = [detect_tone(w, rate, freq, threshold=0.3) for w in windows]
    return (end - first) * window_s, any(toned[:first]), any(toned[end:])


def with_update(config: Config, update: bool) -> Config:
    return dataclasses.replace(config, sip=dataclasses.replace(config.sip, reoffer_with_update=update))


def bridge_stats(gateway: Gateway, call_id: str) -> BridgeStats:
    bridge = gateway.driver._runtimes[call_id].bridge
    assert isinstance(bridge, MediaBridge)
    return bridge.stats()


async def sent_by(peer: WebPeer) -> int:
    """RTP packets the browser's sender has sent so far (aiortc's outbound statistics)."""
    report = await peer.transceiver.sender.getStats()
    return sum(getattr(stat, "packetsSent", 0) for stat in report.values() if stat.type == "outbound-rtp")


def silence_told(gateway: Gateway, call_id: str, sent: int) -> str:
    """Which side stopped, when the bridge heard nothing from the browser during a hold: what the
    browser sent meanwhile, its transports, and the fast lane's state (a CI run once failed so)."""
    bridge = gateway.driver._runtimes[call_id].bridge
    assert isinstance(bridge, MediaBridge)
    lane = bridge.fast_lane
    told = f"the browser sent {sent} RTP packets meanwhile"
    if lane is not None:
        told += f"; fast lane linked: {lane.link is not None}, engines: {lane._pool.counters()}"
    return told


async def check_web_hold(gateway: Gateway, alice: WebUser, peer: WebPeer, phone: DeskPhone,
                         call_id: str, number: int) -> None:  # fmt: skip
    """Hold from the web user: no audio either way while held; both ways again after resume."""
    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
    await asyncio.sleep(1.0)  # the phone records the browser's tone before the hold
    await alice.request({"type": "hold", "call_id": call_id})
    assert (await alice.wait_for("held", call_id=call_id))["by"] == "local"
    await phone.wait_for("media", call=number, status="remote_hold")
    await asyncio.sleep(0.3)  # packets in flight
    before, received = bridge_stats(gateway, call_id), len(peer.payloads)
    phone_before, sent = await phone.rtp(number), await sent_by(peer)
    await asyncio.sleep(HOLD_SECONDS)
    after = bridge_stats(gateway, call_id)
    phone_after, sent = await phone.rtp(number), await sent_by(peer) - sent
    assert after.web_to_sip.forwarded == before.web_to_sip.forwarded, "browser audio reached the held phone"
    # what the phone's stream took in, whoever sent it (its recording plays what this counts)
    assert phone_after["received"] <= phone_before["received"] + 2, (
        f"the held phone received {phone_after['received'] - phone_before['received']} RTP packets, the "
        f"last from {phone_after['source']} (the bridge forwarded none; the gateway's RTP ports: "
        f"{gateway.config.media.rtp_ports})"
    )
    assert after.web_to_sip.received > before.web_to_sip.received + 50, (
        f"the bridge heard {after.web_to_sip.received - before.web_to_sip.received} packets of the "
        f"browser's: {silence_told(gateway, call_id, sent)}, {after}"
    )
    assert after.sip_to_web.forwarded == before.sip_to_web.forwarded, (
        "the held phone's audio reached the browser"
    )
    assert len(peer.payloads) <= received + 2, "the browser received audio during the hold"

    await alice.request({"type": "resume", "call_id": call_id})
    assert (await alice.wait_for("resumed", call_id=call_id))["by"] == "local"
    await phone.wait_for("media", call=number, status="active")
    peer.clear()
    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
    resumed = bridge_stats(gateway, call_id)
    await asyncio.sleep(1.0)  # the phone records the browser's tone after the hold
    assert bridge_stats(gateway, call_id).web_to_sip.forwarded > resumed.web_to_sip.forwarded + 25


def assert_hold_in_recording(wav: Path) -> None:
    gap, before, after = hold_gap(wav, 1000)
    assert gap >= HOLD_SECONDS - 0.8, f"no silent stretch as long as the hold in {wav} (longest {gap:.1f} s)"
    assert before and after, f"{wav}: the browser's tone is not heard around the hold ({before}, {after})"


@pytest.mark.parametrize("update", [False, True], ids=["reinvite", "update"])
async def test_hold_and_resume_both_ways(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, update: bool
) -> None:
    """With sip.reoffer_with_update the web user's hold and resume go to the phone (pjsua, whose Allow
    lists UPDATE) as UPDATE with the offer, answered in its 200 (RFC 3311 §5.1): the phone reports
    remote_hold and active as with a re-INVITE, and no media flows while held; the phone's own hold is
    a re-INVITE either way."""
    require_desk_phone()
    caplog.set_level(logging.INFO, logger="gateway.sip")
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(with_update(gateway_config(phone.address), update)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")

            await check_web_hold(gateway, alice, peer, phone, call_id, incoming["call"])

            await phone.send("hold")
            assert (await alice.wait_for("held", call_id=call_id))["by"] == "remote"
            await phone.send("unhold")
            assert (await alice.wait_for("resumed", call_id=call_id))["by"] == "remote"

            peer.clear()
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            resumed = bridge_stats(gateway, call_id)
            await asyncio.sleep(1.0)  # the phone records the browser's tone after its own hold
            forwarded = bridge_stats(gateway, call_id).web_to_sip.forwarded - resumed.web_to_sip.forwarded
            assert forwarded > 25, (
                f"the browser's audio does not reach the phone after its resume ({forwarded})"
            )
            await alice.request({"type": "hangup", "call_id": call_id})
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            assert_hold_in_recording(await phone.wait_for_recording(incoming["call"]))
        finally:
            await peer.close()
    updates = [r.getMessage() for r in caplog.records if "offer in UPDATE answered" in r.getMessage()]
    assert len(updates) == (2 if update else 0) and all(m.endswith("answered 200") for m in updates), updates


async def test_web_user_holds_a_call_from_the_phone(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(1000)
        try:
            host, port = gateway.sip_address
            number = await phone.call(f"sip:1001@{host}:{port}")
            call_id = (await alice.wait_for("incoming"))["call_id"]
            await alice.answer(call_id, peer.answer)
            await phone.wait_for("state", call=number, state="CONFIRMED")
            await check_web_hold(gateway, alice, peer, phone, call_id, number)
            await phone.hangup(number)
            assert (await alice.wait_for("ended", call_id=call_id))["reason"] == "remote_hangup"
            assert_hold_in_recording(await phone.wait_for_recording(number))
        finally:
            await peer.close()
