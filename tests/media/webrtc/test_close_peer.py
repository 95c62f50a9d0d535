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


async def test_a_close_under_way_in_aiortc_is_not_broken_by_cancelling_ours(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The other order (test_fuzz_gateway's rare failure): the far end's DTLS close makes aiortc start its
    own close task; ours, asked after it, waited on aiortc's "closed" future; when ours was cancelled (a
    shutdown cancelling what is left), that future was cancelled with it and aiortc's own close ended in
    InvalidStateError, in a task nobody reads. Ours now waits on aiortc's task itself, shielded."""
    caller, callee = await _connected_pair()
    await caller.close()  # DTLS close_notify: the callee's aiortc begins its own close
    for _ in range(100):
        if getattr(callee, "_RTCPeerConnection__closeTask", None) is not None:
            break
        await asyncio.sleep(0.01)
    own = callee._RTCPeerConnection__closeTask  # type: ignore[attr-defined]
    assert own is not None and not own.done(), "aiortc did not start its own close"
    with caplog.at_level(logging.WARNING):
        await aiortc_hooks.close_peer(callee, "c1", timeout=0)  # left to finish
        aiortc_hooks._CLOSING[callee].cancel()  # what a shutdown does to the tasks left
        await asyncio.wait({own}, timeout=5)
        assert own.done() and not own.cancelled() and own.exception() is None, own
        gc.collect()
        await asyncio.sleep(0)
    assert callee.connectionState == "closed"
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()], caplog.text


async def test_a_throwaway_close_cancelled_leaves_aiortcs_own_close_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The offer check's throwaway peer connection (offer_check.py) closed itself in its `finally` with a
    plain ``pc.close()``: when aiortc had begun its own close (transports the offer left unused) and the
    check's task was cancelled (the fuzzer's socket gone), aiortc's close failed unread, the full run's
    test_fuzz_gateway failure. ``close_throwaway`` waits on aiortc's own close, shielded."""
    caller, callee = await _connected_pair()
    await caller.close()
    for _ in range(100):
        if aiortc_hooks.begun_by_aiortc(callee) is not None:
            break
        await asyncio.sleep(0.01)
    own = aiortc_hooks.begun_by_aiortc(callee)
    assert own is not None, "aiortc did not start its own close"
    with caplog.at_level(logging.WARNING):
        checking = asyncio.ensure_future(aiortc_hooks.close_throwaway(callee))
        await asyncio.sleep(0)
        checking.cancel()  # the request's task, cancelled while it closed its throwaway
        await asyncio.wait({own}, timeout=5)
        assert own.done() and not own.cancelled() and own.exception() is None, own
        gc.collect()
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()], caplog.text
