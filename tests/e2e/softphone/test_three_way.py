"""Three-way calls (issue 37 item 2) on `/ws` with real peers: a web user (aiortc, 1000 Hz) calls pjsua2
phone A (440 Hz), holds it, calls phone B (660 Hz) and merges the two calls into one conference mixed in
the gateway. While merged, A hears B and the web user (its recording has 660 and 1000 Hz), B hears A
and the web user (440 and 1000 Hz), and the web user hears both phones (440 and 660 Hz) on the call
she talked on last. A party that hangs up leaves a two-party call that goes on; `split` takes a party
out again (it is held, a call of its own) and the other goes on. Bad merges name the field.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import Config
from gateway.ops.records import CallRecord
from peers.audio import RATE, read_wav, rms, tone_ratio
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

MIXED = 0.12  # the share of the power a tone has in a mix of two (about 0.5 each; G.711 and Opus cost some)


def hears(pcm: Sequence[int], rate: int, *tones: float) -> bool:
    """Each of `tones` in the last second of `pcm` (a mix: each has its share of the power)."""
    data = list(pcm[-rate:])
    return rms(data) > 100 and all(tone_ratio(data, rate, tone) >= MIXED for tone in tones)


def windows_with(path: Path, *tones: float, window_s: float = 0.5) -> int:
    """How many `window_s` windows of a phone's recording hold every one of `tones`."""
    rate, samples = read_wav(path)
    size = int(rate * window_s)
    return sum(
        1
        for i in range(0, len(samples) - size + 1, size)
        if rms(samples[i : i + size]) > 100
        and all(tone_ratio(samples[i : i + size], rate, tone) >= MIXED for tone in tones)
    )


async def dial(alice: WebUser, peer: WebPeer, to: str, phone: DeskPhone, tone: float) -> tuple[str, int]:
    """Alice calls `to` (answered by `phone`): the call id and the phone's number, once she hears it."""
    call_id = await alice.call(to, await peer.offer())
    await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
    incoming = await phone.wait_for("incoming")
    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
    await wait_until(lambda: peer.heard(tone, last=1.0), timeout=10)
    return call_id, int(incoming["call"])


async def refused(alice: WebUser, message: dict[str, object], field: str) -> str:
    with pytest.raises(WebUserError) as error:
        await alice.request(message)
    assert f"'field': '{field}'" in str(error.value), error.value
    return str(error.value)


async def merged_calls(
    alice: WebUser, phone_a: DeskPhone, phone_b: DeskPhone, peers: tuple[WebPeer, WebPeer]
) -> tuple[str, str, int, int, dict[str, Any]]:
    """Call A, hold it, call B, merge: (call a, call b, A's number, B's number, the `merged` event)."""
    peer_a, peer_b = peers
    call_a, number_a = await dial(alice, peer_a, phone_a.uri, phone_a, 440)
    await alice.request({"type": "hold", "call_id": call_a})
    await alice.wait_for("held", call_id=call_a)
    await phone_a.wait_for("media", call=number_a, status="remote_hold")
    call_b, number_b = await dial(alice, peer_b, phone_b.uri, phone_b, 660)
    ack = await alice.request({"type": "merge", "call_ids": [call_a, call_b]})
    assert ack["request"] == "merge", ack
    merged = await alice.wait_for("merged")
    assert set(merged["call_ids"]) == {call_a, call_b} and merged["call_ids"][0] == call_b, merged
    await alice.wait_for("resumed", call_id=call_a)
    await phone_a.wait_for("media", call=number_a, status="active")
    return call_a, call_b, number_a, number_b, dict(merged)


def config(phone_a: DeskPhone, phone_b: DeskPhone) -> Config:
    """No PBX: each phone is called by its own URI, which alice may call exactly."""
    return gateway_config(None, alice_outbound=(phone_a.uri, phone_b.uri))


@asynccontextmanager
async def two_phones(
    tmp_path: Path, make_config: Callable[[DeskPhone, DeskPhone], Config] = config
) -> AsyncIterator[tuple[DeskPhone, DeskPhone, Gateway]]:
    """Phone A (2000, 440 Hz) and B (2001, 660 Hz), and a gateway that calls each by its URI."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", tone=660) as phone_b,
        running_gateway(make_config(phone_a, phone_b)) as gateway,
    ):
        yield phone_a, phone_b, gateway


async def test_merge_mixes_both_phones_and_a_hang_up_leaves_two(tmp_path: Path) -> None:
    async with (
        two_phones(tmp_path) as (phone_a, phone_b, gateway),
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer_a, peer_b = WebPeer(1000), WebPeer(1000)
        try:
            # bad merges first: one call only, the call itself, an unknown call, two calls neither held
            call_a, number_a = await dial(alice, peer_a, phone_a.uri, phone_a, 440)
            await refused(alice, {"type": "merge", "call_ids": [call_a]}, "call_ids")
            assert "itself" in await refused(
                alice, {"type": "merge", "call_ids": [call_a, call_a]}, "call_ids"
            )
            await refused(alice, {"type": "merge", "call_ids": [call_a, "no-such-call"]}, "call_ids")
            await refused(alice, {"type": "split", "call_id": call_a}, "call_id")
            call_b, number_b = await dial(alice, peer_b, phone_b.uri, phone_b, 660)
            assert "neither" in await refused(
                alice, {"type": "merge", "call_ids": [call_a, call_b]}, "call_ids"
            )
            await alice.request({"type": "hangup", "call_id": call_b})
            await phone_b.wait_for("state", call=number_b, state="DISCONNECTED")
            await alice.request({"type": "hangup", "call_id": call_a})
            await phone_a.wait_for("state", call=number_a, state="DISCONNECTED")
            await wait_until(lambda: gateway.driver.calls == 0)
            for peer in peer_a, peer_b:
                await peer.close()

            records: list[CallRecord] = []
            gateway.ops.record_sinks.append(records.append)
            peer_a, peer_b = WebPeer(1000), WebPeer(1000)
            call_a, call_b, number_a, number_b, merged = await merged_calls(
                alice, phone_a, phone_b, (peer_a, peer_b)
            )
            # the web user hears both phones on the call she talked on last (b); a's leg is quiet
            peer_b.clear()
            await wait_until(lambda: hears(peer_b.pcm, RATE, 440, 660), timeout=10)
            await asyncio.sleep(2.0)  # the phones record the mix
            # still both (polled: at load 16 one phone's stream stalled for the second read at that instant)
            await wait_until(lambda: hears(peer_b.pcm, RATE, 440, 660), timeout=5)
            await refused(alice, {"type": "hold", "call_id": call_a}, "call_id")  # split it off first

            # A hangs up: B and the web user talk on, on b's own legs
            await phone_a.hangup(number_a)
            split = await alice.wait_for("split")
            assert split == {**split, "conference_id": merged["conference_id"], "call_id": call_a,
                             "call_ids": [call_b], "reason": "ended", "over": True}  # fmt: skip
            await alice.wait_for("ended", call_id=call_a)
            wav_a = await phone_a.wait_for_recording(number_a)
            # one half second holding both tones is the mix (at load 11 a starved phone recorded only one)
            assert windows_with(wav_a, 660, 1000) >= 1, f"A did not hear B and the web user in {wav_a}"
            peer_b.clear()
            await wait_until(lambda: peer_b.heard(660, last=1.0), timeout=10)
            await asyncio.sleep(1.2)  # past what the web peer's jitter buffer held of the mix
            assert not hears(peer_b.pcm, RATE, 440), "A is still heard after hanging up"
            await asyncio.sleep(1.5)  # B records the web user alone
            await alice.request({"type": "hangup", "call_id": call_b})
            await phone_b.wait_for("state", call=number_b, state="DISCONNECTED")
            wav_b = await phone_b.wait_for_recording(number_b)
            assert windows_with(wav_b, 440, 1000) >= 1, f"B did not hear A and the web user in {wav_b}"
            rate, samples = read_wav(wav_b)
            tail = samples[-rate:]
            assert tone_ratio(tail, rate, 1000) >= 0.5 and tone_ratio(tail, rate, 440) < MIXED, (
                "B does not hear the web user alone after A left"
            )
            await wait_until(lambda: gateway.driver.calls == 0)
            # issue 67 item 1: b's legs fed the mixer for seconds; when they forwarded again, the
            # packets the mixer took were counted lost (252-303 of them, MOS 1.4-1.8 in the record)
            await wait_until(lambda: len(records) == 2)
            record_b = next(r for r in records if r.call_id == call_b)
            lost = {name: leg.packets_lost for name, leg in record_b.legs.items()}
            assert all(count <= 5 for count in lost.values()), (lost, record_b)
        finally:
            await peer_a.close()
            await peer_b.close()


async def test_split_holds_the_party_and_the_other_talks_on(tmp_path: Path) -> None:
    async with (
        two_phones(tmp_path) as (phone_a, phone_b, gateway),
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer_a, peer_b = WebPeer(1000), WebPeer(1000)
        try:
            call_a, call_b, number_a, number_b, _ = await merged_calls(
                alice, phone_a, phone_b, (peer_a, peer_b)
            )
            await wait_until(lambda: hears(peer_b.pcm, RATE, 440, 660), timeout=10)
            # A records the mix a while before the split (two full runs at load 9-19 found no window
            # of B and the web user together in A's recording when the split came at once)
            await asyncio.sleep(2.0)
            # split b, the call whose leg carried the mix: b is held, a goes on on its own legs
            await alice.request({"type": "split", "call_id": call_b})
            split = await alice.wait_for("split")
            assert split == {
                **split,
                "call_id": call_b,
                "call_ids": [call_a],
                "reason": "split",
                "over": True,
            }
            assert (await alice.wait_for("held", call_id=call_b))["by"] == "local"
            await phone_b.wait_for("media", call=number_b, status="remote_hold")
            peer_a.clear()
            await wait_until(lambda: peer_a.heard(440, last=1.0), timeout=10)
            await asyncio.sleep(1.2)  # past what the web peer's jitter buffer held
            assert not hears(peer_a.pcm, RATE, 660), "the split party is still heard"
            await asyncio.sleep(1.5)  # A records the web user alone
            # b is an ordinary held call again: resumed, it talks to the web user on its own legs
            await alice.request({"type": "hold", "call_id": call_a})
            await alice.wait_for("held", call_id=call_a)
            await alice.request({"type": "resume", "call_id": call_b})
            await phone_b.wait_for("media", call=number_b, status="active")
            peer_b.clear()
            await wait_until(lambda: peer_b.heard(660, last=1.0), timeout=10)
            for call_id, phone, number in (call_a, phone_a, number_a), (call_b, phone_b, number_b):
                await alice.request({"type": "hangup", "call_id": call_id})
                await phone.wait_for("state", call=number, state="DISCONNECTED")
            wav_a = await phone_a.wait_for_recording(number_a)
            assert windows_with(wav_a, 660, 1000) >= 1, f"A did not hear B and the web user in {wav_a}"
            await wait_until(lambda: gateway.driver.calls == 0)
        finally:
            await peer_a.close()
            await peer_b.close()


@asynccontextmanager
async def merged_page(
    url: str, phone_a: DeskPhone, phone_b: DeskPhone
) -> AsyncIterator[tuple[WebUser, tuple[str, str, int, int, dict[str, Any]]]]:
    """alice's page on `url` in a three-way call with A and B (`merged_calls`), hearing both; the page
    goes on exit (its socket and RTCPeerConnections closed together)."""
    peers = WebPeer(1000), WebPeer(1000)
    alice = WebUser(url, "alice", ALICE_SECRET)
    await alice.__aenter__()
    try:
        merged = await merged_calls(alice, phone_a, phone_b, peers)
        await wait_until(lambda: hears(peers[1].pcm, RATE, 440, 660), timeout=10)
        yield alice, merged
    finally:
        await asyncio.gather(alice.close(), *(peer.close() for peer in peers))


async def reattach_merged(again: WebUser, carrier: str, other: str, peers: tuple[WebPeer, WebPeer]) -> None:
    """The page back reattaches both calls (the carrier first) with new RTCPeerConnections and is told
    `merged` again, the carrier first."""
    for call_id, peer in zip((carrier, other), peers, strict=True):
        await again.request({"type": "reattach", "call_id": call_id, "sdp": await peer.offer()})
        await peer.accept((await again.wait_for("reattached", call_id=call_id))["sdp"])
    told = await again.wait_for("merged", timeout=10)
    assert told["call_ids"] == [carrier, other], told


async def test_a_page_that_comes_back_is_in_the_mix_again(tmp_path: Path) -> None:
    """The page goes mid-conference (socket and RTCPeerConnections closed) and logs in again with its
    token: it reattaches both calls with new RTCPeerConnections (their codec may differ from before: the
    SIP leg's first), the carrier's new web leg is put in the mix again and the page is told `merged`
    again; it hears both phones, and both phones hear its new tone."""

    def reconnecting(phone_a: DeskPhone, phone_b: DeskPhone) -> Config:
        return gateway_config(
            None, alice_outbound=(phone_a.uri, phone_b.uri), web_auth={"reconnect_grace": 20}
        )

    async with two_phones(tmp_path, reconnecting) as (phone_a, phone_b, gateway):
        async with merged_page(gateway.http_url, phone_a, phone_b) as (alice, merged):
            call_a, call_b, number_a, number_b, _ = merged
        again_a, again_b = WebPeer(1300), WebPeer(1300)
        try:
            async with WebUser(gateway.http_url, "alice", "", token=alice.token) as again:
                await again.wait_for("calls")
                await reattach_merged(again, call_b, call_a, (again_b, again_a))
                await wait_until(lambda: hears(again_b.pcm, RATE, 440, 660), timeout=10)
                # both new connections up (under load the other's lagged the carrier's: a CI run's phone A
                # recorded no window of B and alice's new tone in the 2 s below)
                await asyncio.gather(again_a.connected(), again_b.connected())
                # and the new leg's tone in the mix for a second: once, at load 8, phone A recorded no
                # window of B with it in the 2 s after both connections were up
                three_way = gateway.driver.three_way
                await wait_until(lambda: (three_way.web_frames_mixed(call_b) or 0) >= 50, timeout=10)
                await asyncio.sleep(2.0)  # the phones record the mix with the new tone
                for call_id, phone, number in (call_a, phone_a, number_a), (call_b, phone_b, number_b):
                    await again.request({"type": "hangup", "call_id": call_id})
                    await phone.wait_for("state", call=number, state="DISCONNECTED")
        finally:
            await asyncio.gather(again_a.close(), again_b.close())
        assert windows_with(await phone_a.wait_for_recording(number_a), 660, 1300) >= 1, "A: no B and alice"
        assert windows_with(await phone_b.wait_for_recording(number_b), 440, 1300) >= 1, "B: no A and alice"
        await wait_until(lambda: gateway.driver.calls == 0)
