"""Who calls, both ways, on the wire (issue 13 item 5):

- inbound: a PBX (sipp) forwards a diverted call with P-Asserted-Identity, two Diversion headers and custom
  headers; the web user's `incoming` event shows the asserted identity, where the call was diverted from
  (oldest first, with reasons) and only the allow-listed header (X-Account, not X-Secret);
- outbound: the web user's INVITE carries P-Asserted-Identity with her display name and number (the PBX
  is in sip.trusted_sources) and the custom header her call asked for, which the PBX (sipp) checks; a
  header that is not allow-listed is refused with an error naming the field.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

SIP = {"pass_headers": ["X-Account"]}


def config(pbx: str | None) -> object:
    base = gateway_config(pbx)
    sip = {"listen": [{"transport": "udp", "host": "127.0.0.1", "port": base.sip.listen[0].port}]}
    return gateway_config(pbx, sip={**sip, "trusted_sources": ["127.0.0.1/32"], **SIP})


async def test_the_web_user_sees_who_calls_and_where_the_call_was_diverted_from(tmp_path: Path) -> None:
    require_binary("sipp")
    async with (
        running_gateway(config(None)) as gateway,  # type: ignore[arg-type]
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        sipp = Sipp(tmp_path, "uac_caller_identity", f"{host}:{port}", service="1001")
        run = asyncio.create_task(sipp.run())
        incoming = await alice.wait_for("incoming", timeout=10)
        assert incoming["from"].startswith("sip:100@") and incoming["display_name"] == "Front Desk"
        assert incoming["asserted_identity"]["display_name"] == "Carol Jones", incoming
        assert incoming["asserted_identity"]["uri"].startswith("sip:+15551230100@"), incoming
        assert [(d["uri"].split("@")[0], d["reason"]) for d in incoming["diverted_from"]] == [
            ("sip:5551000", "unconditional"),
            ("sip:1002", "no-answer"),
        ], incoming
        assert incoming["headers"] == {"X-Account": "acme-42"}, incoming  # X-Secret is not allow-listed
        await alice.request({"type": "reject", "call_id": incoming["call_id"], "status": 486})
        result = await run
        assert result.ok, result


async def test_the_pbx_sees_the_web_users_identity_and_her_custom_header(tmp_path: Path) -> None:
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_caller_identity", calls=None, auto_answer=True)  # -aa: 200 to OPTIONS
    await pbx.start()
    try:
        async with (
            running_gateway(config(pbx.address)) as gateway,  # type: ignore[arg-type]
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(freq=1000)
            try:
                with pytest.raises(WebUserError, match="headers"):
                    await alice.call("2000", await peer.offer(), headers={"X-Secret": "no"})
                call_id = await alice.call("2000", await peer.offer(), headers={"X-Account": "acme-42"})
                await peer.accept((await alice.wait_for("connected", call_id=call_id, timeout=10))["sdp"])
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
    finally:
        result = await pbx.stop()
    # the INVITE passed the scenario's header checks (check_it fails the call otherwise) and was BYEd
    assert result.count("BYE") == 1 and "regexp" not in result.errors.lower(), result
    assert "X-Account: acme-42" in result.messages and "X-Secret" not in result.messages
