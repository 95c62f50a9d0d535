"""What a call logs at INFO (issue 36 item 7; docs/operations.md "Logs"): its state moves, the INVITE, one
media line (the codecs) and the summary line when it ends: no more than 8 lines for a plain call, each
naming the call (by its id or its SIP Call-ID). It was 21, with every sub-state, the SIP dialog's states,
the RTP latch, payload types and the fast lane at INFO.

Each id has one name on every line, down to DEBUG (issue 67 item 8): `call=` is the gateway's call id,
`sip_call_id=` the SIP Call-ID; the SIP layer used to log its Call-ID as `call=`, and the line then got the
gateway's id appended as a second, different `call=`."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from gateway.ops.logctx import call_fields
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

IDS = ("call_id", "sip_call_id")


async def test_a_call_logs_its_moves_and_a_summary_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        Sipp(tmp_path, "uas_basic_call", calls=None, rtp_echo=True, auto_answer=True) as far_end,
        running_gateway(gateway_config(far_end.address)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(1000)
        try:
            caplog.set_level(logging.INFO)
            caplog.set_level(logging.DEBUG, logger="gateway")
            caplog.clear()
            call_id = await alice.call("2000", await peer.offer())
            await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
            await asyncio.sleep(2.0)
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
            for _ in range(50):  # the summary comes once the BYE is answered
                if any("ended: hangup" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
        finally:
            await peer.close()
    ours = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("gateway.")]
    lines = [r for r in ours if call_id in r.getMessage() or getattr(r, "call_id", None) == call_id]
    text = "\n".join(f"{r.name}: {r.getMessage()}" for r in lines)
    assert any("ended: hangup" in r.getMessage() for r in lines), text
    assert any("-> connected" in r.getMessage() for r in lines), text
    assert len(lines) <= 8, text
    sip_layer = [r for r in caplog.records if r.name.startswith("gateway.sip.") and call_id in call_fields(r)]
    assert sip_layer, "the SIP layer logged nothing about the call at DEBUG"
    for record in caplog.records:
        line = record.getMessage() + call_fields(record)
        assert len(set(re.findall(r"\bcall=([^\s,;:()]+)", line))) <= 1, line
        assert len(set(re.findall(r"\bsip_call_id=([^\s;:()]+)", line))) <= 1, line
