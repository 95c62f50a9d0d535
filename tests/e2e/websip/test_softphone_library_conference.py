"""A three-way call mixed in the gateway for the unmodified browser SIP libraries (JsSIP 3.13, SIP.js 0.21
in headless Chromium), with nothing but the SIP they already send (issue 37 item 2):

- the library INVITEs a room's number (`rooms.numbers: {"3001": "conf"}`, the conference factory of
  RFC 4579 in spirit): the gateway routes it to its own listener, not the PBX, and the call joins the
  room's mix (gateway/runtime/rooms/);
- it transfers each phone there with a blind REFER (Refer-To: the room's number): the gateway REFERs the
  phone to the room at its own listener, the phone calls it and joins the mix; the phone's old call ends
  transferred (NOTIFY 200 to the library, then our BYE).

A (440 Hz) calls alice, her library answers and holds it, calls B (660 Hz), holds it, calls 3001 and
transfers A and B into it: the library hears both tones, A hears B and the page's beep, B hears A and the
beep. A hangs up: B and the library talk on.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from peers.audio import read_wav, rms, tone_ratio
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port
from peers.softphones import Library, Softphone
from tests.e2e.page_audio import FAKE_MIC_HZ
from tests.e2e.sip_interop.test_transfer import DOMAIN
from tests.e2e.softphone.test_three_way import MIXED, windows_with
from tests.e2e.websip.test_sip_websocket import no_calls, realm_of, websocket_config
from tests.e2e.websip.test_softphone_libraries import LIBRARIES
from tests.e2e.websip.test_softphone_library_parity import (
    library_calls,
    library_on,
    notified,
    phone_calls_library,
)

ROOM_NUMBER = "3001"


async def into_the_room(softphone: Softphone, phone: DeskPhone, number: int, call: int, realm: str) -> int:
    """The library REFERs its ``call`` with ``phone`` (the phone's ``number``) to the room: the phone is
    REFERred to the room at the gateway's own listener, calls it, and the library's call ends transferred.
    The phone's number for its call in the room."""
    await softphone.transfer(f"sip:{ROOM_NUMBER}@{realm}", call=call)
    assert (await softphone.wait_for("referAccepted", call=call))["status"] == 202
    request = await phone.wait_for("transfer_request", call=number)
    target = request["to"].strip("<>")
    assert target.startswith(f"sip:{ROOM_NUMBER}@127.0.0.1:"), request  # the gateway itself, not the PBX
    await phone.wait_for("state", call=request["new_call"], state="CONFIRMED", timeout=15)
    statuses = await notified(softphone, call)
    assert statuses[-1] == 200, statuses
    await softphone.wait_for("ended", call=call)
    await phone.wait_for("state", call=number, state="DISCONNECTED")
    return int(request["new_call"])


def sliding_beeps(path: Path, tone: float = FAKE_MIC_HZ, window_s: float = 0.05, hop_s: float = 0.01) -> int:
    """How many separate beeps of ``tone`` (the page's fake microphone, one every 0.5 s) a phone's recording
    holds: windows of ``window_s`` every ``hop_s``; windows holding the tone less than 0.1 s apart are one
    beep (a concealed gap inside a beep does not make two). Windows end to end cut a beep that straddles
    two of them in halves, each under the bound beside a loud phone: A heard the library's eight beeps in
    4 s and 0 of them were counted, in 4 of 8 runs."""
    rate, samples = read_wav(path)
    size, hop = int(rate * window_s), int(rate * hop_s)
    found, last = 0, None
    for start in range(0, len(samples) - size + 1, hop):
        window = samples[start : start + size]
        if rms(window) > 100 and tone_ratio(window, rate, tone) >= MIXED:
            found += last is None or start - last >= rate // 10
            last = start
    return found


def room_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the mixer and the room logged (who joined and left the mix, frames in and out, legs failed)."""
    names = ("gateway.media.codecs.mixer", "gateway.runtime.rooms")
    return [r.getMessage() for r in caplog.records if r.name.startswith(names)]


async def a_faded(softphone: Softphone, timeout: float = 8.0) -> str | None:
    """A's 440 Hz is gone from what the library hears while B's 660 Hz plays: 440 at least 25 dB below
    660 (the page's measure is relative to the spectrum's median, which a lone tone leaves very low).
    None once it is; else the last levels read."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    levels = ""
    while loop.time() < deadline:
        b, a = await softphone.remote_tone(660), await softphone.remote_tone(440)
        if b - a >= 25.0:
            return None
        levels = f"660 Hz at {b:.1f} dB, 440 Hz at {a:.1f} dB over the median"
        await asyncio.sleep(0.3)
    return levels


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_library_merges_two_phones_in_a_room_and_one_hangs_up(
    library: Library, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_desk_phone()
    caplog.set_level(logging.INFO, logger="gateway.media.codecs.mixer")  # who left the mix, and when
    caplog.set_level(logging.INFO, logger="gateway.runtime.rooms")
    async with asyncio.timeout(240):  # a hang fails with the await it hung at
        await _three_way(library, tmp_path, caplog)


async def _three_way(library: Library, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sip = {
        "listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}],
        "trusted_sources": ["127.0.0.1/32", f"{DOMAIN}/32"],
    }
    rooms = {"numbers": {ROOM_NUMBER: "conf"}, "rules": [{"room": "conf", "owner": "alice"}]}
    config = websocket_config(None, sections={"domain": DOMAIN, "sip": sip, "rooms": rooms})
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=660) as phone_b,
        library_on(config, library) as (gateway, softphone),
    ):
        realm = realm_of(gateway)
        at_a = await phone_calls_library(softphone, phone_a, gateway)  # call 0
        await softphone.hears(440)
        await softphone.hold()
        await softphone.wait_for("hold", call=0)
        at_b = await library_calls(softphone, phone_b, "2001", realm)  # call 1 (2001: the PBX domain, B)
        await softphone.hears(660)
        await softphone.hold()
        await softphone.wait_for("hold", call=1)

        await softphone.call(f"sip:{ROOM_NUMBER}@{realm}")  # call 2: the room, at the gateway itself
        await softphone.wait_for("confirmed", call=2)
        in_a = await into_the_room(softphone, phone_a, at_a, 0, realm)
        in_b = await into_the_room(softphone, phone_b, at_b, 1, realm)
        await softphone.select(2)
        await softphone.hears(440)  # both phones in the room's mix
        await softphone.hears(660)
        await asyncio.sleep(4.0)  # the phones record the mix: the other phone and the page's beeps

        await phone_a.hangup(in_a)
        await phone_a.wait_for("state", call=in_a, state="DISCONNECTED")
        wav_a = await phone_a.wait_for_recording(in_a)
        assert windows_with(wav_a, 660) >= 2, f"A did not hear B in the room ({wav_a})"
        heard_beeps = sliding_beeps(wav_a)
        assert heard_beeps >= 2, (
            f"A did not hear the library ({wav_a}: {heard_beeps}); the room's log: {room_log(caplog)}"
        )
        await softphone.hears(660)  # B and the library talk on
        heard = await a_faded(softphone)
        assert heard is None, (
            f"A is still heard after hanging up: {heard}; the room's log: {room_log(caplog)}"
        )
        await asyncio.sleep(1.5)

        await softphone.hangup(2)
        await softphone.wait_for("ended", call=2)
        await phone_b.hangup(in_b)
        await phone_b.wait_for("state", call=in_b, state="DISCONNECTED")
        wav_b = await phone_b.wait_for_recording(in_b)
        assert windows_with(wav_b, 440) >= 2, f"B did not hear A in the room ({wav_b})"
        assert sliding_beeps(wav_b) >= 2, f"B did not hear the library ({wav_b})"
        assert await no_calls(gateway)
