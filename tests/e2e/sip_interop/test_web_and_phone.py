"""A web user (aiortc, speaking the WebSocket protocol) and a real SIP desk phone (pjsua2) call each other
through a whole gateway in this process, the gateway's PBX being the phone itself.

Audio is checked by tone both ways: the web peer sends 1000 Hz and must be in the phone's recording; the
phone plays 440 Hz and the web peer must hear it. DTMF from the browser must reach the phone as digits.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from peers.audio import has_tone, read_wav
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until


def wav_has_tone(path: Path, freq: float, skip_s: float = 0.2) -> bool:
    """`freq` in most half-second blocks of the recording that are not silent (peers.audio.has_tone)."""
    rate, samples = read_wav(path)
    body = samples[int(skip_s * rate) :]
    return has_tone(body, rate, freq, threshold=0.3)


async def test_web_user_calls_the_desk_phone_and_the_phone_hangs_up_the_second(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            connected = await alice.wait_for("connected", call_id=call_id)
            assert connected["sdp"], connected
            await peer.accept(connected["sdp"])
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            assert gateway._health_details()["calls"] == 1
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await asyncio.sleep(1.0)  # a second of the web user's tone in the phone's recording
            await alice.request({"type": "dtmf", "call_id": call_id, "digits": "12#"})
            for digit in "12#":
                await phone.wait_for("dtmf", digit=digit)
            await alice.request({"type": "hangup", "call_id": call_id})
            ended = await alice.wait_for("ended", call_id=call_id)
            assert ended["reason"] == "hangup", ended
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            wav = await phone.wait_for_recording(incoming["call"])
            assert wav_has_tone(wav, 1000), "the phone did not hear the web user's 1000 Hz"
        finally:
            await peer.close()

        peer = WebPeer(freq=1000)
        try:  # the second call is hung up by the phone
            call_id = await alice.call("2000", await peer.offer())
            connected = await alice.wait_for("connected", call_id=call_id)
            await peer.accept(connected["sdp"])
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await phone.hangup(incoming["call"])
            ended = await alice.wait_for("ended", call_id=call_id)
            assert ended["reason"] == "remote_hangup", ended
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)


async def test_early_answer_comes_before_the_phone_answers_and_the_call_works(tmp_path: Path) -> None:
    """`call` with `early_answer`: the gateway's answer arrives in `answer` before the phone answers
    (it waits 2 s), the browser's ICE/DTLS come up meanwhile, `connected` then carries no SDP."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440, answer_delay_ms=2000) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            offer = await peer.offer()
            start = time.monotonic()
            call_id = await alice.call("2000", offer, early_answer=True)
            answer = await alice.wait_for("answer", call_id=call_id, timeout=5)
            assert time.monotonic() - start < 1.5  # the phone answers after 2 s
            await peer.accept(answer["sdp"])
            await peer.connected()  # ICE and DTLS up while the phone still rings
            incoming = await phone.wait_for("incoming")
            connected = await alice.wait_for("connected", call_id=call_id)
            assert connected["sdp"] is None, connected  # applied once, from `answer`
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await asyncio.sleep(1.0)  # a second of the web user's tone in the phone's recording
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
            wav = await phone.wait_for_recording(incoming["call"])
            assert wav_has_tone(wav, 1000), "the phone did not hear the web user's 1000 Hz"
        finally:
            await peer.close()


async def test_desk_phone_calls_the_web_user(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
    ):
        host, port = gateway.sip_address
        async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
            peer = WebPeer(freq=1000)
            try:
                number = await phone.call(f"sip:1001@{host}:{port}")
                incoming = await alice.wait_for("incoming")
                call_id = incoming["call_id"]
                assert "2000" in incoming["from"], incoming
                await alice.answer(call_id, peer.answer)
                await phone.wait_for("state", call=number, state="CONFIRMED")
                await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                await asyncio.sleep(1.0)  # a second of the web user's tone in the phone's recording
                await phone.hangup(number)
                ended = await alice.wait_for("ended", call_id=call_id)
                assert ended["reason"] == "remote_hangup", ended
                wav = await phone.wait_for_recording(number)
                assert wav_has_tone(wav, 1000), "the phone did not hear the web user's 1000 Hz"
            finally:
                await peer.close()


async def test_busy_unknown_and_offline_give_readable_results(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", answer="busy") as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
    ):
        host, port = gateway.sip_address
        # offline: alice has no session open -> 480 at the phone
        number = await phone.call(f"sip:1001@{host}:{port}")
        state = await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert state["code"] == 480, state
        # no such user -> 404 at the phone
        number = await phone.call(f"sip:7777@{host}:{port}")
        state = await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert state["code"] == 404, state
        # busy: the phone answers 486 -> ended busy 486 for the web user
        async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
            peer = WebPeer(freq=1000)
            try:
                call_id = await alice.call("2000", await peer.offer())
                ended = await alice.wait_for("ended", call_id=call_id)
                assert (ended["reason"], ended["sip_status"]) == ("busy", 486), ended
            finally:
                await peer.close()
        assert gateway._health_details()["calls"] == 0


@pytest.mark.parametrize(
    ("status", "phrase", "reason"),
    [
        (480, "Temporarily Unavailable", "unavailable"),
        (486, "Busy Here", "busy"),
        (603, "Decline", "declined"),
    ],
)
async def test_web_user_rejects_with_the_status_it_asked_for(
    tmp_path: Path, status: int, phrase: str, reason: str
) -> None:
    """`reject {status}` reaches the calling phone as that final response (480 is not turned into 486)."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000") as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        number = await phone.call(f"sip:1001@{host}:{port}")
        call_id = (await alice.wait_for("incoming"))["call_id"]
        await alice.request({"type": "reject", "call_id": call_id, "status": status})
        ended = await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert (ended["code"], ended["reason"]) == (status, phrase), ended
        assert (await alice.wait_for("ended", call_id=call_id))["reason"] == reason
