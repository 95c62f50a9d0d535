"""Peers that speak older or carrier SIP. Issue 67 item 3: a far end that answers the gateway's INVITE with a 200 without a To tag (an RFC 2543
peer, or a broken one). RFC 3261 §12.1.2 has the UAC take it as a dialog whose remote tag is null, as
pjsip, Asterisk and FreeSWITCH do: the call connects, audio flows both ways, and the web user's hang-up
reaches the far end as a BYE without a To tag. Before, the gateway ended the call and told the web user
"The PBX reported an error (SIP 500)", a status nobody had sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until


async def test_a_200_without_a_to_tag_connects_the_call(tmp_path: Path) -> None:
    # calls=None, -aa: sipp answers the gateway's OPTIONS keep-alives 200 and waits for the INVITE
    async with Sipp(tmp_path, "uas_untagged", calls=None, rtp_echo=True, auto_answer=True) as uas:
        async with (
            running_gateway(gateway_config(uas.address)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(freq=900)
            try:
                call_id = await alice.call("2000", await peer.offer())
                connected = await alice.wait_for("connected", call_id=call_id)
                await peer.accept(connected["sdp"])
                await wait_until(lambda: peer.heard(900, last=1.0), timeout=10)  # sipp echoes her tone
                await alice.request({"type": "hangup", "call_id": call_id})
                ended = await alice.wait_for("ended", call_id=call_id)
                assert ended["reason"] == "hangup", ended
            finally:
                await peer.close()
        result = await uas.stop()
    # the ACK and the BYE reached sipp in the null-tag dialog (To without a tag), and sipp answered it
    assert result.count("ACK sip:") == 1 and result.count("BYE sip:") == 1, result
    bye = result.messages[result.messages.index("BYE sip:") :]
    assert ";tag=" not in bye.split("To:", 1)[1].split("\n", 1)[0], bye


async def test_a_sip_i_invite_rings_the_web_user_with_its_sdp_part(tmp_path: Path) -> None:
    """Issue 67 item 6: a SIP-I/SIP-T carrier's INVITE carries multipart/mixed (SDP beside ISUP,
    RFC 3204); it was refused 415. The gateway takes the SDP part (RFC 5621 §3.1): alice rings, answers,
    and the carrier's echo of her tone comes back."""
    async with (
        running_gateway(gateway_config(None)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        carrier = Sipp(
            tmp_path, "uac_sip_i", f"{host}:{port}", service="1001", duration_ms=3000, rtp_echo=True
        )
        run = asyncio.create_task(carrier.run(timeout=30))
        peer = WebPeer(freq=700)
        try:
            incoming = await alice.wait_for("incoming", timeout=10)
            await alice.answer(incoming["call_id"], peer.answer)
            await wait_until(lambda: peer.heard(700, last=1.0), timeout=10)
            ended = await alice.wait_for("ended", call_id=incoming["call_id"], timeout=15)
            assert ended["reason"] == "remote_hangup", ended
        finally:
            await peer.close()
        result = await run
        assert result.ok and result.count("SIP/2.0 415") == 0, result
