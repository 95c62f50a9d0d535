"""A peer connection whose close never ends does not hold a web leg's close (or the gateway's shutdown)
for ever: `aiortc_hooks.close_peer` bounds it.

The way it happened (a full run hung 8 minutes in `RTCRtpReceiver.stop`): aiortc's receiver waits for
its RTCP task's `exited` event, which that task sets only when it ends by cancellation. Here two real
aiortc peers connect over loopback with audio, then the receiver's RTCP report raises: its task dies
with the exception and `pc.close()` never returns."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from gateway.media.webrtc import aiortc_hooks


async def _connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    caller, callee = RTCPeerConnection(), RTCPeerConnection()
    caller.addTrack(AudioStreamTrack())
    callee.addTransceiver("audio", direction="recvonly")
    await caller.setLocalDescription(await caller.createOffer())
    await callee.setRemoteDescription(caller.localDescription)
    await callee.setLocalDescription(await callee.createAnswer())
    await caller.setRemoteDescription(callee.localDescription)
    for _ in range(200):
        if callee.connectionState == "connected":
            break
        await asyncio.sleep(0.05)
    assert callee.connectionState == "connected"
    return caller, callee


async def test_a_close_that_never_ends_is_given_up(caplog: pytest.LogCaptureFixture) -> None:
    caller, callee = await _connected_pair()
    receiver = callee.getReceivers()[0]
    died = asyncio.Event()

    async def failing(packet: object) -> None:
        died.set()
        raise RuntimeError("an RTCP report failed")

    receiver._send_rtcp = failing  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(died.wait(), 10)  # the receiver's RTCP task is dead now
        await asyncio.sleep(0.1)
        with pytest.raises(TimeoutError):  # what the web leg's close did before
            await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(callee.close())), 2)
        with caplog.at_level(logging.WARNING, logger="gateway.media.webrtc.aiortc_hooks"):
            loop = asyncio.get_running_loop()
            started = loop.time()
            await aiortc_hooks.close_peer(callee, "c1", timeout=0.5)
            assert loop.time() - started < 2
        assert any("did not close within 0.5 s" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        await caller.close()


async def test_a_peer_connection_that_closes_is_closed() -> None:
    caller, callee = await _connected_pair()
    await aiortc_hooks.close_peer(callee, "c1", timeout=5)
    assert callee.connectionState == "closed"
    await caller.close()


async def test_a_close_left_to_finish_has_its_failure_read(caplog: pytest.LogCaptureFixture) -> None:
    """A close that outlived its bound and then failed was a task nobody read: "Task exception was never
    retrieved", logged as an ERROR when collected (a full run's failure). The failure here is the one
    seen: another ``pc.close()`` waiting on aiortc's "closed" future is cancelled, which cancels that
    future, and the first close ends in InvalidStateError."""
    caller, callee = await _connected_pair()
    with caplog.at_level(logging.WARNING):
        await aiortc_hooks.close_peer(callee, "c1", timeout=0)  # left to finish
        other = asyncio.ensure_future(callee.close())
        await asyncio.sleep(0)
        other.cancel()
        for _ in range(100):
            if callee.connectionState == "closed":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        gc.collect()
        await asyncio.sleep(0)
    assert callee.connectionState == "closed"
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()], caplog.text
    assert any(
        "closing the peer connection failed: InvalidStateError" in r.getMessage() for r in caplog.records
    )
    await caller.close()
