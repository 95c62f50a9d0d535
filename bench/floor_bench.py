"""The machine's floor for media_bench.py: what a do-nothing UDP forwarder costs under the same traffic.

Each "call" is two UDP flows of 50 packets/s (20 ms audio, 172-byte datagrams, random phase), as a bridged
call receives; the forwarder sends every datagram on unchanged. Two forwarders are measured, each in its own
process: an asyncio one (one event-loop wake-up per datagram, the Python path's model) and a raw epoll loop
in Python. Run it next to media_bench.py: on a shared VM, wake-ups cost more or less from one minute to the
next, and this says how much of a figure is the machine.

Run: python bench/floor_bench.py [1,10,50] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import select
import socket
import sys
import time
from multiprocessing.connection import Connection

PAYLOAD = b"\x80" + bytes(171)


def _generate(ports: list[int], seconds: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic() + 0.2
    events = sorted(
        (start + phase + i * 0.02, port)
        for port, phase in ((p, random.uniform(0, 0.02)) for p in ports)
        for i in range(int(seconds * 50))
    )
    for due, port in events:
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendto(PAYLOAD, ("127.0.0.1", port))


def _asyncio_forwarder(conn: Connection, flows: int, seconds: float) -> None:
    class Forward(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data, ("127.0.0.1", 9))

    async def main() -> float:
        loop = asyncio.get_running_loop()
        ports = []
        for _ in range(flows):
            transport, _ = await loop.create_datagram_endpoint(Forward, local_addr=("127.0.0.1", 0))
            ports.append(transport.get_extra_info("sockname")[1])
        conn.send(ports)
        await asyncio.sleep(0.5)
        cpu = time.process_time()
        await asyncio.sleep(seconds - 1)
        return time.process_time() - cpu

    conn.send(asyncio.run(main()))


def _epoll_forwarder(conn: Connection, flows: int, seconds: float) -> None:
    poller = select.epoll()
    sockets = {}
    for _ in range(flows):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        poller.register(sock.fileno(), select.EPOLLIN)
        sockets[sock.fileno()] = sock
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    conn.send([s.getsockname()[1] for s in sockets.values()])
    begin = time.monotonic() + 0.5
    end = begin + seconds - 1
    cpu = None
    while (now := time.monotonic()) < end:
        if cpu is None and now >= begin:
            cpu = time.process_time()
        for fd, _ in poller.poll(0.1):
            sock = sockets[fd]
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                out.sendto(data, ("127.0.0.1", 9))
    conn.send(time.process_time() - (cpu or 0.0))


def measure(kind: str, calls: int, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    target = _asyncio_forwarder if kind == "asyncio" else _epoll_forwarder
    forwarder = context.Process(target=target, args=(theirs, 2 * calls, seconds))
    forwarder.start()
    ports = mine.recv()
    generator = context.Process(target=_generate, args=(ports, seconds))
    generator.start()
    cpu: float = mine.recv()
    generator.join()
    forwarder.join()
    return cpu / (calls * (seconds - 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", nargs="?", default="1,10,50")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print("do-nothing UDP forwarders, CPU s per call-second (2 flows x 50 packets/s per call)")
    print(f"{'calls':>6}{'asyncio':>10}{'epoll':>10}")
    for calls in (int(c) for c in args.calls.split(",")):
        asyncio_cost = measure("asyncio", calls, args.seconds)
        epoll_cost = measure("epoll", calls, args.seconds)
        print(f"{calls:>6}{asyncio_cost:>10.4f}{epoll_cost:>10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
