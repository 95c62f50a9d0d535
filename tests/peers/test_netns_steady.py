"""A ClientNetwork made while a Chromium page of another test loads (peers/netns.py): the page's scripts
still arrive. Chromium fails the requests that wait for a connection with ERR_NETWORK_CHANGED when an
address comes in its namespace (its pool of six connections per host full, the seventh script waits);
the page's load holds the root namespace steady and the network waits for it."""

from __future__ import annotations

import asyncio

from peers.netns import ClientNetwork, require_netns
from tests.signaling.browser import chromium_page

SCRIPTS = 10  # more than Chromium's six connections per host: four wait for one
PAGE = b"<!doctype html><title>steady</title>" + b"".join(
    b'<script src="/%d.js"></script>' % n for n in range(SCRIPTS)
)
SCRIPT = b"window.loaded = (window.loaded || 0) + 1;"
HOLD = 2.0  # each script's answer comes this long after its request, the network's change in between
SITE = 203  # this file's namespace (10.203.<band>.0/24): no other test's


async def _serve(asked: asyncio.Event, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:  # keep-alive, as the gateway's HTTP server
            request = await reader.readuntil(b"\r\n\r\n")
            body, kind = (SCRIPT, b"text/javascript") if b".js " in request else (PAGE, b"text/html")
            if body is SCRIPT:
                asked.set()
                await asyncio.sleep(HOLD)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (kind, len(body))
            writer.write(head + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def test_a_network_made_while_a_page_loads_waits_for_the_load() -> None:
    require_netns()
    asked = asyncio.Event()
    server = await asyncio.start_server(lambda r, w: _serve(asked, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    network = ClientNetwork(site=SITE, families=("IP4", "IP6"))
    failed: list[str] = []
    made: asyncio.Future[ClientNetwork] | None = None
    try:
        async with chromium_page() as page:
            page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
            load = asyncio.ensure_future(page.goto(f"http://127.0.0.1:{port}/"))
            await asyncio.wait_for(asked.wait(), 10)
            made = asyncio.ensure_future(asyncio.to_thread(network.__enter__))
            await asyncio.wait_for(load, 15)
            during = made.done()
            await asyncio.wait_for(made, 15)
            assert failed == [], failed
            assert await page.evaluate("window.loaded") == SCRIPTS
            assert not during, "the network was made while the page was still loading"
    finally:
        if made is not None:
            await asyncio.wait([made])
        network.__exit__(None, None, None)
        server.close()
        await server.wait_closed()
