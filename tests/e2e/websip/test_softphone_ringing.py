"""The browser SIP libraries (JsSIP 3.13, SIP.js 0.21) while their call rings at the desk phone.

Early media: the phone answers the library's call with 183 Session Progress and SDP and plays its tone
before answering; the gateway sends 183 with its WebRTC answer over SIP WebSocket, and the library hears
the tone while the call is still ringing, then the 200 connects the call with the tone still heard.
CANCEL: the library hangs up while the phone rings; its CANCEL ends the call, and the gateway cancels its
INVITE to the phone (487)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.softphones import Library, Softphone, require_softphones, softphone_server
from tests.e2e.harness import running_gateway
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD, no_calls, realm_of, websocket_config
from tests.e2e.websip.test_softphone_libraries import LIBRARIES, allowing
from tests.signaling.browser import chromium_page


@asynccontextmanager
async def registered(
    library: Library, tmp_path: Path, **phone: Any
) -> AsyncIterator[tuple[Softphone, DeskPhone, Gateway, str]]:
    """The library registered as alice over SIP WebSocket, a desk phone (2000) that rings, the gateway."""
    require_softphones()
    require_desk_phone()
    async with (
        softphone_server() as origin,
        DeskPhone(tmp_path, user="2000", answer="ring", **phone) as desk,
        running_gateway(allowing(websocket_config(desk.address), origin)) as gateway,
        chromium_page() as page,
    ):
        realm = realm_of(gateway)
        softphone = Softphone(page, library)
        await softphone.open(origin)
        await softphone.start(
            gateway.http_url.replace("http", "ws", 1) + "/sip", f"sip:alice@{realm}", ALICE_SIP_PASSWORD
        )
        await softphone.wait_for("registered")
        yield softphone, desk, gateway, realm


@pytest.mark.parametrize("library", LIBRARIES)
async def test_library_hears_early_media_before_the_answer(library: Library, tmp_path: Path) -> None:
    async with registered(library, tmp_path, tone=440) as (softphone, phone, gateway, realm):
        await softphone.call(f"sip:2000@{realm}")
        incoming = await phone.wait_for("incoming", timeout=15)
        await phone.send("answer", call=incoming["call"], code=183)
        progress = await softphone.wait_for("progress", status=183)
        assert progress["status"] == 183
        await softphone.hears(440)  # early media, before any 200
        assert not [e for e in await softphone.events() if e["type"] in ("accepted", "confirmed")]

        await phone.send("answer", call=incoming["call"], code=200)
        await softphone.wait_for("confirmed")
        await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
        await softphone.hears(440)
        await softphone.hangup()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        await softphone.wait_for("ended")
        assert await no_calls(gateway)


@pytest.mark.parametrize("library", LIBRARIES)
async def test_library_cancels_a_ringing_call(library: Library, tmp_path: Path) -> None:
    async with registered(library, tmp_path) as (softphone, phone, gateway, realm):
        await softphone.call(f"sip:2000@{realm}")
        incoming = await phone.wait_for("incoming", timeout=15)
        await softphone.wait_for("progress", status=180)
        await softphone.hangup()  # CANCEL over the WebSocket
        state = await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        assert state["code"] == 487, state  # the gateway cancelled its INVITE to the phone
        ended = await softphone.wait_for(("failed", "ended"))
        expected = (
            {"type": "failed", "cause": "Canceled"}
            if library == "jssip"
            else {"type": "ended", "originator": "local"}
        )
        assert {k: ended.get(k) for k in expected} == expected, ended
        assert await no_calls(gateway)
