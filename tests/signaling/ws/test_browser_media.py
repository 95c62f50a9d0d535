"""A real call through the signaling: Chromium (softphone page) <-> an aiortc peer standing in for the
gateway's web leg. Proves that the client library's offer/answer and trickled candidates produce a
working WebRTC connection, that the page shows it, and that audio flows both ways (level meters).

The stand-in is peers/webpeer.py's `WebPeer` (aiortc on 127.0.0.1, plays a 440 Hz tone).
"""

from __future__ import annotations

import array
import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp.test_utils import TestServer
from aiortc.sdp import candidate_from_sdp

from gateway.signaling.events import Connected, Ringing
from gateway.signaling.service import SelectiveEarlyAnswerSink, SessionSink
from peers.webpeer import WebPeer
from sdp import IceCandidateInit
from tests.signaling.browser import Page, chromium_page, expect, log_in, read_meter, wait_for
from tests.signaling.harness import ALICE_SECRET, FakeCallService, make_harness

TONE_HZ = 440.0


@dataclass
class AiortcCallService(FakeCallService):
    """Answers every call with an aiortc peer; trickled browser candidates go to that peer. The page's
    `call` asks for `early_answer`: the peer's answer goes as the early answer, as the gateway's does."""

    fake_early_answers: bool = False
    peers: dict[str, WebPeer] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    candidates: int = 0

    async def dial(
        self,
        session: SessionSink,
        to: str,
        sdp: str,
        headers: tuple[tuple[str, str], ...] = (),
        transfer_of: str | None = None,
    ) -> str:
        call_id = await super().dial(session, to, sdp, headers, transfer_of)
        peer = WebPeer(freq=TONE_HZ)
        self.peers[call_id] = peer
        self.tasks.append(asyncio.create_task(self._answer(session, call_id, peer, sdp)))
        return call_id

    async def _answer(self, session: SessionSink, call_id: str, peer: WebPeer, offer: str) -> None:
        answer = await peer.answer(offer)
        if isinstance(session, SelectiveEarlyAnswerSink) and session.wants_early_answer(call_id):
            session.web_answer(call_id, answer)  # sent as `answer` once the `ack` is out
        await asyncio.sleep(0.2)  # after the `ack`, as a call layer would
        await session.send_event(Ringing(call_id))
        await session.send_event(Connected(call_id, answer))  # its sdp dropped after an early answer

    async def add_candidate(
        self, session: SessionSink, call_id: str, candidate: IceCandidateInit | None
    ) -> None:
        await super().add_candidate(session, call_id, candidate)
        peer = self.peers[call_id]
        if candidate is None or candidate.candidate is None:
            return
        found = candidate_from_sdp(candidate.candidate.to_sdp().removeprefix("candidate:"))
        found.sdpMid = candidate.sdp_mid
        found.sdpMLineIndex = candidate.sdp_mline_index
        if peer.pc.remoteDescription is None:
            await wait_for(lambda: peer.pc.remoteDescription is not None, 5)
        await peer.pc.addIceCandidate(found)
        self.candidates += 1

    async def hangup(self, session: SessionSink, call_id: str) -> None:
        await super().hangup(session, call_id)
        await self.peers.pop(call_id).close()

    async def close(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for peer in self.peers.values():
            await peer.close()


def rms(samples: array.array[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


@pytest.fixture
async def served() -> AsyncIterator[tuple[AiortcCallService, str]]:
    service = AiortcCallService()
    harness = make_harness(calls=service)
    server = TestServer(harness.app, host="127.0.0.1")
    await server.start_server()
    yield service, str(server.make_url("/"))
    await server.close()
    await service.close()


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with chromium_page() as page:
        yield page


async def test_call_connects_and_audio_flows_both_ways(
    served: tuple[AiortcCallService, str], page: Page
) -> None:
    service, url = served
    await page.goto(url)
    await log_in(page, "alice", ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice (demo)")
    await page.locator("#number").fill("2000")
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    await wait_for(lambda: service.candidates > 0)  # the browser's candidates trickled to the peer
    assert await read_meter(page, "remote-level", 0.02) >= 0.02, "the gateway side's tone is not heard"
    peer = service.peers["c1"]
    await wait_for(lambda: len(peer.pcm) > 8000, 10)  # a second of the browser's audio arrived
    assert rms(peer.pcm[-8000:]) > 100, "the browser's (fake, beeping) microphone is silent at the peer"
    await page.screenshot(path="/tmp/softphone-connected-1280.png", full_page=True)
    await page.get_by_role("button", name="Hang up").click()
    await wait_for(lambda: ("hangup", "c1") in service.calls)
    await expect(page.locator("#call-state")).to_have_text("No call")
