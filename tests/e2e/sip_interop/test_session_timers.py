"""Session timers (RFC 4028) with sipp as the PBX side and a web user answering, on short intervals
(calls.min_session_interval lowered for the test): the gateway refreshes when it is the refresher
(three re-INVITEs seen by sipp, the call goes on), ends the call with BYE when the far end misses its
refresh (the web user is told), and answers 422 with Min-SE to an interval below its minimum, before
anyone rings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

CALLS = {"session_interval": 60, "min_session_interval": 2}


@contextlib.asynccontextmanager
async def answered_call(tmp_path: Path, scenario: str, se: str) -> AsyncIterator[tuple[WebUser, Sipp, str]]:
    """sipp runs `scenario` (Session-Expires `se`) against alice, who answers: (alice, sipp, call id)."""
    require_binary("sipp")
    async with (
        # sipp sends no RTP: the 5 s RTP inactivity timeout must not end the call before the timers do
        running_gateway(gateway_config(None, calls=CALLS, media={"inactivity_timeout": 30})) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        sipp = Sipp(tmp_path, scenario, f"{host}:{port}", service="1001", keys={"se": se})
        peer = WebPeer(1000.0)
        try:
            await sipp.start()
            incoming = await alice.wait_for("incoming")
            await alice.answer(incoming["call_id"], peer.answer)
            yield alice, sipp, incoming["call_id"]
        finally:
            await sipp.stop()
            await peer.close()


async def test_the_gateway_refreshes_the_session_when_it_is_the_refresher(tmp_path: Path) -> None:
    async with answered_call(tmp_path, "uac_session_refresh", "4") as (alice, sipp, call_id):
        result = await sipp.wait(timeout=20)  # three refreshes at 2 s intervals, then BYE
        ended = await alice.wait_for("ended", call_id=call_id)
    assert result.ok, result
    assert ended["reason"] == "remote_hangup", ended  # not a timer's doing: the far end hung up
    assert "Session-Expires: 4;refresher=uas" in result.messages  # sipp's INVITE, our 200 (we are the UAS)
    # RFC 4028 §7.4: our refreshing re-INVITEs name us by our role in them, the UAC (issue 33)
    assert result.messages.count("Session-Expires: 4;refresher=uac") >= 3, result.messages[-3000:]


async def test_a_missed_refresh_ends_the_call_with_bye(tmp_path: Path) -> None:
    async with answered_call(tmp_path, "uac_session_missed", "3") as (alice, sipp, call_id):
        loop = asyncio.get_running_loop()
        answered_at = loop.time()
        ended = await alice.wait_for("ended", call_id=call_id, timeout=10)
        lasted = loop.time() - answered_at
        result = await sipp.wait(timeout=10)
    assert result.ok, result  # 200 said refresher=uac with Require: timer, then our BYE came
    assert 1.0 <= lasted <= 4.0, lasted  # 3 s - min(32, 1) = 2 s after the answer, give or take
    assert ended["reason"] == "connection_lost", ended


async def test_an_interval_below_min_se_is_422_before_anyone_rings(tmp_path: Path) -> None:
    require_binary("sipp")
    async with (
        # sipp sends no RTP: the 5 s RTP inactivity timeout must not end the call before the timers do
        running_gateway(gateway_config(None, calls=CALLS, media={"inactivity_timeout": 30})) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        result = await Sipp(
            tmp_path, "uac_session_too_small", f"{host}:{port}", service="1001", keys={"se": "1"}
        ).run()
        await asyncio.sleep(0.2)
        assert [e for e in alice.events if e.get("type") == "incoming"] == []
    assert result.ok, result
    assert "SIP/2.0 422 Session Interval Too Small" in result.messages and "Min-SE: 2" in result.messages
