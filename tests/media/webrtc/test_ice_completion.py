"""``ice_completion.prompt_ice_completion``: two aiortc peers on loopback report ICE connected as soon as
the nominated pair's check succeeded, not at aioice's next 20 ms pacing tick (issue 14 goal 3); the hook
is aioice 0.13's ``connect()`` with only that wait changed, so it fails loudly if aioice changes."""

from __future__ import annotations

import asyncio
import inspect
import time

import aioice.stun
import pytest
from aioice import Connection
from aiortc import RTCConfiguration, RTCPeerConnection

from gateway.media.webrtc import aiortc_hooks, ice_completion


def test_connect_is_still_the_one_the_hook_copies() -> None:
    source = inspect.getsource(Connection.connect)
    for line in (
        "self._pair_remote_candidate(remote_candidate)",
        "self._unfreeze_initial()",
        "self.check_incoming(*early_check)",
        "self._early_checks_done = True",
        "if not self._check_periodic():",
        "await asyncio.sleep(0.02)",
        "res = await self._check_list_state.get()",
        "self._query_consent_task = asyncio.create_task(self.query_consent())",
    ):
        assert line in source, line


async def _pair(hooked: bool) -> tuple[float, float]:
    """Two peers connect; (seconds from the last check's success to ICE completed, on each side)."""
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for pc in (a, b):
            pc.addTransceiver("audio", "sendrecv")
            aiortc_hooks.restrict_host_addresses(pc, ["127.0.0.1"])
            if hooked:
                ice_completion.prompt_ice_completion(pc)
        succeeded: dict[int, float] = {}
        completed: dict[int, float] = {}
        for side, pc in enumerate((a, b)):
            connection = aiortc_hooks.ice_connection(pc)
            check_complete = connection.check_complete

            def on_check(pair: object, side: int = side, original: object = check_complete) -> None:
                succeeded[side] = time.perf_counter()
                original(pair)  # type: ignore[operator]

            connection.check_complete = on_check  # type: ignore[method-assign]
            pc.on(
                "iceconnectionstatechange",
                lambda pc=pc, side=side: (
                    completed.setdefault(side, time.perf_counter())
                    if pc.iceConnectionState == "completed"
                    else None
                ),
            )
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        async with asyncio.timeout(5):
            while len(completed) < 2 or a.connectionState != "connected":
                await asyncio.sleep(0.001)
        return completed[0] - succeeded[0], completed[1] - succeeded[1]
    finally:
        await a.close()
        await b.close()


async def test_ice_completes_when_the_checks_do(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pacing made 250 ms: a completion that waited for its tick would lag 125 ms on average, while
    # one at the check's outcome lags what the host's scheduler adds (ms, even on a loaded machine).
    monkeypatch.setattr(ice_completion, "ICE_PACING", 0.25)
    lags = [max(await _pair(hooked=True)) for _ in range(3)]
    assert max(lags) < 0.05, lags


async def test_without_the_hook_aioice_waits_for_its_pacing_tick() -> None:
    lags = [max(await _pair(hooked=False)) for _ in range(3)]
    assert max(lags) > 0.005, lags  # what the hook removes (fails if aioice stops doing it)


async def test_a_connection_that_cannot_connect_still_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.stun, "RETRY_MAX", 1)  # each check given up after 0.15 s
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.05)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    other = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for peer in (pc, other):
            peer.addTransceiver("audio", "sendrecv")
            aiortc_hooks.restrict_host_addresses(peer, ["127.0.0.1"])
        ice_completion.prompt_ice_completion(pc)
        await pc.setLocalDescription(await pc.createOffer())
        await other.setRemoteDescription(pc.localDescription)
        answer = await other.createAnswer()
        await other.close()  # nobody answers the checks
        await pc.setRemoteDescription(answer)
        await aiortc_hooks.ice_connection(pc).add_remote_candidate(None)  # end of candidates
        async with asyncio.timeout(5):
            while pc.iceConnectionState not in ("failed", "closed"):
                await asyncio.sleep(0.05)
        assert pc.iceConnectionState == "failed"
    finally:
        await pc.close()
