"""100rel/PRACK (RFC 3262) and UPDATE (RFC 3311) end to end with sipp and a web user.

- a PBX (sipp UAS) answers the web user's call with a reliable 183 carrying SDP: sipp checks that the
  INVITE says Supported: 100rel and that the PRACK's RAck is "1 <the INVITE's CSeq> INVITE"; the web
  user hears her own tone back (sipp -rtp_echo) during the early media, then the 200 connects;
- a caller requiring 100rel (sipp UAC) gets a reliable 180 (Require: 100rel, RSeq) retransmitted until
  its PRACK, the PRACK answered 200, then the call is answered and carries audio;
- a caller puts the web user on hold and takes her off by UPDATE in the confirmed dialog (the answers
  say recvonly, then sendrecv; she hears held, resumed) and refreshes the session with an UPDATE;
- a caller sends UPDATE in the early dialog: 200 without an offer, 500 with Retry-After for an offer
  while the INVITE's is unanswered (RFC 3311 §5.2)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from peers.binaries import require_binary
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

TONE = 1000.0


def media_section() -> dict[str, Any]:
    start = free_range()  # this branch's RTP range: 36000-36999
    return {"rtp_ports": {"start": start, "end": start + 100}}


async def test_a_reliable_183_with_sdp_is_prack_ed_and_carries_early_media(tmp_path: Path) -> None:
    require_binary("sipp")
    async with Sipp(tmp_path, "uas_prack_early_media", calls=1, duration_ms=4000, rtp_echo=True) as pbx:
        config = gateway_config(pbx.address, media=media_section())
        config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0))
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(TONE)
            try:
                call_id = await alice.call("2000", await peer.offer())
                early = await alice.wait_for("early_media", call_id=call_id, timeout=10)
                await peer.accept(early["sdp"])
                await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
                assert not any(e.get("type") == "connected" for e in alice.events)  # before the 200
                await alice.wait_for("connected", call_id=call_id, timeout=10)
                peer.clear()
                await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
        result = await pbx.wait(timeout=15)
    assert result.ok, result  # Supported: 100rel in the INVITE, RAck = 1 <CSeq> INVITE
    assert result.messages.count("PRACK sip:") == 1, result.messages
    assert re.search(r"^Allow: .*PRACK.*UPDATE", result.messages, re.M), result.messages


@contextlib.asynccontextmanager
async def sipp_calls_alice(
    tmp_path: Path, scenario: str, *, answer_after: float = 0.0, duration_ms: int = 2000
) -> AsyncIterator[tuple[WebUser, WebPeer, Sipp, str]]:
    """A gateway; alice online; sipp running `scenario` against her number (-rtp_echo); she answers
    `answer_after` seconds after the call rings, with a WebPeer playing TONE."""
    async with (
        running_gateway(gateway_config(None, media=media_section())) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        sipp = Sipp(
            tmp_path, scenario, f"{host}:{port}", service="1001", duration_ms=duration_ms, rtp_echo=True
        )
        peer = WebPeer(TONE)
        try:
            await sipp.start()
            incoming = await alice.wait_for("incoming")
            await asyncio.sleep(answer_after)
            await alice.answer(incoming["call_id"], peer.answer)
            yield alice, peer, sipp, incoming["call_id"]
        finally:
            await sipp.stop()
            await peer.close()


async def test_a_caller_requiring_100rel_gets_a_reliable_180_retransmitted_until_its_prack(
    tmp_path: Path,
) -> None:
    require_binary("sipp")
    async with sipp_calls_alice(tmp_path, "uac_prack_ringing", answer_after=3.0) as (
        alice,
        peer,
        sipp,
        call_id,
    ):
        await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
        await alice.wait_for("ended", call_id=call_id, timeout=15)
        result = await sipp.wait(timeout=15)
    assert result.ok, result  # the 180 said Require: 100rel with an RSeq; PRACK and INVITE answered 200
    ringing = re.findall(r"^SIP/2.0 180 .*?^RSeq: *(\d+)", result.messages, re.M | re.S)
    assert len(ringing) >= 2, result.messages  # retransmitted at T1, 2*T1 while no PRACK came
    assert len(set(ringing)) == 1, ringing  # the same RSeq each time


async def test_update_holds_and_resumes_a_confirmed_call(tmp_path: Path) -> None:
    require_binary("sipp")
    async with sipp_calls_alice(tmp_path, "uac_update_hold") as (alice, peer, sipp, call_id):
        assert (await alice.wait_for("held", call_id=call_id, timeout=10))["by"] == "remote"
        assert (await alice.wait_for("resumed", call_id=call_id, timeout=10))["by"] == "remote"
        peer.clear()
        await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)  # audio after the resume
        await alice.wait_for("ended", call_id=call_id, timeout=15)
        result = await sipp.wait(timeout=15)
    assert result.ok, result  # the hold answered recvonly, the resume sendrecv, the refresh 200
    assert result.count("SIP/2.0 200") >= 5, result


async def test_update_in_the_early_dialog(tmp_path: Path) -> None:
    require_binary("sipp")
    async with sipp_calls_alice(tmp_path, "uac_update_early", answer_after=1.5) as (
        alice,
        peer,
        sipp,
        call_id,
    ):
        await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)
        await alice.wait_for("ended", call_id=call_id, timeout=15)
        result = await sipp.wait(timeout=15)
    assert result.ok, result  # 200 to the offerless UPDATE, 500 with Retry-After to the early offer
    assert "SIP/2.0 500" in result.messages, result.messages


async def test_a_desk_phone_requiring_100rel_calls_the_web_user_and_is_called(tmp_path: Path) -> None:
    """pjsua2 with prackUse = PJSUA_100REL_MANDATORY both ways: its INVITE requires 100rel (no 420 any
    more), our 180 goes reliably and is PRACKed; our INVITE to it gets reliable 18x that we PRACK; then
    an UPDATE with a new offer from the phone in the confirmed call is answered in its 200. Audio by
    tone both ways (440 Hz from the phone, 1000 Hz from the web user) in each call."""
    from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone

    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440, extra_args=("--100rel=mandatory",), log_level=5) as phone,
        running_gateway(gateway_config(phone.address, media=media_section())) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        peer = WebPeer(freq=1000)
        try:  # the phone calls alice
            number = await phone.call(f"sip:1001@{host}:{port}")
            incoming = await alice.wait_for("incoming")
            await asyncio.sleep(1.0)  # ringing: the reliable 180 and its PRACK
            await alice.answer(incoming["call_id"], peer.answer)
            await phone.wait_for("state", call=number, state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await phone.send("update", call=number)  # UPDATE with an offer in the confirmed dialog
            await asyncio.sleep(1.0)
            peer.clear()
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)  # audio after the UPDATE
            await phone.hangup(number)
            await alice.wait_for("ended", call_id=incoming["call_id"])
            assert wav_has_tone(await phone.wait_for_recording(number), 1000)
        finally:
            await peer.close()

        peer = WebPeer(freq=1000)
        try:  # alice calls the phone (the gateway's PBX)
            call_id = await alice.call("2000", await peer.offer())
            connected = await alice.wait_for("connected", call_id=call_id)
            await peer.accept(connected["sdp"])
            ringing = await phone.wait_for("incoming")
            await phone.wait_for("state", call=ringing["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await asyncio.sleep(1.0)
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
            assert wav_has_tone(await phone.wait_for_recording(ringing["call"]), 1000)
        finally:
            await peer.close()
    log = phone.log_path.read_text(errors="replace")
    assert re.search(r"^Require: *100rel", log, re.M | re.I), "the phone never required 100rel"
    assert "PRACK sip:" in log, "no PRACK in the phone's log"
    assert re.search(r"^UPDATE sip:", log, re.M), "the phone sent no UPDATE"
    assert "SIP/2.0 420" not in log
