"""INFO (RFC 6086) relayed during a call and MESSAGE (RFC 3428) outside calls, with real peers (issue 13
item 6):

- the web user and the pjsua2 desk phone exchange INFO bodies of an allowed type (sip.info_content_types:
  application/json) both ways, the browser learns the phone's answer (`info_result`: pjsua answers 500 to
  INFO bodies it has no handler for), the phone the gateway's 200; an INFO body the
  gateway does not relay gets 415 at the phone, and the browser may not send one either (error, field
  content_type);
- a MESSAGE from a PBX (sipp) reaches the web user who is online (200, a `message` event) and gets 480
  when she is not; her `message` to 2000 reaches the PBX (sipp checks the text) and she learns its 200.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from peers.binaries import require_binary
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.sipp import Sipp
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

SIP = {"trusted_sources": ["127.0.0.1/32"], "info_content_types": ["application/json"]}


def config(pbx: str | None) -> object:
    listen = gateway_config(pbx).sip.listen[0]
    return gateway_config(
        pbx, sip={"listen": [{"transport": "udp", "host": listen.host, "port": listen.port}], **SIP}
    )


async def test_info_bodies_go_both_ways_during_a_call(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(config(phone.address)) as gateway,  # type: ignore[arg-type]
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
            incoming = await phone.wait_for("incoming")
            number = incoming["call"]
            await phone.wait_for("state", call=number, state="CONFIRMED")

            # browser -> phone, and the phone's answer back to the browser
            body = json.dumps({"screen": "account", "id": 42})
            await alice.request(
                {"type": "info", "call_id": call_id, "content_type": "application/json", "body": body}
            )
            got = await phone.wait_for("info", call=number)
            assert got["content_type"].startswith("application/json") and got["body"] == body, got
            # pjsua 2.15 has no INFO handler but DTMF's and media control's: its dialog answers every
            # other INFO 500 ("Unhandled by dialog usages"); the browser learns that answer as it is
            assert (await alice.wait_for("info_result", call_id=call_id))["status"] == 500

            # phone -> browser
            await phone.send(
                "info", call=number, content_type="application/json", body='{"hold_music": "off"}'
            )
            info = await alice.wait_for("info", call_id=call_id)
            assert info["content_type"] == "application/json" and info["body"] == '{"hold_music": "off"}'
            assert (await phone.wait_for("info_response", call=number))["code"] == 200

            # a body the gateway does not relay: 415 at the phone, an error for the browser
            await phone.send("info", call=number, content_type="text/html", body="<b>hi</b>")
            assert (await phone.wait_for("info_response", call=number))["code"] == 415
            with pytest.raises(WebUserError, match="content_type"):
                await alice.request(
                    {"type": "info", "call_id": call_id, "content_type": "text/html", "body": "x"}
                )
            await asyncio.sleep(0.3)
            assert not [e for e in alice.events if e.get("type") == "info" and "html" in str(e)]
            await alice.request({"type": "hangup", "call_id": call_id})
        finally:
            await peer.close()


async def test_messages_to_and_from_the_web_user(tmp_path: Path) -> None:
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_message", calls=None, auto_answer=True)
    await pbx.start()
    try:
        async with running_gateway(config(pbx.address)) as gateway:  # type: ignore[arg-type]
            host, port = gateway.sip_address
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                result = await Sipp(tmp_path, "uac_message", f"{host}:{port}", service="1001").run()
                assert result.ok and result.count("SIP/2.0 200") == 1, result
                message = await alice.wait_for("message")
                assert message["body"].strip() == "Your visitor is at the front desk.", message
                assert message["from"].startswith("sip:100@") and message["display_name"] == "Front Desk"

                ack = await alice.request({"type": "message", "to": "2000", "body": "Meeting at 3"})
                assert ack["status"] == 200, ack
            # alice is gone: nobody to show it to
            result = await Sipp(tmp_path, "uac_message", f"{host}:{port}", service="1001").run()
            assert result.ok and result.count("SIP/2.0 480") == 1, result
    finally:
        outcome = await pbx.stop()
    assert "regexp" not in outcome.errors.lower() and outcome.count("MESSAGE") >= 1, outcome
