"""The browser SIP libraries people already use, unmodified (JsSIP 3.13, SIP.js 0.21 from npm), in headless
Chromium against a whole gateway over SIP WebSocket: each registers with digest, calls the pjsua2 desk phone
through the gateway (the phone's 440 Hz tone is heard in the browser, the browser's fake-microphone beep in
the phone's recording), sends DTMF by INFO that the phone receives, hangs up; a second call is hung up by
the phone; the phone calls alice, her library rings and answers (audio both ways) and hangs up. A wrong
password gets 403 and the library reports the registration failed."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from gateway.config.schema import Config, HttpTls
from gateway.devcert import make_dev_certificates
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.softphones import Library, Softphone, require_softphones, softphone_server
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, running_gateway, wait_until
from tests.e2e.page_audio import assert_phone_heard_the_browser
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD, no_calls, realm_of, websocket_config
from tests.signaling.browser import chromium_page

LIBRARIES: list[Library] = ["jssip", "sipjs"]


@pytest.mark.parametrize("library", LIBRARIES)
async def test_library_registers_and_calls_the_desk_phone(library: Library, tmp_path: Path) -> None:
    require_softphones()
    require_desk_phone()
    async with (
        softphone_server() as origin,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(allowing(websocket_config(phone.address), origin)) as gateway,
        chromium_page() as page,
    ):
        realm = realm_of(gateway)
        softphone = Softphone(page, library)
        await softphone.open(origin)
        ws_url = gateway.http_url.replace("http", "ws", 1) + "/sip"
        await softphone.start(ws_url, f"sip:alice@{realm}", ALICE_SIP_PASSWORD)
        await softphone.wait_for("registered")

        # the browser calls the phone and hangs up
        await softphone.call(f"sip:2000@{realm}")
        incoming = await phone.wait_for("incoming", timeout=15)
        await softphone.wait_for("confirmed")
        await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
        await softphone.hears(440)
        await softphone.dtmf("5")
        await phone.wait_for("dtmf", digit="5")
        await asyncio.sleep(2.5)
        await softphone.hangup()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        await softphone.wait_for("ended")
        wav = await phone.wait_for_recording(incoming["call"])
        assert_phone_heard_the_browser(wav)

        # the phone hangs up a second call
        await softphone.call(f"sip:2000@{realm}")
        incoming = await phone.wait_for("incoming", timeout=15)
        await softphone.wait_for("confirmed")
        await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
        await phone.hangup(incoming["call"])
        await softphone.wait_for("ended")
        assert await no_calls(gateway)

        # the phone calls alice: her library rings, answers, hears the tone; she hangs up
        host, port = gateway.sip_address
        number = await phone.call(f"sip:1001@{host}:{port}")
        await softphone.wait_for("incoming")
        await softphone.answer()
        await phone.wait_for("state", call=number, state="CONFIRMED", timeout=15)
        await softphone.wait_for("confirmed")
        await softphone.hears(440)
        await asyncio.sleep(2.5)  # the recording starts before the browser's media: 3 beeps need ~2 s
        await softphone.hangup()
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert_phone_heard_the_browser(await phone.wait_for_recording(number))
        assert await no_calls(gateway)


@pytest.mark.parametrize("library", LIBRARIES)
async def test_library_reports_a_wrong_password(library: Library) -> None:
    require_softphones()
    async with (
        softphone_server() as origin,
        running_gateway(allowing(websocket_config(), origin)) as gateway,
        chromium_page() as page,
    ):
        softphone = Softphone(page, library)
        await softphone.open(origin)
        ws_url = gateway.http_url.replace("http", "ws", 1) + "/sip"
        await softphone.start(ws_url, f"sip:alice@{realm_of(gateway)}", "wrong-password")
        failed = await softphone.wait_for("registrationFailed")
        assert failed["status"] == 403, failed
        assert gateway.web_sip is not None and len(gateway.web_sip.registrar) == 0


def allowing(config: Config, origin: str) -> Config:
    """The config with the softphone site's origin in http.allowed_origins."""
    return dataclasses.replace(config, http=dataclasses.replace(config.http, allowed_origins=(origin,)))


async def test_jssip_registers_over_wss_with_the_dev_certificate(tmp_path: Path) -> None:
    """wss:// on the HTTPS listener (http.tls with `dev-cert`'s certificate), Chromium trusting the dev
    CA as a user would (NSS database), no certificate-error flags."""
    require_softphones()
    made = make_dev_certificates(tmp_path / "certs", ["127.0.0.1"])
    async with softphone_server() as origin:
        config = allowing(websocket_config(), origin)
        tls = HttpTls(str(made.certificate), str(made.private_key))
        config = dataclasses.replace(config, http=dataclasses.replace(config.http, tls=tls))
        async with running_gateway(config) as gateway, chromium_page(trusted_ca=made.ca) as page:
            assert gateway.http_url.startswith("https://")
            softphone = Softphone(page, "jssip")
            await softphone.open(origin)
            ws_url = gateway.http_url.replace("https", "wss", 1) + "/sip"
            await softphone.start(ws_url, f"sip:alice@{realm_of(gateway)}", ALICE_SIP_PASSWORD)
            await softphone.wait_for("registered")
            assert gateway.web_sip is not None and gateway.web_sip.transport.name == "WSS"
            assert len(gateway.web_sip.registrar) == 1


async def test_a_call_rings_the_library_and_the_softphone_page_and_the_first_answer_wins(
    tmp_path: Path,
) -> None:
    """alice is online twice: JsSIP over SIP WebSocket and a JSON session (aiortc). The phone's call rings
    both; the JSON session answers first: JsSIP's INVITE is cancelled, the call connects to the JSON
    session. Then the other way round: JsSIP answers, the JSON session hears `ended` (answered elsewhere)."""
    require_softphones()
    require_desk_phone()
    async with (
        softphone_server() as origin,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(allowing(websocket_config(phone.address), origin)) as gateway,
        chromium_page() as page,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        softphone = Softphone(page, "jssip")
        await softphone.open(origin)
        ws_url = gateway.http_url.replace("http", "ws", 1) + "/sip"
        await softphone.start(ws_url, f"sip:alice@{realm_of(gateway)}", ALICE_SIP_PASSWORD)
        await softphone.wait_for("registered")
        host, port = gateway.sip_address

        number = await phone.call(f"sip:1001@{host}:{port}")
        await softphone.wait_for("incoming")
        call_id = (await alice.wait_for("incoming"))["call_id"]
        peer = WebPeer(1000)
        try:
            await alice.answer(call_id, peer.answer)
            await phone.wait_for("state", call=number, state="CONFIRMED", timeout=15)
            ended = await softphone.wait_for(("failed", "ended"))
            assert ended["type"] == "failed" and ended["cause"] == "Canceled", ended
            await wait_until(lambda: peer.heard(440, last=0.5), timeout=10)
            await phone.hangup(number)
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()

        number = await phone.call(f"sip:1001@{host}:{port}")
        await softphone.wait_for("incoming")
        call_id = (await alice.wait_for("incoming"))["call_id"]
        await softphone.answer()
        await phone.wait_for("state", call=number, state="CONFIRMED", timeout=15)
        assert (await alice.wait_for("ended", call_id=call_id))["reason"] == "answered_elsewhere"
        await softphone.hears(440)
        await phone.hangup(number)
        await softphone.wait_for("ended")


@pytest.mark.parametrize("library", LIBRARIES)
async def test_library_holds_and_resumes_and_sends_rfc4733_dtmf(library: Library, tmp_path: Path) -> None:
    """The library's hold (re-INVITE a=sendonly) holds the phone (remote_hold), unhold resumes it and audio
    flows again; DTMF by RFC 4733 (the browser's RTCDTMFSender) reaches the phone."""
    require_softphones()
    require_desk_phone()
    async with (
        softphone_server() as origin,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(allowing(websocket_config(phone.address), origin)) as gateway,
        chromium_page() as page,
    ):
        realm = realm_of(gateway)
        softphone = Softphone(page, library)
        await softphone.open(origin)
        await softphone.start(
            gateway.http_url.replace("http", "ws", 1) + "/sip", f"sip:alice@{realm}", ALICE_SIP_PASSWORD
        )
        await softphone.wait_for("registered")
        await softphone.call(f"sip:2000@{realm}")
        incoming = await phone.wait_for("incoming", timeout=15)
        await softphone.wait_for("confirmed")
        await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
        await softphone.dtmf("7", "rfc4733")
        await phone.wait_for("dtmf", digit="7")
        await page.evaluate("softphone.hold()")
        await softphone.wait_for("hold")
        await phone.wait_for("media", call=incoming["call"], status="remote_hold")
        await page.evaluate("softphone.unhold()")
        await softphone.wait_for("unhold")
        await phone.wait_for("media", call=incoming["call"], status="active")
        await softphone.hears(440)
        await softphone.hangup()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
