"""Call transfer with real pjsua2 desk phones (RFC 3515 REFER, RFC 3891 Replaces).

The PBX domain is a loopback address of its own (127.0.0.x), where desk phone B (2001) listens on 5060,
so a Refer-To of sip:2001@127.0.0.x reaches B when A carries it out. In the blind transfer and the
policy test the gateway's PBX is desk phone A (2000). Where the web user calls both phones (attended
transfer, the REFER she carries out) the gateway has no pbx.address: numbers go to the PBX domain (B)
and alice reaches A by its URI, which her allow_outbound names exactly.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

from gateway.config import Config
from peers.audio import detect_tone, read_wav
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone
from tests.signaling.browser import chromium_page, expect, log_in


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_domain() -> str:
    """A loopback address whose SIP port 5060 nobody uses (the transfer target must be at the PBX
    domain's default port: Refer-To names no port)."""
    offset = os.getpid() % 190  # two suites running at once (developers, CI) start apart
    for step in range(190):
        host = f"127.0.0.{60 + (offset + step) % 190}"
        if _port_free(host, 5060):
            return host
    raise AssertionError("no 127.0.0.x with UDP 5060 free")


DOMAIN = _free_domain()


async def test_blind_transfer_of_a_web_call_to_a_second_phone(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(
            gateway_config(
                phone_a.address, domain=DOMAIN, media={"rtp_ports": {"start": 37000, "end": 37199}}
            )
        ) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            connected = await alice.wait_for("connected", call_id=call_id)
            await peer.accept(connected["sdp"])
            incoming = await phone_a.wait_for("incoming")
            await phone_a.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)

            await alice.request({"type": "transfer", "call_id": call_id, "to": "2001"})
            request = await phone_a.wait_for("transfer_request", call=incoming["call"])
            assert request["to"].strip("<>") == f"sip:2001@{DOMAIN}", request
            states = [(await alice.wait_for("transfer", call_id=call_id))["state"]]
            while states[-1] not in ("succeeded", "failed"):
                states.append((await alice.wait_for("transfer", call_id=call_id, timeout=20))["state"])
            assert states[0] == "requested" and states[-1] == "succeeded", states
            ended = await alice.wait_for("ended", call_id=call_id)
            assert ended["reason"] == "transferred", ended
            await phone_a.wait_for("state", call=incoming["call"], state="DISCONNECTED")

            # A and B now talk directly: each hears the other's tone
            at_b = await phone_b.wait_for("incoming")
            await phone_b.wait_for("state", call=at_b["call"], state="CONFIRMED")
            await asyncio.sleep(1.5)
            await phone_b.hangup(at_b["call"])
            await phone_a.wait_for("state", call=request["new_call"], state="DISCONNECTED")
            assert wav_has_tone(await phone_b.wait_for_recording(at_b["call"]), 440)
            assert wav_has_tone(await phone_a.wait_for_recording(request["new_call"]), 880)
        finally:
            await peer.close()


def both_phones_config(phone_a: DeskPhone, rtp_start: int) -> Config:
    """No pbx.address: "2001" goes to sip:2001@<PBX domain> (phone B, which the gateway trusts: it BYEs
    the replaced leg), phone A is reached by its URI, allowed exactly."""
    sip = {
        "listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}],
        "trusted_sources": ["127.0.0.1/32", f"{DOMAIN}/32"],
    }
    return gateway_config(
        None,
        domain=DOMAIN,
        sip=sip,
        media={"rtp_ports": {"start": rtp_start}},
        alice_outbound=("2xxx", phone_a.uri),
    )


async def _connect(alice: WebUser, peer: WebPeer, to: str, phone: DeskPhone, tone: float) -> tuple[str, int]:
    """Alice calls `to` (answered by `phone`); the call id and the phone's number for the call, once the
    browser hears the phone's tone."""
    call_id = await alice.call(to, await peer.offer())
    connected = await alice.wait_for("connected", call_id=call_id)
    await peer.accept(connected["sdp"])
    incoming = await phone.wait_for("incoming")
    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
    await wait_until(lambda: peer.heard(tone, last=1.0), timeout=10)
    return call_id, int(incoming["call"])


async def _alice_hangs_up(alice: WebUser, call_id: str, phone: DeskPhone, number: int) -> tuple[str, Path]:
    """alice ends her call with `phone`: the `ended` reason and the phone's recording of the call."""
    await alice.request({"type": "hangup", "call_id": call_id})
    ended = await alice.wait_for("ended", call_id=call_id)
    await phone.wait_for("state", call=number, state="DISCONNECTED")
    return str(ended["reason"]), await phone.wait_for_recording(number)


def _tail_has_tone(path: Path, freq: float, seconds: float) -> bool:
    """Whether the last `seconds` of a recording carry the tone (audio still flowed at the end)."""
    rate, samples = read_wav(path)
    return detect_tone(samples[-int(seconds * rate) :], rate, freq, threshold=0.3)


async def test_attended_transfer_by_the_web_user_joins_her_two_phones(tmp_path: Path) -> None:
    """alice calls A, holds it, consults B, then transfers A to B with Replaces (RFC 3891 in Refer-To):
    A's INVITE with Replaces takes over the gateway's leg at B; A and B hear each other; both of alice's
    calls end (A's transferred, B's BYEd by B)."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(both_phones_config(phone_a, 36200)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer_a, peer_b = WebPeer(freq=1000), WebPeer(freq=1200)
        try:
            call_a, at_a = await _connect(alice, peer_a, phone_a.uri, phone_a, 440)
            await asyncio.sleep(1.0)  # A records alice's tone before the hold
            await alice.request({"type": "hold", "call_id": call_a})
            await phone_a.wait_for("media", call=at_a, status="remote_hold")
            call_b, at_b = await _connect(alice, peer_b, "2001", phone_b, 880)
            await asyncio.sleep(1.0)  # B records alice's tone in the consultation call

            await alice.request({"type": "transfer", "call_id": call_a, "replaces": call_b})
            request = await phone_a.wait_for("transfer_request", call=at_a)
            target, _, replaces = request["to"].strip("<>").partition("?")
            assert target.startswith(f"sip:2001@{DOMAIN}"), request
            assert replaces.lower().startswith("replaces="), request
            states = [(await alice.wait_for("transfer", call_id=call_a))["state"]]
            while states[-1] not in ("succeeded", "failed"):
                states.append((await alice.wait_for("transfer", call_id=call_a, timeout=20))["state"])
            assert states[0] == "requested" and states[-1] == "succeeded", states
            # B took A's INVITE with Replaces in place of the gateway's leg
            replaced = await phone_b.wait_for("replaced", call=at_b)
            assert "2000" in replaced["from"], replaced
            ended_a = await alice.wait_for("ended", call_id=call_a)
            ended_b = await alice.wait_for("ended", call_id=call_b)
            assert ended_a["reason"] == "transferred", ended_a
            assert ended_b["reason"] in ("remote_hangup", "transferred"), ended_b
            await phone_a.wait_for("state", call=at_a, state="DISCONNECTED")
            await phone_b.wait_for("state", call=at_b, state="DISCONNECTED")
            await wait_until(lambda: gateway._health_details()["calls"] == 0, timeout=10)

            # A and B now talk directly: each hears the other's tone
            new_at_a, new_at_b = request["new_call"], replaced["new_call"]
            await phone_a.wait_for("state", call=new_at_a, state="CONFIRMED")
            await phone_b.wait_for("state", call=new_at_b, state="CONFIRMED")
            await asyncio.sleep(3.0)  # long enough that a late media start on a loaded machine still shows
            await phone_b.hangup(new_at_b)
            await phone_a.wait_for("state", call=new_at_a, state="DISCONNECTED")
            assert wav_has_tone(await phone_b.wait_for_recording(new_at_b), 440)
            assert wav_has_tone(await phone_a.wait_for_recording(new_at_a), 880)
            # before the transfer each phone heard alice's own tone for its call
            assert wav_has_tone(await phone_a.wait_for_recording(at_a), 1000)
            assert wav_has_tone(await phone_b.wait_for_recording(at_b), 1200)
        finally:
            await peer_a.close()
            await peer_b.close()


async def test_a_refer_to_a_number_the_policy_forbids_is_refused_and_the_call_goes_on(tmp_path: Path) -> None:
    """Phone A refers alice to 3001, which her allow_outbound (2xxx) forbids: 403 to the REFER (a REFER must
    not make the gateway dial what she may not), no call placed, alice's call with A goes on both ways."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        running_gateway(
            gateway_config(
                phone_a.address,
                domain=DOMAIN,
                media={"rtp_ports": {"start": 36400}},
                alice_outbound=("2xxx",),
            )
        ) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id, at_a = await _connect(alice, peer, "2000", phone_a, 440)
            await phone_a.send("transfer", call=at_a, to=f"sip:3001@{DOMAIN}")
            status = await phone_a.wait_for("transfer_status", call=at_a)
            assert (status["code"], status["final"]) == (403, True), status
            assert gateway._health_details()["calls"] == 1
            await asyncio.sleep(0.5)  # nothing more comes of the REFER
            kinds = {e.get("type") for e in alice.events if e.get("call_id") == call_id}
            assert not kinds & {"transfer_requested", "ended"}, alice.events
            assert len(phone_a.seen("incoming")) == 1 and not phone_a.seen("transfer_request"), phone_a.events
            # audio goes on both ways
            peer.clear()
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await asyncio.sleep(1.5)
            reason, wav = await _alice_hangs_up(alice, call_id, phone_a, at_a)
            assert reason == "hangup" and _tail_has_tone(wav, 1000, 1.0), (reason, wav)
        finally:
            await peer.close()


async def test_a_refer_from_the_phone_is_carried_out_by_the_browser(tmp_path: Path) -> None:
    """Phone A refers alice to B (sip:2001@<PBX domain>): 202, `transfer_requested` to the browser, which
    places the call with `transfer_of`; B rings and answers; A hears of it in NOTIFYs (sipfrag 100, 180,
    200, RFC 3515 §2.4.5) and hangs up; alice and B hear each other."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880, answer_delay_ms=500) as phone_b,
        running_gateway(both_phones_config(phone_a, 36600)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer_a, peer_b = WebPeer(freq=1000), WebPeer(freq=1200)
        try:
            call_a, at_a = await _connect(alice, peer_a, phone_a.uri, phone_a, 440)
            await phone_a.send("transfer", call=at_a, to=f"sip:2001@{DOMAIN}")
            # pjsua reports the REFER's 2xx as 100 "Accepted" (its subscription's state ACCEPTED)
            accepted = await phone_a.wait_for("transfer_status", call=at_a)
            assert (accepted["code"], accepted["reason"], accepted["final"]) == (100, "Accepted", False), (
                accepted
            )
            requested = await alice.wait_for("transfer_requested", call_id=call_a)
            assert requested["to"] == f"sip:2001@{DOMAIN}", requested

            # the browser places the call, as the softphone page does
            reply = await alice.request(
                {"type": "call", "to": requested["to"], "sdp": await peer_b.offer(), "transfer_of": call_a}
            )
            call_b = str(reply["call_id"])
            at_b = await phone_b.wait_for("incoming")
            await alice.wait_for("ringing", call_id=call_b)
            connected = await alice.wait_for("connected", call_id=call_b)
            await peer_b.accept(connected["sdp"])
            codes = [(await phone_a.wait_for("transfer_status", call=at_a))["code"]]
            while codes[-1] < 200:
                codes.append((await phone_a.wait_for("transfer_status", call=at_a))["code"])
            assert codes == [100, 180, 200], codes
            assert phone_a.seen("transfer_status", call=at_a, code=200)[0]["final"], phone_a.events

            # the transferor hangs up; alice and B talk
            await phone_a.hangup(at_a)
            assert (await alice.wait_for("ended", call_id=call_a))["reason"] == "remote_hangup"
            await wait_until(lambda: peer_b.heard(880, last=1.0), timeout=10)
            await asyncio.sleep(1.5)
            reason, wav = await _alice_hangs_up(alice, call_b, phone_b, at_b["call"])
            assert reason == "hangup" and wav_has_tone(wav, 1200), (reason, wav)
        finally:
            await peer_a.close()
            await peer_b.close()


async def page_calls_phone(page: Any, url: str, phone: DeskPhone) -> int:
    """alice logs in on the softphone page and calls `phone`: its number for the call, once confirmed."""
    await page.goto(url + "/")
    await log_in(page, "alice", ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice")
    await page.locator("#number").fill(phone.uri)
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    at = int((await phone.wait_for("incoming"))["call"])
    await phone.wait_for("state", call=at, state="CONFIRMED")
    return at


async def test_attended_transfer_from_the_softphone_page(tmp_path: Path) -> None:
    """The page's own buttons (headless Chromium): alice calls A, types 2001 in "Transfer to" and presses
    Consult (A is held, B is called and answers), then "Complete transfer": A gets a REFER with Replaces,
    B takes A's INVITE with Replaces, A and B talk, and the page ends with no call and no error."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(both_phones_config(phone_a, 36400)) as gateway,
        chromium_page() as page,
    ):
        at_a = await page_calls_phone(page, gateway.http_url, phone_a)
        await expect(page.locator("#consult")).to_be_hidden()

        await page.get_by_placeholder("Transfer to…").fill("2001")
        await page.get_by_role("button", name="Consult").click()
        await phone_a.wait_for("media", call=at_a, status="remote_hold")
        at_b = int((await phone_b.wait_for("incoming"))["call"])
        await phone_b.wait_for("state", call=at_b, state="CONFIRMED")
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await expect(page.locator("#consult")).to_be_visible()
        await expect(page.locator("#consult-text")).to_contain_text("Consulting 2001")
        await expect(page.get_by_role("button", name="Transfer", exact=True)).to_be_disabled()
        await page.screenshot(path=str(tmp_path / "softphone-consult.png"), full_page=True)

        await page.get_by_role("button", name="Complete transfer").click()
        request = await phone_a.wait_for("transfer_request", call=at_a)
        target, _, replaces = request["to"].strip("<>").partition("?")
        assert target.startswith(f"sip:2001@{DOMAIN}") and replaces.lower().startswith("replaces="), request
        replaced = await phone_b.wait_for("replaced", call=at_b)
        await phone_a.wait_for("state", call=request["new_call"], state="CONFIRMED")
        await phone_b.wait_for("state", call=replaced["new_call"], state="CONFIRMED")
        await expect(page.locator("#call-state")).to_have_text("No call", timeout=15000)
        await expect(page.locator("#consult")).to_be_hidden()
        await expect(page.locator("#error")).to_be_hidden()
        await wait_until(lambda: gateway._health_details()["calls"] == 0, timeout=10)
        await phone_b.hangup(replaced["new_call"])
        await phone_a.wait_for("state", call=request["new_call"], state="DISCONNECTED")


async def test_a_refer_from_the_phone_is_carried_out_by_the_softphone_page(tmp_path: Path) -> None:
    """The page (headless Chromium) follows the phone's REFER by itself, as a desk phone does: A refers
    alice to B, the page calls B with `transfer_of`, A hears 200 in a NOTIFY and hangs up, and the page
    shows the call with B connected and no error."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(both_phones_config(phone_a, 36800)) as gateway,
        chromium_page() as page,
    ):
        at_a = await page_calls_phone(page, gateway.http_url, phone_a)

        await phone_a.send("transfer", call=at_a, to=f"sip:2001@{DOMAIN}")
        at_b = int((await phone_b.wait_for("incoming"))["call"])
        await phone_b.wait_for("state", call=at_b, state="CONFIRMED")
        codes = [(await phone_a.wait_for("transfer_status", call=at_a))["code"]]
        while codes[-1] < 200:
            codes.append((await phone_a.wait_for("transfer_status", call=at_a))["code"])
        assert codes[-1] == 200, codes
        await phone_a.hangup(at_a)
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await expect(page.locator("#error")).to_be_hidden()
        await wait_until(lambda: gateway._health_details()["calls"] == 1, timeout=10)
        await phone_b.hangup(at_b)
        await expect(page.locator("#call-state")).to_have_text("No call", timeout=15000)
