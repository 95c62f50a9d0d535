"""SIP over WebSocket beyond the basics, on the wire: RFC 5626 outbound (a browser that reconnects on a
new WebSocket replaces its binding, and calls reach it there only) and SIP WebSocket on a listener of
its own (sip.websocket.listen), with or without the HTTP listener's /sip."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest

from gateway.config.schema import WebSocketListen
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port
from sipcore.auth.digest import parse_auth_header
from tests.e2e.harness import running_gateway
from tests.e2e.websip.test_sip_websocket import (
    ALICE_SIP_PASSWORD,
    SipSocket,
    answer,
    header_value,
    realm_of,
    sip_socket,
    websocket_config,
)

INSTANCE = '"<urn:uuid:5f1d7e0a-9a0b-4c2e-8f11-3b7a2d4c6e90>"'


async def register_outbound(sip: SipSocket, realm: str) -> str:
    """REGISTER as JsSIP does (Supported: outbound, Contact with reg-id and +sip.instance); the final
    response."""
    sip.contact = f"{sip.contact};reg-id=1;+sip.instance={INSTANCE}"
    headers = "Supported: path, gruu, outbound\r\nExpires: 600\r\n"
    to, uri = f"sip:alice@{realm}", f"sip:{realm}"
    first = await sip.request("REGISTER", uri, to=to, headers=headers)
    assert first.startswith("SIP/2.0 401 "), first
    challenge = dict(parse_auth_header(header_value(first, "WWW-Authenticate"))[0][1])
    authorization = answer(challenge, "alice", ALICE_SIP_PASSWORD, "REGISTER", uri)
    return await sip.request("REGISTER", uri, to=to, headers=f"{headers}Authorization: {authorization}\r\n")


async def next_invite(sip: SipSocket, timeout: float) -> str | None:
    try:
        while True:
            message = await asyncio.wait_for(sip.ws.receive_str(), timeout)
            if message.startswith("INVITE "):
                return message
    except TimeoutError:
        return None


async def reply(sip: SipSocket, request: str, status: str) -> None:
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    keep = [line for line in head[1:] if line.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq")]
    to = header_value(request, "To") + ";tag=busy1"
    await sip.ws.send_str(
        f"SIP/2.0 {status}\r\n" + "\r\n".join(keep) + f"\r\nTo: {to}\r\nContent-Length: 0\r\n\r\n"
    )


async def test_a_reconnected_browser_replaces_its_binding_and_is_called_on_the_new_flow(
    tmp_path: Path,
) -> None:
    """RFC 5626 §6: the second REGISTER (same +sip.instance and reg-id, new WebSocket, new Call-ID) gets
    200 with Require: outbound and one binding, on the new flow; the desk phone's call to alice rings the
    new WebSocket only, and the browser's 486 reaches the phone."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000") as phone,
        running_gateway(websocket_config(phone.address)) as gateway,
    ):
        realm = realm_of(gateway)
        assert gateway.web_sip is not None
        async with sip_socket(gateway) as old, sip_socket(gateway) as new:
            first = await register_outbound(old, realm)
            assert first.startswith("SIP/2.0 200 ") and header_value(first, "Require") == "outbound", first
            new.contact = old.contact.split(";reg-id")[0]  # the same Contact, as JsSIP keeps it
            final = await register_outbound(new, realm)
            assert final.startswith("SIP/2.0 200 ") and header_value(final, "Require") == "outbound", final
            assert len(re.findall(r"^Contact:", final, re.M)) == 1, final
            assert f"+sip.instance={INSTANCE}" in header_value(final, "Contact")  # JsSIP looks for it
            bindings = gateway.web_sip.registrar.bindings("alice")
            assert len(bindings) == 1 and bindings[0].flow.address[1] != 0
            assert gateway.web_sip.registrar.on_flow(bindings[0].flow) == bindings

            host, port = gateway.sip_address
            number = await phone.call(f"sip:1001@{host}:{port}")
            invite = await next_invite(new, 10)
            assert invite is not None and header_value(invite, "Content-Type") == "application/sdp"
            await reply(new, invite, "486 Busy Here")
            await phone.wait_for("state", call=number, state="DISCONNECTED")
            assert await next_invite(old, 0.5) is None  # the stale flow was never rung


@pytest.mark.parametrize("on_http", [True, False])
async def test_sip_websocket_on_its_own_port(on_http: bool) -> None:
    """sip.websocket.listen: REGISTER over ws://host:own-port/sip; with on_http false the HTTP
    listener's /sip is gone (404), with it true both work."""
    port = free_port()
    config = websocket_config(listen=WebSocketListen("127.0.0.1", port), on_http=on_http)
    async with running_gateway(config) as gateway:
        realm = realm_of(gateway)
        url = f"ws://127.0.0.1:{port}/sip"
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url, protocols=("sip",)) as ws:
                assert ws.protocol == "sip"
                _, final = await SipSocket(ws).register("alice", ALICE_SIP_PASSWORD, realm)
                assert final.startswith("SIP/2.0 200 "), final
            web_url = gateway.http_url.replace("http", "ws", 1) + "/sip"
            if on_http:
                async with http.ws_connect(web_url, protocols=("sip",)) as ws:
                    _, final = await SipSocket(ws).register("alice", ALICE_SIP_PASSWORD, realm)
                    assert final.startswith("SIP/2.0 200 "), final
            else:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(web_url, protocols=("sip",))
                assert refused.value.status == 404
