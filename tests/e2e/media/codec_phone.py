"""A phone of one SIP codec and the web user through the gateway, both ways of calling: sipp does the
phone's SIP (a scenario whose SDP names the ``<codec>_port`` key: the test's own RTP peer's port, not
sipp's) and a ``RtpTonePeer`` its media; the web user is an aiortc ``WebPeer``. Each test says what the
two must hear of each other (``talk``, given the gateway and the web user's call id too) once the call
is up. Used by test_g729_phone.py and
test_g722_phone.py."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from peers.audio import RtpTonePeer
from peers.sipp import Sipp, SippResult
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

Talk = Callable[[RtpTonePeer, WebPeer, Gateway, str], Awaitable[None]]
_TRANSCODING = re.compile(r" transcoding (\S+ -> \S+)$")


def transcoded(caplog: pytest.LogCaptureFixture, codec: str) -> set[str]:
    """What the calls' paths said they transcode ("call=... sip->web transcoding G729 -> opus")."""
    return {found[1] for m in caplog.messages if (found := _TRANSCODING.search(m)) and codec in m}


async def phone_calls_web_user(
    tmp_path: Path, scenario: str, keys: dict[str, str], codecs: dict[str, Any], web: WebPeer,
    phone: RtpTonePeer, talk: Talk,
) -> SippResult:  # fmt: skip
    """sipp's ``scenario`` calls alice (1001), who answers with ``web``; ``talk``; sipp hangs up."""
    async with (
        running_gateway(gateway_config(None, codecs=codecs)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        sipp = Sipp(tmp_path, scenario, f"{host}:{port}", service="1001", duration_ms=5000, keys=keys)
        try:
            await sipp.start()
            incoming = await alice.wait_for("incoming")
            await alice.answer(incoming["call_id"], web.answer)
            await talk(phone, web, gateway, incoming["call_id"])
            await alice.wait_for("ended", call_id=incoming["call_id"], timeout=15)
            return await sipp.wait(timeout=15)
        finally:
            await sipp.stop()


async def web_user_calls_phone(
    tmp_path: Path, scenario: str, keys: dict[str, str], codecs: dict[str, Any], web: WebPeer,
    phone: RtpTonePeer, talk: Talk, check_answer: Callable[[str], None] = lambda sdp: None,
) -> SippResult:  # fmt: skip
    """alice calls 2000 at sipp's ``scenario`` (the PBX) from ``web``; ``check_answer`` is given the SDP
    the web user got; ``talk``; alice hangs up."""
    async with Sipp(tmp_path, scenario, calls=1, keys=keys) as pbx:
        config = gateway_config(pbx.address, codecs=codecs)  # no OPTIONS keepalive: sipp takes one call
        config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0.0))
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            call_id = await alice.call("2000", await web.offer())
            connected = await alice.wait_for("connected", call_id=call_id)
            check_answer(connected["sdp"])
            await web.accept(connected["sdp"])
            await talk(phone, web, gateway, call_id)
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
        return await pbx.wait(timeout=10)
