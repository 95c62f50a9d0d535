"""3xx from the PBX end to end (RFC 3261 §8.1.3.4): a sipp UAS (the PBX) answers 302 with a Contact on
another port of its host. A target alice's dial patterns allow is followed (the browser hears
`redirected`, then `connected` from the second sipp); one they forbid is refused, and the second sipp
never sees an INVITE."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gateway.config import Config
from gateway.identity.patterns import DialPattern
from peers.binaries import require_binary
from peers.ports import free_range
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway


def pbx_config(pbx: str, *patterns: str) -> Config:
    """The gateway in front of `pbx`; alice's dial patterns `patterns` (default: everything)."""
    base = gateway_config(pbx, media={"rtp_ports": {"start": free_range(), "end": 0}})
    users = base.users
    if patterns:
        users = (dataclasses.replace(users[0], allow_outbound=tuple(map(DialPattern, patterns))), *users[1:])
    return dataclasses.replace(base, users=users, pbx=dataclasses.replace(base.pbx, keepalive_interval=0.0))


async def test_a_302_to_an_allowed_target_is_followed(tmp_path: Path) -> None:
    require_binary("sipp")
    live = Sipp(tmp_path, "uas_basic_call", calls=1)
    pbx = Sipp(tmp_path, "uas_redirect", calls=1, service="2001", inf=[[live.address]])
    async with live, pbx:
        async with (
            running_gateway(pbx_config(pbx.address)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(1000)
            try:
                call_id = await alice.call("2000", await peer.offer())
                redirected = await alice.wait_for("redirected", call_id=call_id)
                assert redirected["target"] == f"sip:2001@{live.address}" and redirected["sip_status"] == 302
                connected = await alice.wait_for(("connected", "ended"), call_id=call_id)
                assert connected["type"] == "connected", alice.events
                await peer.accept(connected["sdp"])
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
        redirector, answered = await pbx.wait(timeout=10), await live.wait(timeout=10)
    assert redirector.ok, redirector
    assert answered.ok, answered
    assert "INVITE sip:2001@" in answered.messages


async def test_a_302_to_a_forbidden_target_is_refused(tmp_path: Path) -> None:
    require_binary("sipp")
    live = Sipp(tmp_path, "uas_basic_call", calls=1)
    pbx = Sipp(tmp_path, "uas_redirect", calls=1, service="9999", inf=[[live.address]])
    async with live, pbx:
        async with (
            running_gateway(pbx_config(pbx.address, "2xxx")) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(1000)
            try:
                call_id = await alice.call("2000", await peer.offer())
                ended = await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
        assert ended["reason"] == "redirected" and ended["sip_status"] == 302, ended
        assert "sip:9999@" in ended["message"] and "may not call" in ended["message"]
        assert not [e for e in alice.events if e.get("type") == "redirected"]
        redirector = await pbx.wait(timeout=10)
        assert redirector.ok, redirector
        untouched = await live.stop()
    assert untouched.count("INVITE") == 0
