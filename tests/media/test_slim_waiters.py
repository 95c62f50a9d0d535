"""``slim_waiters``: a slimmed Event, Queue, queue.Queue and threading.Event still wake every waiter and
keep every item (the lists stand in for the deques), a primitive in use is left alone, and two real
aiortc peers connected after their peer connections were slimmed carry media and close."""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from gateway.media import slim_waiters
from gateway.media.slim_waiters import Waiters
from gateway.media.webrtc import aiortc_hooks


async def test_a_slimmed_event_wakes_its_waiters() -> None:
    event = asyncio.Event()
    assert slim_waiters.slim_primitive(event) == 1
    assert type(event._waiters) is Waiters
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert len(event._waiters) == 3
    event.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True, True]
    assert not event._waiters
    event.clear()
    cancelled = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert not event._waiters  # a cancelled waiter is removed


async def test_a_slimmed_queue_keeps_order_and_wakes_getters_and_putters() -> None:
    items: asyncio.Queue[int] = asyncio.Queue()
    assert slim_waiters.slim_primitive(items) == 4  # getters, putters, items, the finished Event
    getters = [asyncio.ensure_future(items.get()) for _ in range(2)]
    await asyncio.sleep(0)
    items.put_nowait(1)
    items.put_nowait(2)
    assert await asyncio.wait_for(asyncio.gather(*getters), 1) == [1, 2]
    for value in (3, 4, 5):
        items.put_nowait(value)
    assert [items.get_nowait() for _ in range(3)] == [3, 4, 5]
    bounded: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    slim_waiters.slim_primitive(bounded)
    bounded.put_nowait(1)
    putter = asyncio.ensure_future(bounded.put(2))
    await asyncio.sleep(0)
    assert not putter.done()
    assert bounded.get_nowait() == 1
    await asyncio.wait_for(putter, 1)
    assert bounded.get_nowait() == 2
    for _ in range(5):  # task_done / join use the finished Event
        items.task_done()
    await asyncio.wait_for(items.join(), 1)


def test_slimmed_threading_primitives_wake_another_thread() -> None:
    work: queue.Queue[int | None] = queue.Queue()
    error = threading.Event()
    assert slim_waiters.slim_primitive(work) == 4  # the items and its three conditions' waiters
    assert slim_waiters.slim_primitive(error) == 1
    got: list[int] = []

    def worker() -> None:
        while (item := work.get()) is not None:
            got.append(item)
        error.set()

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.05)  # the worker waits in get(): its waiter is in the slimmed list
    for value in range(5):
        work.put(value)
    work.put(None)
    assert error.wait(2)
    thread.join(2)
    assert got == [0, 1, 2, 3, 4]


async def test_primitives_in_use_and_other_types_are_left_alone() -> None:
    event = asyncio.Event()
    waiter = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    assert slim_waiters.slim_primitive(event) == 0  # a waiter is in it
    assert type(event._waiters) is collections.deque
    event.set()
    await waiter
    held: queue.Queue[int] = queue.Queue()
    replaced: list[int] = []
    with held.mutex:  # as while another thread's get() or put() holds it
        other = threading.Thread(target=lambda: replaced.append(slim_waiters.slim_primitive(held)))
        other.start()
        other.join(2)
    assert replaced == [0] and type(held.queue) is collections.deque
    assert slim_waiters.slim_primitive(asyncio.PriorityQueue()) == 0  # a heap, not a deque
    assert slim_waiters.slim_primitive(collections.deque()) == 0


async def test_peer_connections_slimmed_before_connecting_carry_media() -> None:
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        a.addTrack(AudioStreamTrack())
        b.addTransceiver("audio", "recvonly")
        for pc in (a, b):
            aiortc_hooks.restrict_host_addresses(pc, ["127.0.0.1"])
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        replaced = [slim_waiters.slim_peer_connection(pc) for pc in (a, b)]
        assert min(replaced) >= 15, replaced  # sender, receiver, track, ICE: most of the ~25 per call
        assert [slim_waiters.slim_peer_connection(pc) for pc in (a, b)] == [0, 0]  # idempotent
        track = b.getReceivers()[0].track
        async with asyncio.timeout(10):
            frame = await track.recv()  # ICE, DTLS, RTP, the jitter buffer and the decoder thread
        assert getattr(frame, "sample_rate", None) == 48000
        assert a.connectionState == b.connectionState == "connected"
    finally:
        await a.close()
        await b.close()
    assert a.connectionState == b.connectionState == "closed"


async def test_a_peer_connection_is_slimmed_in_the_next_loop_iteration_once() -> None:
    """slim_soon: not on the answer's path (issue 38), once however often asked; a closed one is left."""
    pcs = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(3)]
    pc, closed, control = pcs
    try:
        for each in pcs:
            each.addTransceiver("audio")
        for each in (pc, closed):
            slim_waiters.slim_soon(each)
            slim_waiters.slim_soon(each)
        await closed.close()

        def waiters(of: RTCPeerConnection) -> list[type]:
            events = [v for v in vars(of.getSenders()[0]).values() if isinstance(v, asyncio.Event)]
            return [type(e._waiters) for e in events]

        assert waiters(pc) and set(waiters(pc)) == {collections.deque}  # not yet
        await asyncio.sleep(0)
        assert set(waiters(pc)) == {slim_waiters.Waiters}
        assert slim_waiters.slim_peer_connection(pc) == 0  # all done, in one go
        assert slim_waiters.slim_peer_connection(control) > 0
        assert set(waiters(closed)) == {collections.deque}
    finally:
        for each in pcs:
            await each.close()


class _Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.got.append(data)


async def test_a_slimmed_datagram_transport_sends_what_it_had_to_buffer() -> None:
    loop = asyncio.get_running_loop()
    receiver, sink = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0))
    sender, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        assert slim_waiters.slim_transport(sender) == 1
        assert type(sender._buffer) is Waiters  # type: ignore[attr-defined]
        address = receiver.get_extra_info("sockname")
        sender._buffer.append((b"queued", address))  # type: ignore[attr-defined]  # as a full socket
        sender._buffer_size += 6  # type: ignore[attr-defined]
        loop._add_writer(sender._sock_fd, sender._sendto_ready)  # type: ignore[attr-defined]
        sender.sendto(b"after", address)  # behind the queued one
        async with asyncio.timeout(2):
            while len(sink.got) < 2:
                await asyncio.sleep(0.01)
        assert sink.got == [b"queued", b"after"]
    finally:
        sender.close()
        receiver.close()
