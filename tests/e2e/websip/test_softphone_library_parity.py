"""What the unmodified browser SIP libraries (JsSIP 3.13, SIP.js 0.21 in headless Chromium) do in a call
through the gateway over SIP WebSocket beyond calling (issue 33 item 4), each against pjsua2 desk phones:

- the phone's DTMF (RFC 4733 and SIP INFO) reaches the library as INFO application/dtmf-relay (JsSIP's
  `newDTMF`, SIP.js's `onInfo`), each digit once; chat goes both ways as MESSAGE in the call's dialog;
- the phone's hold reaches SIP.js as a sendonly re-INVITE (JsSIP: test_sip_websocket_remote_hold.py);
- the library's blind REFER transfers its call with the phone A to phone B, the library hearing how
  it goes in NOTIFYs ending in 200;
- the phone's REFER is carried out by the library (it calls the Refer-To: phone B), the phone hearing
  of it in NOTIFYs ending in 200;
- the library's attended REFER (Replaces naming its call with B) joins the phone A and B.

Two phones as in tests/e2e/sip_interop/test_transfer.py: A (2000) and B (2001, on 5060 of the PBX
domain, a loopback address of its own). Where the phone A calls the library the gateway has no
pbx.address: numbers go to the PBX domain (B)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import Config
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port
from peers.softphones import Library, Softphone, require_softphones, softphone_server
from tests.e2e.harness import running_gateway
from tests.e2e.sip_interop.test_transfer import DOMAIN
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD, no_calls, realm_of, websocket_config
from tests.e2e.websip.test_softphone_libraries import LIBRARIES, allowing
from tests.signaling.browser import chromium_page


@asynccontextmanager
async def library_on(config: Config, library: Library) -> AsyncIterator[tuple[Gateway, Softphone]]:
    """The gateway of ``config`` and alice's library registered on its SIP WebSocket."""
    require_softphones()
    async with (
        softphone_server() as origin,
        running_gateway(allowing(config, origin)) as gateway,
        chromium_page() as page,
    ):
        softphone = Softphone(page, library)
        await softphone.open(origin)
        await softphone.registered(gateway.http_url, f"sip:alice@{realm_of(gateway)}", ALICE_SIP_PASSWORD)
        yield gateway, softphone


async def library_calls(softphone: Softphone, phone: DeskPhone, number: str, realm: str) -> int:
    """The library calls ``number`` (answered by ``phone``): the phone's number for the call, once the
    library hears the phone's tone."""
    await softphone.call(f"sip:{number}@{realm}")
    at = int((await phone.wait_for("incoming", timeout=15))["call"])
    await softphone.wait_for("confirmed")
    await phone.wait_for("state", call=at, state="CONFIRMED")
    return at


async def phone_calls_library(softphone: Softphone, phone: DeskPhone, gateway: Gateway) -> int:
    """The phone calls alice (1001): her library answers; the phone's number for the call."""
    host, port = gateway.sip_address
    at = await phone.call(f"sip:1001@{host}:{port}")
    await softphone.wait_for("incoming")
    await softphone.answer()
    await phone.wait_for("state", call=at, state="CONFIRMED", timeout=15)
    await softphone.wait_for("confirmed")
    return at


def no_pbx_config() -> Config:
    """No pbx.address: "2001" goes to sip:2001@<PBX domain> (phone B, which the gateway trusts: it BYEs
    a replaced leg); phone A reaches the gateway from 127.0.0.1."""
    sip = {
        "listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}],
        "trusted_sources": ["127.0.0.1/32", f"{DOMAIN}/32"],
    }
    return websocket_config(None, sections={"domain": DOMAIN, "sip": sip})


@asynccontextmanager
async def a_calls_the_library(
    tmp_path: Path, library: Library
) -> AsyncIterator[tuple[DeskPhone, DeskPhone, Gateway, Softphone, int]]:
    """Phones A and B, the gateway without pbx.address, and A's call to alice answered by her library:
    A, B, the gateway, the library and A's number for the call."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        library_on(no_pbx_config(), library) as (gateway, softphone),
    ):
        yield phone_a, phone_b, gateway, softphone, await phone_calls_library(softphone, phone_a, gateway)


async def notified(softphone: Softphone, call: int) -> list[int]:
    """The statuses of the NOTIFYs the library got for its REFER in ``call``, up to the final one."""
    statuses = [(await softphone.wait_for("referNotify", call=call, timeout=20))["status"]]
    while statuses[-1] < 200:
        statuses.append((await softphone.wait_for("referNotify", call=call, timeout=20))["status"])
    return statuses


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_phones_dtmf_and_chat_both_ways_reach_the_library(library: Library, tmp_path: Path) -> None:
    """The phone's digits, by RFC 4733 and by SIP INFO, reach the library once each as INFO (before, they
    were dropped); the library's MESSAGE in the call reaches the phone, the phone's the library."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        library_on(websocket_config(phone.address), library) as (gateway, softphone),
    ):
        at = await library_calls(softphone, phone, "2000", realm_of(gateway))
        await softphone.hears(440)
        for digit, method in (("1", "rfc2833"), ("#", "info"), ("9", "rfc2833")):
            await phone.send("dtmf", call=at, digits=digit, method=method)
            got = await softphone.wait_for("dtmf", digit=digit)
            assert got["originator"] == "remote" and got["call"] == 0, got
        await asyncio.sleep(1.0)  # a second copy of a digit would be here by now
        digits = [e["digit"] for e in await softphone.events() if e["type"] == "dtmf"]
        assert digits == ["1", "#", "9"], digits

        text = f"Hello from {library} \u260e"
        await softphone.message(text)
        assert (await softphone.wait_for("messageSent", call=0))["status"] == 200
        got = await phone.wait_for("message", call=at)
        assert got["body"] == text and got["content_type"].startswith("text/plain"), got
        await phone.send("message", call=at, body="Hello from the desk")
        got = await softphone.wait_for("message")
        assert got["body"] == "Hello from the desk" and got["call"] == 0, got
        assert (await phone.wait_for("message_status", call=at))["code"] == 200

        await softphone.hangup()
        await phone.wait_for("state", call=at, state="DISCONNECTED")
        await softphone.wait_for("ended")
        assert await no_calls(gateway)


async def test_sipjs_shows_the_call_held_by_the_phone(tmp_path: Path) -> None:
    """The phone holds and resumes: SIP.js answers our re-INVITEs (sendonly, then sendrecv), which its
    session delegate's onInvite shows as held and resumed by remote; the call goes on."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        library_on(websocket_config(phone.address), "sipjs") as (gateway, softphone),
    ):
        at = await library_calls(softphone, phone, "2000", realm_of(gateway))
        await softphone.hears(440)
        await phone.send("hold", call=at)
        await softphone.wait_for("hold", originator="remote")
        await phone.wait_for("media", call=at, status="local_hold")
        await phone.send("unhold", call=at)
        await softphone.wait_for("unhold", originator="remote")
        await phone.wait_for("media", call=at, status="active")
        await softphone.hears(440)
        await softphone.hangup()
        await phone.wait_for("state", call=at, state="DISCONNECTED")
        assert await no_calls(gateway)


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_librarys_blind_transfer_moves_its_call_to_phone_b(
    library: Library, tmp_path: Path
) -> None:
    """The library REFERs its call with A to 2001: 202, A is REFERred to B and calls it, the library
    hears NOTIFYs from 100 to 200, then our BYE; A and B talk."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
    ):
        config = websocket_config(phone_a.address, sections={"domain": DOMAIN})
        async with library_on(config, library) as (gateway, softphone):
            realm = realm_of(gateway)
            at_a = await library_calls(softphone, phone_a, "2000", realm)
            await softphone.transfer(f"sip:2001@{realm}")
            assert (await softphone.wait_for("referAccepted", call=0))["status"] == 202
            request = await phone_a.wait_for("transfer_request", call=at_a)
            assert request["to"].strip("<>") == f"sip:2001@{DOMAIN}", request
            at_b = await phone_b.wait_for("incoming", timeout=15)
            statuses = await notified(softphone, 0)
            assert statuses[0] == 100 and statuses[-1] == 200, statuses
            await softphone.wait_for("ended", call=0)  # the call ended transferred: our BYE
            await phone_a.wait_for("state", call=at_a, state="DISCONNECTED")

            await phone_b.wait_for("state", call=at_b["call"], state="CONFIRMED")
            await phone_b.hangup(at_b["call"])
            await phone_a.wait_for("state", call=request["new_call"], state="DISCONNECTED")
            assert await no_calls(gateway)


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_phones_refer_is_carried_out_by_the_library(library: Library, tmp_path: Path) -> None:
    """A calls alice and REFERs her library to sip:2001@<domain>: the library gets our REFER, accepts it
    and calls B itself; A hears of it in NOTIFYs ending in 200 and hangs up; the library and B talk."""
    async with a_calls_the_library(tmp_path, library) as (phone_a, phone_b, gateway, softphone, at_a):
        await phone_a.send("transfer", call=at_a, to=f"sip:2001@{DOMAIN}")
        refer = await softphone.wait_for("refer", call=0)
        assert refer["target"] == f"sip:2001@{DOMAIN}", refer
        placed = await softphone.wait_for("referCall", of=0)
        at_b = int((await phone_b.wait_for("incoming", timeout=15))["call"])
        await softphone.wait_for("confirmed", call=placed["call"])
        codes = [(await phone_a.wait_for("transfer_status", call=at_a))["code"]]
        while codes[-1] < 200:
            codes.append((await phone_a.wait_for("transfer_status", call=at_a, timeout=15))["code"])
        assert codes[-1] == 200 and phone_a.seen("transfer_status", call=at_a, code=200)[0]["final"], codes

        await phone_a.hangup(at_a)
        await softphone.wait_for("ended", call=0)
        await softphone.hears(880)  # B's tone on the call the library placed
        await softphone.hangup(placed["call"])
        await phone_b.wait_for("state", call=at_b, state="DISCONNECTED")
        assert await no_calls(gateway)


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_librarys_attended_transfer_joins_phone_a_and_b(library: Library, tmp_path: Path) -> None:
    """A calls alice; her library holds it, calls B, and REFERs A's call with Replaces naming its call
    with B: A's INVITE with Replaces takes over the gateway's leg at B; the library hears NOTIFYs ending
    in 200 and both its calls end; A and B talk."""
    async with a_calls_the_library(tmp_path, library) as (phone_a, phone_b, gateway, softphone, at_a):
        await softphone.hold()
        await softphone.wait_for("hold", call=0)
        at_b = await library_calls(softphone, phone_b, "2001", realm_of(gateway))
        await softphone.hears(880)

        await softphone.transfer(f"sip:2001@{DOMAIN}", call=0, replaces=1)
        assert (await softphone.wait_for("referAccepted", call=0))["status"] == 202
        request = await phone_a.wait_for("transfer_request", call=at_a)
        target, _, replaces = request["to"].strip("<>").partition("?")
        assert target.startswith(f"sip:2001@{DOMAIN}") and replaces.lower().startswith("replaces="), request
        replaced = await phone_b.wait_for("replaced", call=at_b, timeout=15)
        assert "2000" in replaced["from"], replaced
        statuses = await notified(softphone, 0)
        assert statuses[-1] == 200, statuses
        await softphone.wait_for("ended", call=0)
        await softphone.wait_for("ended", call=1)
        await phone_a.wait_for("state", call=at_a, state="DISCONNECTED")
        await phone_b.wait_for("state", call=at_b, state="DISCONNECTED")

        await phone_a.wait_for("state", call=request["new_call"], state="CONFIRMED")
        await phone_b.hangup(replaced["new_call"])
        await phone_a.wait_for("state", call=request["new_call"], state="DISCONNECTED")
        assert await no_calls(gateway)
