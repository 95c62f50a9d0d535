"""A JSON-RPC peer's call outlives its WebSocket (issue 34 item 2): an aiortc browser announced as
`alice-laptop` calls the pjsua2 desk phone through a whole gateway, then its socket closes without
`disconnect`. The call goes on (no BYE, the audio untouched: the RTCPeerConnection never depended on the
socket); bob's announce of the id takes nothing (-32008); alice's new socket announcing the id resumes the
peer (`resumed: true`, its session id and `call_ids`), is told what happened meanwhile (the phone's DTMF),
holds the call and hears the phone's BYE as `disconnect`. A peer that does not come back within
`web_auth.reconnect_grace` loses the call (BYE to the phone after the grace, not before)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.app import Gateway
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_offer_loss import die
from tests.e2e.dialects.test_jsonrpc import API_KEY, RpcClient
from tests.e2e.harness import BOB_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.softphone.test_reconnect import tail_has_tone

ANNOUNCE = {"peer_id": "alice-laptop", "capabilities": {"incoming_calls": True}}


def _config(phone: DeskPhone, grace: float) -> Any:
    return gateway_config(
        phone.address,
        alice_extra={"api_keys": [{"key": API_KEY, "default_dial": "2000"}]},
        web_auth={"reconnect_grace": grace},
    )


def _url(gateway: Gateway) -> str:
    return f"{gateway.http_url.replace('http', 'ws')}/jsonrpc"


async def _call_up(client: RpcClient, peer: WebPeer, phone: DeskPhone) -> tuple[str, str, int]:
    """alice's peer announces and calls the phone: (session id, call id, the phone's number)."""
    announced = await client.request("announce", ANNOUNCE)
    session_id = announced["result"]["session_id"]
    reply = await client.request("offer", {"sdp": await peer.offer(), "type": "offer"})
    call_id = reply["result"]["call_id"]
    await peer.accept(reply["result"]["answer"]["sdp"])
    await client.notification("progress", call_id=call_id, event="answered")
    number = int((await phone.wait_for("incoming"))["call"])
    await phone.wait_for("state", call=number, state="CONFIRMED")
    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
    return session_id, call_id, number


async def test_a_new_socket_resumes_the_peer_and_its_call(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(_config(phone, 30.0)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        peer = WebPeer(freq=1000)
        try:
            async with http.ws_connect(f"{_url(gateway)}?api_key={API_KEY}") as ws:
                session_id, call_id, number = await _call_up(RpcClient(ws), peer, phone)
            # the socket is gone: the call goes on, and what happens meanwhile is kept for the peer
            await asyncio.sleep(1.5)
            await phone.send("dtmf", digits="7")
            await asyncio.sleep(1.0)
            assert not phone.seen("state", call=number, state="DISCONNECTED")
            assert peer.heard(440, last=1.0), "the audio stopped with the socket"

            async with http.ws_connect(_url(gateway)) as bob_ws:  # bob cannot take alice's peer id
                bob = RpcClient(bob_ws)
                credentials = {"user": "bob", "secret": BOB_SECRET}
                taken = await bob.request("announce", {**ANNOUNCE, "credentials": credentials})
                assert taken["error"]["code"] == -32008, taken

            async with http.ws_connect(f"{_url(gateway)}?api_key={API_KEY}") as ws:
                client = RpcClient(ws)
                resumed = await client.request("announce", ANNOUNCE)
                result = resumed["result"]
                assert result["resumed"] is True and result["call_ids"] == [call_id], resumed
                assert result["session_id"] == session_id, resumed
                dtmf = await client.notification("progress", call_id=call_id, event="dtmf")
                assert dtmf["digit"] == "7", dtmf
                held = await client.request("hold", {"call_id": call_id})
                assert held["result"]["status"] == "holding", held
                await client.notification("progress", call_id=call_id, event="held")
                await phone.hangup(number)
                ended = await client.notification("disconnect", call_id=call_id)
                assert ended["reason"] == "remote_hangup", ended
        finally:
            await peer.close()


async def test_a_peer_that_does_not_come_back_loses_its_call_after_the_grace(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(_config(phone, 3.0)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        peer = WebPeer(freq=1000)
        try:
            async with http.ws_connect(f"{_url(gateway)}?api_key={API_KEY}") as ws:
                _, _, number = await _call_up(RpcClient(ws), peer, phone)
            closed = time.monotonic()
            await asyncio.sleep(1.5)
            assert not phone.seen("state", call=number, state="DISCONNECTED")
            await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=10)
            assert 2.5 <= time.monotonic() - closed <= 8.0
            await wait_until(lambda: gateway.driver.calls == 0, timeout=5)
        finally:
            await peer.close()


async def test_after_a_network_change_the_peer_resumes_and_renews_its_media(tmp_path: Path) -> None:
    """The socket and the RTCPeerConnection both die (a network change, an aiortc client that cannot
    restart ICE): the call waits for the media too; the new socket resumes the peer and its new
    RTCPeerConnection's `offer {call_id, sdp}` renews the media on the same SIP leg."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(_config(phone, 30.0)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        first, second = WebPeer(freq=1000), WebPeer(freq=1300)
        try:
            async with http.ws_connect(f"{_url(gateway)}?api_key={API_KEY}") as ws:
                _, call_id, number = await _call_up(RpcClient(ws), first, phone)
                die(first)
            await asyncio.sleep(gateway.config.media.inactivity_timeout + 1.5)  # the media is given up
            assert not phone.seen("state", call=number, state="DISCONNECTED")
            async with http.ws_connect(f"{_url(gateway)}?api_key={API_KEY}") as ws:
                client = RpcClient(ws)
                resumed = await client.request("announce", ANNOUNCE)
                assert resumed["result"]["call_ids"] == [call_id], resumed
                renewed = await client.request("offer", {"call_id": call_id, "sdp": await second.offer()})
                assert "result" in renewed, renewed
                await second.accept(renewed["result"]["answer"]["sdp"])
                await wait_until(lambda: second.heard(440, last=1.0), timeout=10)
                await asyncio.sleep(1.5)  # the new tone in the phone's recording
                await client.request("disconnect", {"call_id": call_id})
        finally:
            await asyncio.gather(first.close(), second.close())
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert tail_has_tone(await phone.wait_for_recording(number), 1300), (
            "the phone did not hear the renewal"
        )


async def test_a_new_socket_takes_the_calls_from_a_lingering_one(tmp_path: Path) -> None:
    """After a network change the old socket is not known dead yet: the new socket's announce of the
    peer id takes the peer and its call over at once, and the old socket is closed with 4010."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(_config(phone, 30.0)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        peer = WebPeer(freq=1000)
        try:
            async with (
                http.ws_connect(f"{_url(gateway)}?api_key={API_KEY}") as old_ws,
                http.ws_connect(f"{_url(gateway)}?api_key={API_KEY}") as new_ws,
            ):
                session_id, call_id, number = await _call_up(RpcClient(old_ws), peer, phone)
                client = RpcClient(new_ws)
                resumed = await client.request("announce", ANNOUNCE)
                result = resumed["result"]
                assert result["resumed"] is True and result["call_ids"] == [call_id], resumed
                assert result["session_id"] == session_id, resumed
                closing = await old_ws.receive(timeout=5)
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
                assert old_ws.close_code == 4010, old_ws.close_code
                held = await client.request("hold", {"call_id": call_id})
                assert held["result"]["status"] == "holding", held
                await phone.hangup(number)
                ended = await client.notification("disconnect", call_id=call_id)
                assert ended["reason"] == "remote_hangup", ended
        finally:
            await peer.close()
