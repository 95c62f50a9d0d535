"""DTLS-SRTP toward a SIP peer that offers it (RFC 5763/5764), with a real one: baresip 1.0.0 with
``mediaenc=dtls_srtp`` calls the web user. The gateway answers UDP/TLS/RTP/SAVP(F) with its fingerprint
and a=setup:active, runs the handshake on the SIP leg's RTP socket (and on the RTCP socket when RTCP is
not muxed), and audio goes both ways by tone: baresip's 440 Hz to the browser stand-in, the browser's
1000 Hz into baresip's recording. With ``medianat=ice`` the gateway answers as ICE-lite."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from peers.baresip import Baresip
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone


@pytest.mark.parametrize(
    ("rtcp_mux", "ice", "rtp"),
    [(True, False, 37000), (False, False, 37200), (True, True, 37400)],
    ids=["rtcp-mux", "rtcp-apart", "ice-lite"],
)
async def test_baresip_calls_the_web_user_over_dtls_srtp(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, rtcp_mux: bool, ice: bool, rtp: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.media")
    media = {"rtp_ports": {"start": rtp, "end": rtp + 99}, "sip_srtp": "optional"}
    async with (
        Baresip(
            tmp_path,
            tone=440,
            mediaenc="dtls_srtp",
            rtcp_mux=rtcp_mux,
            ice=ice,
            rtp_ports=(rtp + 100, rtp + 199),
        ) as phone,  # fmt: skip
        running_gateway(gateway_config(None, media=media)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            host, port = gateway.sip_address
            await phone.dial(f"sip:1001@{host}:{port}")
            ringing = await alice.wait_for("incoming")
            await alice.answer(ringing["call_id"], peer.answer)
            await phone.wait_for("CALL_ESTABLISHED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await asyncio.sleep(2.0)  # baresip records the browser's tone meanwhile
            await phone.hangup()
            await alice.wait_for("ended", call_id=ringing["call_id"])
        finally:
            await peer.close()
        log = phone.log()
    assert "DTLS-SRTP complete" in log, log[-3000:]
    assert re.search(r"verified sha-256 fingerprint OK", log, re.IGNORECASE), log[-3000:]
    messages = [r.getMessage() for r in caplog.records]
    assert any("DTLS-SRTP on the SIP leg is up" in m for m in messages)
    assert any("as client (a=setup:active)" in m for m in messages)
    assert any("fast lane linked" in m and "SIP leg SRTP" in m for m in messages)  # keys in the engine
    assert any(("ICE-lite" in m) is ice for m in messages if "DTLS-SRTP toward the SIP side" in m)
    assert wav_has_tone(phone.recording(), 1000, skip_s=1.0)
