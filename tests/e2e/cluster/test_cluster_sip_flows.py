"""A SIP library's call survives its WebSocket coming back to another instance (issue 34 item 2, in a
cluster, no stickiness): two instances sharing a real Redis behind the Kamailio edge, the pjsua2 desk
phone, unmodified JsSIP and SIP.js in headless Chromium.

The library's WebSocket goes through a TCP front that, like HAProxy choosing by least connections with
no cookie, sends each new connection to the instance the test names. The phone calls alice through
Kamailio; her library answers on gw1. Its socket is dropped and its reconnect lands on gw2. gw2 finds in
Redis that gw1 holds the answered calls of the browser the REGISTER names (JsSIP's `+sip.instance`, SIP.js's
Contact) and relays the WebSocket there: gw1 moves the call's dialog to the relayed flow, the library's
ICE restart re-INVITE reaches gw1 through gw2, and the phone's BYE reaches the library the same way.
Before, the REGISTER was taken by gw2 and the call on gw1 waited for a flow that never came: after the
grace, BYE."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.softphones import Library, Softphone, require_softphones
from tests.e2e.cluster.cluster_harness import cluster, online
from tests.e2e.harness import wait_until
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD
from tests.e2e.websip.test_softphone_ice_restart import _restarts_in_place
from tests.e2e.websip.test_softphone_libraries import LIBRARIES
from tests.signaling.browser import chromium_page

SIP_WEBSOCKET = {
    "sip": {"websocket": {}},
    "alice_extra": {"sip_auth": {"password": ALICE_SIP_PASSWORD}},
    "web_auth": {"reconnect_grace": 30},
}


class Front:
    """A TCP front on loopback: each new connection goes to ``target`` (host, port), bytes both ways."""

    def __init__(self) -> None:
        self.target: tuple[str, int] = ("127.0.0.1", 9)
        self.connections: list[tuple[str, int]] = []  # where each connection went, in order
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = self.target
        self.connections.append(target)
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._tasks.discard(task)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Front]:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


def http_address(gateway: Gateway) -> tuple[str, int]:
    return gateway.config.http.host, gateway.config.http.port


@contextlib.asynccontextmanager
async def three_instances(
    tmp_path: Path, library: Library
) -> AsyncIterator[tuple[Any, DeskPhone, Front, Softphone]]:
    """Three instances behind the Kamailio edge, the desk phone 2000, the front, and ``library`` in
    Chromium reaching the instances through the front."""
    require_desk_phone()
    require_softphones()
    async with (
        cluster(tmp_path, 3, fronts=True, **SIP_WEBSOCKET) as c,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        Front().running() as front,
        chromium_page() as page,
        Softphone(page, library, origin=front.url) as softphone,
    ):
        yield c, phone, front, softphone


async def answered_on(
    gateway: Gateway, aor: str, phone: DeskPhone, front: Front, softphone: Softphone
) -> int:
    """The library registered through the front on ``gateway``, called by the phone at ``aor``, answering
    and hearing its tone: the phone's call number."""
    front.target = http_address(gateway)
    await softphone.start(
        front.url.replace("http", "ws", 1) + "/sip", "sip:alice@127.0.0.1", ALICE_SIP_PASSWORD
    )
    await softphone.wait_for("registered")
    await wait_until(lambda: online(gateway, "alice"))
    number = await phone.call(aor)
    await softphone.wait_for("incoming", timeout=15)
    await softphone.answer()
    await phone.wait_for("state", call=number, state="CONFIRMED", timeout=15)
    await softphone.wait_for("confirmed")
    await softphone.hears(440)
    return number


@pytest.mark.parametrize("library", LIBRARIES)
async def test_a_library_back_on_another_instance_keeps_its_call(library: Library, tmp_path: Path) -> None:
    async with three_instances(tmp_path, library) as (c, phone, front, softphone):
        gw1, gw2, _ = c.gateways
        assert gw1.web_sip is not None and gw2.web_sip is not None
        number = await answered_on(gw1, c.edge.aor("1001"), phone, front, softphone)
        assert gw1.driver.calls == 1

        front.target = http_address(gw2)  # the reconnect goes to the other instance
        await softphone.drop_socket()
        await softphone.wait_for("disconnected")
        await softphone.wait_for("registered", timeout=20)
        assert front.connections[-1] == http_address(gw2), front.connections
        # gw2 relayed the socket to gw1, whose session took the new flow: nothing waits any longer
        await wait_until(lambda: len(gw1.web_sip.lost) == 0, timeout=5)
        assert len(gw2.web_sip.registrar) == 0, "gw2 took the REGISTER instead of relaying it"
        assert not phone.seen("state", call=number, state="DISCONNECTED")
        assert gw1.driver.calls == 1 and gw2.driver.calls == 0
        await softphone.hears(440)

        # the library's own re-INVITE over the relayed socket: its ICE restart, answered by gw1
        await _restarts_in_place(softphone, gw1)

        # the phone's BYE reaches the library through gw2's relay
        await phone.hangup(number)
        ended = await softphone.wait_for("ended", timeout=15)
        assert ended["originator"] == "remote", ended
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        await wait_until(lambda: gw1.driver.calls == 0)


async def test_a_library_back_on_another_instance_reaches_its_call_on_a_draining_one(tmp_path: Path) -> None:
    """A drain that keeps a SIP library's call where it is until it ends (gw1 as an instance of a release
    before the drain handed them over, issue 65 item 4: it writes no handover of a library's call).
    Before, a library whose socket dropped meanwhile came back on another instance, was relayed
    to the draining one and refused there (503, like any new socket): its call waited for a flow that
    never came, then BYE. The relay's signed mark (X-Gateway-Relayed) now lets the draining instance take
    the socket for the call it holds: the REGISTER moves the call to the relayed flow, the library hears
    the phone again and the phone's BYE reaches it."""
    async with three_instances(tmp_path, "jssip") as (c, phone, front, softphone):
        gw1, gw2, _ = c.gateways
        assert gw1.web_sip is not None and gw2.web_sip is not None
        gw1.driver.takeovers.on_web_sip = None  # (no handover of a library's call: the older release's)
        number = await answered_on(gw1, c.edge.aor("1001"), phone, front, softphone)

        gw1.drain()
        await wait_until(lambda: gw1.ops.draining)
        await asyncio.sleep(0.5)  # the drain's sweeps: the call's flow is kept, its call goes on
        assert gw1.driver.calls == 1
        front.target = http_address(gw2)
        await softphone.drop_socket()
        await softphone.wait_for("disconnected")
        await softphone.wait_for("registered", timeout=20)
        assert front.connections[-1] == http_address(gw2), front.connections
        await wait_until(lambda: len(gw1.web_sip.lost) == 0, timeout=5)  # the relayed flow took the call
        assert len(gw2.web_sip.registrar) == 0, "gw2 took the REGISTER instead of relaying it"
        await asyncio.sleep(1.0)  # more sweeps: the relayed flow carries the call, it stays
        assert not phone.seen("state", call=number, state="DISCONNECTED")
        await softphone.hears(440)

        await phone.hangup(number)
        ended = await softphone.wait_for("ended", timeout=15)
        assert ended["originator"] == "remote", ended
