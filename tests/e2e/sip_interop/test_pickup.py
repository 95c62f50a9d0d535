"""Call pickup (RFC 3891 §3) end to end with two sipp instances and a web user.

The PBX (sipp UAS `uas_ring_picked_up`) rings for alice's call and writes its early dialog (Call-ID,
the gateway's tag, its own tag) to a file; a second phone (sipp UAC `uac_pickup`, -rtp_echo) sends an
INVITE with Replaces naming that dialog and an SDP offer. The gateway answers it with the bridge's
answer, CANCELs the ringing INVITE (the UAS sees CANCEL, answers 487), tells alice `connected` (with
her WebRTC answer) and `replaced`, and her tone comes back from the new phone's echo.

Pass-through (issue 68 item 4): alice's call rings at a WebRTC SIP peer (peers/sip_webrtc.py) through a
`media: passthrough` route, and the sipp phone picks it up: the gateway brings the media back into a
bridge of its own (the phone speaks plain RTP, the browser WebRTC)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import Config
from gateway.runtime.call_media import BridgedMedia
from gateway.runtime.passthrough import PassthroughMedia
from peers.binaries import require_binary
from peers.ports import free_range
from peers.sip_webrtc import SipWebRtcPeer
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

TONE = 1000.0


def media_section() -> dict[str, Any]:
    start = free_range()  # this branch's RTP range: 37000-37999
    return {"rtp_ports": {"start": start, "end": start + 100}}


def pbx_config(pbx: str, **sections: Any) -> Config:
    """A gateway toward sipp as its PBX, without OPTIONS keepalives (a scenario takes only its call)."""
    config = gateway_config(pbx, media=media_section(), **sections)
    return dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0))


@contextlib.asynccontextmanager
async def alice_dialing(pbx: Sipp) -> AsyncIterator[tuple[Gateway, WebUser, WebPeer, str]]:
    """A gateway toward ``pbx``; alice online calls 2000 from a WebPeer playing TONE."""
    async with (
        running_gateway(pbx_config(pbx.address)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(TONE)
        try:
            yield gateway, alice, peer, await alice.call("2000", await peer.offer())
        finally:
            await peer.close()


async def _dialog_file(path: Path, timeout: float = 10.0) -> Path:
    """The UAS's early dialog, once it wrote it (after its 180)."""
    for _ in range(int(timeout / 0.05)):
        if path.is_file():
            return path
        await asyncio.sleep(0.05)
    raise AssertionError(f"the ringing phone wrote no dialog to {path}")


@pytest.mark.parametrize(
    ("early", "picker_scenario"),
    [(False, "uac_pickup"), (True, "uac_pickup"), (False, "uac_pickup_offerless")],
    ids=["ringing", "early-media", "ringing-offerless"],
)
async def test_a_phone_picks_up_the_web_users_ringing_call(
    tmp_path: Path, early: bool, picker_scenario: str
) -> None:
    """Ringing (180): the browser's answer comes with `connected`. Early media (183 with SDP, the
    ringing phone does not echo): the browser already has it, and the audio moves to the new phone.
    Offerless (RFC 3261 §13.2.1): the picking phone's INVITE has no SDP; the gateway's 200 carries its
    offer (sipp checks PCMU in it) and the ACK the answer, after which the new phone's echo is heard."""
    require_binary("sipp")
    dialog = tmp_path / "dialog.csv"
    scenario = "uas_early_media_picked_up" if early else "uas_ring_picked_up"
    async with Sipp(tmp_path, scenario, keys={"dialog_file": str(dialog)}) as pbx:
        async with alice_dialing(pbx) as (gateway, alice, peer, call_id):
            if early:
                await peer.accept((await alice.wait_for("early_media", call_id=call_id, timeout=10))["sdp"])
                await peer.connected()
                await asyncio.sleep(1.0)
                assert not peer.heard(TONE), "the ringing phone echoes nothing"
            else:
                await alice.wait_for("ringing", call_id=call_id, timeout=10)
            host, port = gateway.sip_address
            picker = Sipp(
                tmp_path,
                picker_scenario,
                f"{host}:{port}",
                service="1001",
                inf=await _dialog_file(dialog),
                duration_ms=4000,
                rtp_echo=True,
            )
            async with picker:
                connected = await alice.wait_for("connected", call_id=call_id, timeout=10)
                replaced = await alice.wait_for("replaced", call_id=call_id, timeout=5)
                assert replaced["from"].startswith("sip:sipp@"), replaced
                if early:
                    assert connected["sdp"] is None, connected  # early_media carried the answer
                else:
                    assert connected["sdp"], connected  # no early media: the answer comes now
                    await peer.accept(connected["sdp"])
                await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)  # the new phone's echo
                await alice.wait_for("ended", call_id=call_id, timeout=15)  # the new phone's BYE
                result = await picker.wait(timeout=15)
            assert result.ok, result
        ringing = await pbx.wait(timeout=15)
    assert ringing.ok, ringing  # CANCEL, 487, ACK
    assert ringing.messages.count("CANCEL sip:") == 1, ringing.messages


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize(
    "picker_scenario", ["uac_pickup", "uac_pickup_offerless"], ids=["offer", "offerless"]
)
async def test_a_phone_picks_up_the_web_users_ringing_pass_through_call(
    tmp_path: Path, picker_scenario: str
) -> None:
    """Issue 68 item 4: alice's call to 7001 (route `media: passthrough`) rings at a WebRTC SIP peer,
    whose INVITE carried her WebRTC offer unchanged; a plain RTP phone (sipp) picks it up with Replaces,
    with an offer or without (then the 200 carries the gateway's PCMU offer, sipp checks it). The gateway
    brings the media back: a bridge answers the phone (RTP/AVP in its 200) and alice (`connected` with
    the gateway's answer, `replaced`), the ringing peer is CANCELled (487), alice's tone comes back from
    the phone's echo, and the call's record says its media went through the gateway."""
    require_binary("sipp")
    cdr = tmp_path / "calls.jsonl"
    async with SipWebRtcPeer(user="7001", trickle=True) as ringing:
        routes = [{"match": "7xxx", "media": "passthrough"}]
        config = pbx_config(ringing.address, routes=routes, cdr={"file": str(cdr)})
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(TONE)
            try:
                call_id = await alice.call("7001", await peer.offer())
                invite = await ringing.wait_for_call()
                assert "a=fingerprint:" in invite.body.decode()  # alice's WebRTC offer, passed through
                runtime = gateway.driver._runtimes[call_id]
                assert isinstance(runtime.bridge, PassthroughMedia)  # no media leg of ours while it rings
                dialog = [ringing.ring()]  # Call-ID; the gateway's tag; the peer's (uac_pickup's fields)
                await alice.wait_for("ringing", call_id=call_id, timeout=10)
                host, port = gateway.sip_address
                picker = Sipp(
                    tmp_path, picker_scenario, f"{host}:{port}", service="1001", inf=dialog,
                    duration_ms=4000, rtp_echo=True,
                )  # fmt: skip
                async with picker:
                    connected = await alice.wait_for("connected", call_id=call_id, timeout=10)
                    replaced = await alice.wait_for("replaced", call_id=call_id, timeout=5)
                    assert replaced["from"].startswith("sip:sipp@"), replaced
                    assert connected["sdp"] and connected["sdp"] != invite.body.decode(), connected
                    assert isinstance(runtime.bridge, BridgedMedia)  # the media came back
                    await peer.accept(connected["sdp"])
                    await asyncio.wait_for(ringing.cancelled.wait(), 10)
                    await wait_until(lambda: peer.heard(TONE, last=0.5), timeout=10)  # the phone's echo
                    await alice.wait_for("ended", call_id=call_id, timeout=15)  # the phone's BYE
                    result = await picker.wait(timeout=15)
                assert result.ok, result
            finally:
                await peer.close()
            await wait_until(lambda: len(_records(cdr)) == 1, timeout=10)
    assert not ringing.ended.is_set() and not ringing.media.pc.remoteDescription  # never answered
    (record,) = _records(cdr)
    assert record["media"] in ("forwarded", "transcoded"), record
    assert record["legs"]["sip"]["packets_received"] > 50, record
    assert len(record["sip_call_ids"]) == 2, record  # the ringing leg's and the picking phone's


async def test_a_refused_pickup_leaves_the_pass_through_call_ringing(tmp_path: Path) -> None:
    """Issue 68 item 4: a pickup whose offer the bridge cannot take (GSM only) is refused 488, the bridge
    made for it goes, and the call rings on passed through: the WebRTC SIP peer then answers, alice gets
    its own answer (its fingerprint) and hears its 440 Hz tone over the media it carries itself."""
    require_binary("sipp")
    async with SipWebRtcPeer(freq=440.0, user="7001") as ringing:
        routes = [{"match": "7xxx", "media": "passthrough"}]
        async with (
            running_gateway(pbx_config(ringing.address, routes=routes)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(TONE)
            try:
                call_id = await alice.call("7001", await peer.offer())
                await ringing.wait_for_call()
                dialog = [ringing.ring()]
                await alice.wait_for("ringing", call_id=call_id, timeout=10)
                host, port = gateway.sip_address
                picker = Sipp(tmp_path, "uac_pickup_refused", f"{host}:{port}", service="1001", inf=dialog)
                result = await picker.run()
                assert result.ok, result  # 488, ACKed
                assert isinstance(gateway.driver._runtimes[call_id].bridge, PassthroughMedia)
                assert not ringing.cancelled.is_set()
                await ringing.answer()
                connected = await alice.wait_for("connected", call_id=call_id, timeout=10)
                answer = ringing.media.pc.localDescription.sdp
                fingerprint = next(line for line in answer.splitlines() if line.startswith("a=fingerprint:"))
                assert fingerprint in connected["sdp"], connected  # the peer's answer, passed through
                await peer.accept(connected["sdp"])
                await wait_until(lambda: peer.heard(440.0, last=0.5), timeout=10)
                await alice.request({"type": "hangup", "call_id": call_id})
                await asyncio.wait_for(ringing.ended.wait(), 10)
            finally:
                await peer.close()
