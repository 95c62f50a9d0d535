"""The user agent against a real SIP phone: pjsua2 (examples/desk_phone.py, driven through
peers/phone.py). Calls both ways reach CONFIRMED on the phone and Answered/Confirmed on
us; INFO crosses both ways; BYE comes from each side."""

from __future__ import annotations

from pathlib import Path

from gateway.sip.useragent.ua_events import Answered, Bye, Confirmed, InfoReceived
from peers.phone import DeskPhone
from tests.sip.ua_helpers import LOOPBACK, OFFER, address_of, answer_next, expect, identity, running_ua


async def test_we_call_the_phone_info_both_ways_and_we_hang_up(tmp_path: Path) -> None:
    async with running_ua(trusted_sources=LOOPBACK) as ua, DeskPhone(tmp_path, user="2000") as phone:
        call = await ua.invite(phone.uri, OFFER, identity())
        answer = await expect(call, Answered, timeout=10)
        assert "PCMU" in answer.sdp
        incoming = await phone.wait_for("incoming")
        assert "alice@example.com" in incoming["from"]
        await phone.wait_for("state", state="CONFIRMED")
        response = await call.info("application/dtmf-relay", "Signal=4\r\nDuration=160\r\n")
        assert response.status == 200
        assert (await phone.wait_for("dtmf", digit="4"))["method"] == "info"
        await phone.send("info", content_type="application/dtmf-relay", body="Signal=5\r\nDuration=160")
        got = await expect(call, InfoReceived)
        assert got.content_type == "application/dtmf-relay" and b"Signal=5" in got.body
        assert (await phone.wait_for("info_response"))["code"] == 200
        await call.bye()
        assert (await expect(call, Bye)).status == 200
        await phone.wait_for("state", state="DISCONNECTED")


async def test_the_phone_calls_us_and_hangs_up(tmp_path: Path) -> None:
    async with running_ua(trusted_sources=LOOPBACK) as ua, DeskPhone(tmp_path, user="2001") as phone:
        number = await phone.call(f"sip:gw@{address_of(ua)}")
        call = await answer_next(ua)
        assert call.caller is not None and str(call.caller.uri).startswith("sip:2001@")
        assert "m=audio" in call.offer and str(call.request_uri) == f"sip:gw@{address_of(ua)}"
        await expect(call, Confirmed, timeout=10)
        await phone.wait_for("state", call=number, state="CONFIRMED")
        await phone.wait_for("media", call=number, status="active")
        await phone.hangup(number)
        assert (await expect(call, Bye, timeout=10)).by_remote
        await phone.wait_for("state", call=number, state="DISCONNECTED", code=200)
