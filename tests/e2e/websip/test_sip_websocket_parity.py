"""SIP over WebSocket against real peers, for what the softphone page already had (issue 33): a digit the
library sends in its media reaches the phone once with `sip.dtmf_mode: info`; the PBX's progress is
relayed as it came (183 without a 180 of our own); the Allow of a 405 to the library lists only what we
handle; MESSAGE in the call's dialog goes both ways between the library and the phone."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
from pathlib import Path

from gateway.config import DtmfMode
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.sipp import Sipp
from peers.webpeer import WebPeer, send_web_dtmf
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.websip.test_sip_websocket import (
    SipCall,
    SipSocket,
    header_value,
    no_calls,
    realm_of,
    sip_socket,
    websocket_config,
)


async def placed_call(sip: SipSocket, realm: str, peer: WebPeer, to: str = "2000") -> tuple[SipCall, str]:
    """alice's INVITE from ``peer`` over ``sip`` answered 200 and ACKed: the dialog and the answer."""
    call = SipCall(sip, f"sip:{to}@{realm}", f"sip:alice@{realm}")
    final = await call.invite(await peer.offer(), realm)
    assert final.startswith("SIP/2.0 200 "), final
    await call.ack(final, call.remote_target, call.to_tag)
    return call, final.split("\r\n\r\n", 1)[1]


def _event_payload_type(answer: str) -> int:
    match = re.search(r"^a=rtpmap:(\d+) telephone-event/8000", answer, re.M)
    assert match, f"no telephone-event/8000 in the answer:\n{answer}"
    return int(match.group(1))


async def test_a_digit_in_the_librarys_media_reaches_the_phone_once_with_dtmf_mode_info(
    tmp_path: Path,
) -> None:
    """With `sip.dtmf_mode: info`, an RFC 4733 digit from the library goes to the phone as SIP INFO only:
    before, the bridge forwarded the events as well, and "56" arrived as "5566"."""
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = websocket_config(phone.address)
        config = dataclasses.replace(config, sip=dataclasses.replace(config.sip, dtmf_mode=DtmfMode.INFO))
        async with running_gateway(config) as gateway, sip_socket(gateway) as sip:
            realm = realm_of(gateway)
            peer = WebPeer(1000)
            try:
                call, answer = await placed_call(sip, realm, peer)
                await peer.accept(answer)
                incoming = await phone.wait_for("incoming")
                await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                for digit in "56":
                    await send_web_dtmf(peer, digit, _event_payload_type(answer))
                    await phone.wait_for("dtmf", digit=digit, method="info")
                await asyncio.sleep(1.0)  # a second copy (RFC 4733 forwarded too) would be here by now
                digits = [(e["digit"], e["method"]) for e in phone.events if e.get("event") == "dtmf"]
                assert digits == [("5", "info"), ("6", "info")], digits
                reply = await call.bye()
                assert reply.startswith("SIP/2.0 200 "), reply
            finally:
                await peer.close()
            assert await no_calls(gateway)


async def test_the_pbxs_183_reaches_the_library_without_a_180_it_never_sent(tmp_path: Path) -> None:
    """A PBX that answers 183 with SDP, then 200 (sipp): the library sees 183 and 200, and no 180."""
    async with Sipp(tmp_path, "uas_early_media", calls=1, rtp_echo=True) as uas:
        config = websocket_config(uas.address)  # no OPTIONS keepalives: the scenario takes only its call
        config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0))
        async with running_gateway(config) as gateway, sip_socket(gateway) as sip:
            realm = realm_of(gateway)
            peer = WebPeer(1000)
            try:
                call, _ = await placed_call(sip, realm, peer)
                statuses = [p.split(" ", 2)[1] for p in sip.provisional]
                assert "183" in statuses and "180" not in statuses, statuses
                reply = await call.bye()
                assert reply.startswith("SIP/2.0 200 "), reply
            finally:
                await peer.close()
        result = await uas.wait(timeout=10)
        assert result.ok, result


def _allow(message: str) -> set[str]:
    return {m.strip() for m in header_value(message, "Allow").split(",")}


async def test_chat_in_the_call_goes_both_ways_and_allow_lists_what_we_handle(tmp_path: Path) -> None:
    """The library's MESSAGE in its call reaches the phone, the phone's MESSAGE reaches the library; the
    2xx, OPTIONS and every 405 list in Allow what a library is answered: MESSAGE, REFER and NOTIFY (the
    transfers of test_sip_websocket_transfer.py; a NOTIFY without our REFER gets 481); a MESSAGE outside
    a dialog gets 405 without MESSAGE in its Allow (before: REFER and NOTIFY were listed yet got 405)."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(websocket_config(phone.address)) as gateway,
        sip_socket(gateway) as sip,
    ):
        realm = realm_of(gateway)
        refused = await sip.request("MESSAGE", f"sip:2000@{realm}", to=f"sip:2000@{realm}", body="hi")
        assert refused.startswith("SIP/2.0 405 ") and "MESSAGE" not in _allow(refused), refused
        options = await sip.request("OPTIONS", f"sip:{realm}", to=f"sip:{realm}")
        assert {"INVITE", "MESSAGE", "REFER", "NOTIFY"} <= _allow(options), options
        peer = WebPeer(1000)
        try:
            sip.call_id, sip.tag = secrets.token_hex(8), secrets.token_hex(4)
            call, answer = await placed_call(sip, realm, peer)
            assert {"MESSAGE", "REFER", "NOTIFY"} <= _allow(call.final), call.final
            await peer.accept(answer)
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            for method, status in (("NOTIFY", "481"), ("SUBSCRIBE", "405")):
                headers = "Event: refer\r\nSubscription-State: active\r\nContent-Type: message/sipfrag\r\n"
                reply = await call.in_dialog(method, headers, "SIP/2.0 100 Trying\r\n")
                assert reply.startswith(f"SIP/2.0 {status} "), reply
            assert {"MESSAGE", "REFER", "NOTIFY"} <= _allow(reply), reply

            text = "Hello from the library \u260e"
            reply = await call.in_dialog("MESSAGE", "Content-Type: text/plain;charset=utf-8\r\n", text)
            assert reply.startswith("SIP/2.0 200 "), reply
            got = await phone.wait_for("message", call=incoming["call"])
            assert got["body"] == text, got
            await phone.send("message", call=incoming["call"], body="Hello from the desk")
            message = await call.answer_request("MESSAGE")
            assert message.split("\r\n\r\n", 1)[1] == "Hello from the desk", message
            assert header_value(message, "Content-Type").startswith("text/plain"), message
            assert (await phone.wait_for("message_status", call=incoming["call"]))["code"] == 200

            reply = await call.bye()
            assert reply.startswith("SIP/2.0 200 "), reply
        finally:
            await peer.close()
        assert await no_calls(gateway)
