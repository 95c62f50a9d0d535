"""Unmodified JsSIP 3.13 and SIP.js 0.21 in headless Chromium keep their call when their WebSocket is lost
(issue 34 item 2, RFC 5626), against a whole gateway and the pjsua2 desk phone.

alice's library calls the phone and hears its 440 Hz tone; then its WebSocket closes under it. JsSIP
reconnects by itself and REGISTERs again with the same +sip.instance; SIP.js, as an application's
onDisconnect does, reconnects and REGISTERs its same Contact. The gateway kept the call meanwhile (the
phone never saw a BYE, the audio went on) and moves its dialog to the new socket: the library's ICE
restart re-INVITE (what it sends after a network change) is answered over it and the audio flows on the
restarted path, and the phone's BYE reaches the library there (the library's call ends `remote`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.softphones import Library
from tests.e2e.websip.test_sip_websocket import no_calls, realm_of, websocket_config
from tests.e2e.websip.test_softphone_ice_restart import _restarts_in_place
from tests.e2e.websip.test_softphone_libraries import LIBRARIES
from tests.e2e.websip.test_softphone_library_parity import library_calls, library_on


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_library_keeps_its_call_through_a_lost_websocket(library: Library, tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        library_on(websocket_config(phone.address), library) as (gateway, softphone),
    ):
        assert gateway.web_sip is not None
        number = await library_calls(softphone, phone, "2000", realm_of(gateway))
        await softphone.hears(440)

        await softphone.drop_socket()
        await softphone.wait_for("disconnected")
        await softphone.wait_for("registered", timeout=20)  # on a new WebSocket
        assert len(gateway.web_sip.lost) == 0, "the call did not follow the library to its new socket"
        assert not phone.seen("state", call=number, state="DISCONNECTED")
        assert gateway.driver.calls == 1
        await softphone.hears(440)  # the media never depended on the socket

        # the library's own request over the new socket: its ICE restart (a network change)
        await _restarts_in_place(softphone, gateway)

        # the phone's BYE goes to the library over the new socket
        await asyncio.sleep(1.0)
        await phone.hangup(number)
        ended = await softphone.wait_for("ended", timeout=15)
        assert ended["originator"] == "remote", ended
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert await no_calls(gateway)
