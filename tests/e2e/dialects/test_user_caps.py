"""Per-user caps against a whole gateway (issue 32 item 8): one user's calls that only ring (a sipp PBX
that rings for ever) cannot take the gateway from the others.

- bob's calls over `limits.unanswered_per_user` are refused before any SIP: HTTP offer API 429 with the
  limit named, the WebSocket an `error` naming it, WHIP 429, JSON-RPC an error whose data names it; the
  PBX sees only his admitted INVITEs, and alice's call still rings;
- SIP over WebSocket: alice's INVITE over her cap gets 486 with the limit in a Warning, bob's call rings;
- `limits.calls_per_user` counts his ringing calls too;
- event streams: bob's past his own cap get 429 naming the limit while alice still streams; a stream he
  closes is counted off and he may open one again;
- the RTP port budget (`limits.port_share` of media.rtp_ports): bob's calls stop at his share of port
  pairs, alice (her own `limits.port_share`) still gets hers;
- an API key's own caps (users[].api_keys[]): `max_calls` counts its calls in every dialect that takes
  keys (a JSON-RPC call fills it for the HTTP offer API, WHIP and JSON-RPC), `max_unanswered` its calls
  that only ring, `max_event_streams` its event streams; each refuses over its cap (429 / a JSON-RPC
  error naming it) while the key's user still calls and streams, and admits again once the call ends.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config.limits import UserLimits
from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from sipcore.auth.digest import parse_auth_header
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.websip.test_sip_websocket import (
    ALICE_SIP_PASSWORD,
    answer,
    header_value,
    realm_of,
    sip_socket,
    websocket_config,
)

BOB = {"Authorization": "Basic " + base64.b64encode(f"bob:{BOB_SECRET}".encode()).decode()}


async def _offer(http: aiohttp.ClientSession, base: str, sdp: str) -> tuple[int, dict[str, Any]]:
    body = {"sdp": {"type": "offer", "sdp": sdp}, "metadata": {"dial": "2000"}}
    async with http.post(f"{base}/webrtc/offer", json=body, headers=BOB) as response:
        return response.status, await response.json()


async def _ringing_pbx(tmp_path: Path) -> Sipp:
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_ring_cancelled", calls=None, timeout=120)
    await pbx.start()
    return pbx


async def test_calls_over_the_unanswered_cap_are_refused_in_every_dialect(tmp_path: Path) -> None:
    pbx = await _ringing_pbx(tmp_path)
    try:
        config = gateway_config(pbx.address, limits={"calls_per_user": 8, "unanswered_per_user": 2})
        async with (
            running_gateway(config) as gateway,
            aiohttp.ClientSession() as http,
            WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(freq=1000)
            try:
                offer = await peer.offer()
                for _ in range(2):  # admitted: they ring for ever
                    status, body = await _offer(http, gateway.http_url, offer)
                    assert status == 200, body
                await wait_until(lambda: gateway.driver.registry.usage("bob").unanswered == 2)

                status, body = await _offer(http, gateway.http_url, offer)
                assert status == 429, body
                assert body["reason"] == "too_many_unanswered_calls", body
                assert "limits.unanswered_per_user" in body["error"], body

                with pytest.raises(WebUserError, match="too_many_unanswered_calls"):
                    await bob.call("2000", offer)
                whip = {**BOB, "Content-Type": "application/sdp"}
                async with http.post(f"{gateway.http_url}/whip/2000", data=offer, headers=whip) as refused:
                    assert refused.status == 429, await refused.text()
                    assert (await refused.json())["reason"] == "too_many_unanswered_calls"
                rpc_url = gateway.http_url.replace("http", "ws", 1) + "/jsonrpc"
                async with http.ws_connect(rpc_url, headers=BOB) as ws:
                    reply = await RpcClient(ws).request(
                        "offer", {"sdp": offer, "type": "offer", "to": "2000"}
                    )
                    assert reply["error"]["data"]["reason"] == "too_many_unanswered_calls", reply

                call_id = await alice.call("2000", offer)  # alice is not bob: her call rings
                await alice.wait_for("ringing", call_id=call_id, timeout=20)
                assert gateway.driver.registry.usage("bob").calls == 2
            finally:
                await peer.close()
    finally:
        outcome = await pbx.stop()
    assert outcome.count("INVITE") == 3, outcome  # bob's two and alice's one: nothing of the refused


async def test_ringing_calls_count_against_the_calls_cap(tmp_path: Path) -> None:
    pbx = await _ringing_pbx(tmp_path)
    try:
        config = gateway_config(pbx.address, limits={"calls_per_user": 2, "unanswered_per_user": 4})
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
        ):
            peer = WebPeer(freq=1000)
            try:
                offer = await peer.offer()
                for _ in range(2):
                    await bob.wait_for("ringing", call_id=await bob.call("2000", offer), timeout=20)
                with pytest.raises(WebUserError, match=r"too_many_calls.*limits\.calls_per_user"):
                    await bob.call("2000", offer)
            finally:
                await peer.close()
    finally:
        outcome = await pbx.stop()
    assert outcome.count("INVITE") == 2, outcome


async def test_one_user_cannot_take_more_than_his_share_of_the_rtp_ports(tmp_path: Path) -> None:
    pbx = await _ringing_pbx(tmp_path)
    try:
        # media.rtp_ports holds 100 pairs (the harness's range): bob may hold 6 (0.06), alice 50; a call
        # holds two, its SIP leg's and its web leg's ICE socket's (issue 36: all media in the range)
        config = gateway_config(
            pbx.address,
            limits={"calls_per_user": 50, "unanswered_per_user": 50, "port_share": 0.06},
            ice={"host_addresses": ["127.0.0.1"]},  # one ICE pair per web leg, whatever the host's interfaces
            alice_extra={"limits": {"port_share": 0.5}},
        )
        async with (
            running_gateway(config) as gateway,
            aiohttp.ClientSession() as http,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(freq=1000)
            try:
                offer = await peer.offer()
                for _ in range(3):
                    status, body = await _offer(http, gateway.http_url, offer)
                    assert status == 200, body
                ports, pool = gateway.ports, gateway.ice_pool

                def in_calls() -> int:  # the pairs calls hold (the ICE socket pool's are in none)
                    return len(ports.held) - pool.idle

                await wait_until(lambda: in_calls() == 6, timeout=20)
                status, body = await _offer(http, gateway.http_url, offer)
                assert status == 429 and body["reason"] == "port_budget", body
                assert "limits.port_share" in body["error"], body
                assert in_calls() == 6  # the refused call leased nothing

                for _ in range(4):  # alice's calls are not bob's: past bob's 6 pairs
                    call_id = await alice.call("2000", offer)
                    await alice.wait_for("ringing", call_id=call_id, timeout=20)
                assert in_calls() == 14
            finally:
                await peer.close()
    finally:
        outcome = await pbx.stop()
    assert outcome.count("INVITE") == 7, outcome


async def test_event_streams_are_capped_per_user(tmp_path: Path) -> None:
    pbx = await _ringing_pbx(tmp_path)
    alice_auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}
    try:
        config = gateway_config(pbx.address, limits={"event_streams_per_user": 4})
        alice, bob = config.users
        config = dataclasses.replace(
            config, users=(alice, dataclasses.replace(bob, limits=UserLimits(event_streams=2)))
        )
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            base = gateway.http_url
            peer = WebPeer(freq=1000)
            streams: list[aiohttp.ClientResponse] = []
            try:
                offer = await peer.offer()
                status, bobs = await _offer(http, base, offer)
                assert status == 200, bobs
                body = {"sdp": {"type": "offer", "sdp": offer}, "metadata": {"dial": "2000"}}
                async with http.post(f"{base}/webrtc/offer", json=body, headers=alice_auth) as response:
                    assert response.status == 200
                    alices = await response.json()

                async def stream(session: dict[str, Any], auth: dict[str, str]) -> aiohttp.ClientResponse:
                    return await open_stream(http, f"{base}{session['events_url']}", auth, streams)

                for _ in range(2):
                    assert (await stream(bobs, BOB)).status == 200
                refused = await stream(bobs, BOB)
                assert refused.status == 429
                error = await refused.json()
                assert error["reason"] == "too_many_event_streams", error
                assert "limits.event_streams_per_user" in error["error"], error

                for _ in range(4):  # bob's streams take none of alice's
                    assert (await stream(alices, alice_auth)).status == 200
                assert (await stream(alices, alice_auth)).status == 429  # hers: the section's 4

                streams.pop(0).close()  # one of bob's goes: he may open one again
                await wait_until_stream(lambda: stream(bobs, BOB))
            finally:
                for response in streams:
                    response.close()
                await peer.close()
    finally:
        await pbx.stop()


async def open_stream(
    http: aiohttp.ClientSession, url: str, auth: dict[str, str], streams: list[aiohttp.ClientResponse]
) -> aiohttp.ClientResponse:
    """GET an event stream; one that opened (its `retry:` line read) is kept in `streams` for the test
    to close."""
    response = await http.get(url, headers=auth)
    if response.status == 200:
        streams.append(response)
        assert (await response.content.readline()).startswith(b"retry:")
    return response


async def wait_until_stream(open_one: Any, timeout: float = 20) -> None:
    """Open a stream until the gateway has counted a closed one off (its handler ends on the next write)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await open_one()
        if response.status == 200:
            return
        assert response.status == 429 and loop.time() < deadline, response.status
        await asyncio.sleep(0.2)


async def test_sip_over_websocket_calls_over_the_cap_get_486_with_the_reason(tmp_path: Path) -> None:
    pbx = await _ringing_pbx(tmp_path)
    alice_auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}
    try:
        config = websocket_config(pbx.address, sections={"limits": {"unanswered_per_user": 1}})
        async with (
            running_gateway(config) as gateway,
            aiohttp.ClientSession() as http,
            sip_socket(gateway) as sip,
            WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
        ):
            peer = WebPeer(freq=1000)
            try:
                offer = await peer.offer()
                body = {"sdp": {"type": "offer", "sdp": offer}, "metadata": {"dial": "2000"}}
                async with http.post(
                    f"{gateway.http_url}/webrtc/offer", json=body, headers=alice_auth
                ) as rung:
                    assert rung.status == 200, await rung.text()  # alice's one unanswered call
                uri = f"sip:2000@{realm_of(gateway)}"
                headers = "Content-Type: application/sdp\r\n"
                first = await sip.request("INVITE", uri, to=uri, headers=headers, body=offer)
                challenge = dict(parse_auth_header(header_value(first, "WWW-Authenticate"))[0][1])
                authorization = answer(challenge, "alice", ALICE_SIP_PASSWORD, "INVITE", uri)
                headers += f"Authorization: {authorization}\r\n"
                reply = await sip.request("INVITE", uri, to=uri, headers=headers, body=offer)
                assert reply.startswith("SIP/2.0 486 "), reply
                assert "limits.unanswered_per_user" in header_value(reply, "Warning"), reply

                call_id = await bob.call("2000", offer)  # bob's own cap is untouched
                await bob.wait_for("ringing", call_id=call_id, timeout=20)
            finally:
                await peer.close()
    finally:
        outcome = await pbx.stop()
    assert outcome.count("INVITE") == 2, outcome  # alice's HTTP call and bob's


KIOSK = {"X-API-Key": "kiosk-key-0123456789abcdef"}
KIOSK_ID = "alice/api_keys[0]"  # what the caps count the key's calls by (config.users.api_key_id)
ALICE = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}


def _kiosk_config(pbx: Sipp, **caps: int) -> Any:
    """alice with the kiosk key and its `caps`; her own limits well above them."""
    key = {"key": KIOSK["X-API-Key"], "name": "kiosk", **caps}
    return gateway_config(
        pbx.address, limits={"calls_per_user": 8, "unanswered_per_user": 8}, alice_extra={"api_keys": [key]}
    )


async def _post(
    http: aiohttp.ClientSession, base: str, sdp: str, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    body = {"sdp": {"type": "offer", "sdp": sdp}, "metadata": {"dial": "2000"}}
    async with http.post(f"{base}/webrtc/offer", json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_an_api_keys_call_cap_holds_in_every_dialect_and_its_user_goes_on(tmp_path: Path) -> None:
    """max_calls counts the key's calls whichever dialect placed them: a JSON-RPC call with the key
    fills it for the HTTP offer API, WHIP and JSON-RPC alike; alice's own login is not held back; once
    the call ends the key may call again."""
    pbx = await _ringing_pbx(tmp_path)
    try:
        async with (
            running_gateway(_kiosk_config(pbx, max_calls=1)) as gateway,
            aiohttp.ClientSession() as http,
        ):
            base = gateway.http_url
            rpc_url = base.replace("http", "ws", 1) + "/jsonrpc"
            peer = WebPeer(freq=1000)
            try:
                offer = await peer.offer()
                rpc_offer = {"sdp": offer, "type": "offer", "to": "2000"}
                async with http.ws_connect(rpc_url, headers=KIOSK) as ws:
                    rpc = RpcClient(ws)
                    placed = await rpc.request("offer", rpc_offer)  # the key's one call: it rings
                    assert "result" in placed, placed
                    status, refused = await _post(http, base, offer, KIOSK)
                    assert status == 429 and refused["reason"] == "too_many_calls_for_key", refused
                    assert "api_keys[].max_calls 1" in refused["error"], refused
                    whip = {**KIOSK, "Content-Type": "application/sdp"}
                    async with http.post(f"{base}/whip/2000", data=offer, headers=whip) as response:
                        assert response.status == 429, await response.text()
                        assert (await response.json())["reason"] == "too_many_calls_for_key"
                    async with http.ws_connect(rpc_url, headers=KIOSK) as second:
                        reply = await RpcClient(second).request("offer", rpc_offer)
                        assert reply["error"]["data"]["reason"] == "too_many_calls_for_key", reply
                    status, hers = await _post(http, base, offer, ALICE)  # the key's user goes on
                    assert status == 200, hers

                    call_id = placed["result"]["call_id"]
                    await rpc.request("disconnect", {"call_id": call_id})
                    await wait_until(lambda: gateway.driver.registry.key_usage(KIOSK_ID).calls == 0)
                status, again = await _post(http, base, offer, KIOSK)  # its call ended: it may call again
                assert status == 200, again
                status, refused = await _post(http, base, offer, KIOSK)
                assert status == 429 and refused["reason"] == "too_many_calls_for_key", refused
            finally:
                await peer.close()
    finally:
        outcome = await pbx.stop()
    assert outcome.count("INVITE") == 3, outcome  # the key's two calls and alice's: none refused went out


async def test_an_api_keys_unanswered_calls_and_event_streams_are_capped(tmp_path: Path) -> None:
    """max_unanswered: the key's calls that only ring stop at it (HTTP offer API and JSON-RPC alike)
    while alice's own credentials still call; max_event_streams: the key's streams stop at it while
    alice's login still streams; when the key's call ends (its session closed) its stream ends too, and
    the key may call and stream again."""
    pbx = await _ringing_pbx(tmp_path)
    try:
        async with (
            running_gateway(_kiosk_config(pbx, max_unanswered=1, max_event_streams=1)) as gateway,
            aiohttp.ClientSession() as http,
        ):
            base = gateway.http_url
            peer = WebPeer(freq=1000)
            streams: list[aiohttp.ClientResponse] = []

            async def stream(session: dict[str, Any], auth: dict[str, str]) -> aiohttp.ClientResponse:
                return await open_stream(http, f"{base}{session['events_url']}", auth, streams)

            try:
                offer = await peer.offer()
                status, first = await _post(http, base, offer, KIOSK)
                assert status == 200, first
                status, refused = await _post(http, base, offer, KIOSK)
                assert status == 429 and refused["reason"] == "too_many_unanswered_calls_for_key", refused
                assert "api_keys[].max_unanswered 1" in refused["error"], refused
                rpc_url = base.replace("http", "ws", 1) + "/jsonrpc"
                async with http.ws_connect(rpc_url, headers=KIOSK) as ws:
                    reply = await RpcClient(ws).request("offer", {"sdp": offer, "to": "2000"})
                    assert reply["error"]["data"]["reason"] == "too_many_unanswered_calls_for_key", reply
                status, hers = await _post(http, base, offer, ALICE)
                assert status == 200, hers

                assert (await stream(first, KIOSK)).status == 200
                refused_stream = await stream(first, KIOSK)
                assert refused_stream.status == 429
                error = await refused_stream.json()
                assert error["reason"] == "too_many_event_streams_for_key", error
                assert "api_keys[].max_event_streams 1" in error["error"], error
                assert (await stream(hers, ALICE)).status == 200  # her login's streams are not the key's

                close = {"session_id": first["session_id"]}
                async with http.post(f"{base}/webrtc/close", json=close, headers=KIOSK) as closed:
                    assert closed.status == 200, await closed.text()
                await wait_until(lambda: gateway.driver.registry.key_usage(KIOSK_ID).calls == 0)
                status, again = await _post(http, base, offer, KIOSK)  # its call ended: it calls again
                assert status == 200, again
                await wait_until_stream(lambda: stream(again, KIOSK))  # its ended call's stream is off
            finally:
                for response in streams:
                    response.close()
                await peer.close()
    finally:
        outcome = await pbx.stop()
    assert outcome.count("INVITE") == 3, outcome  # the key's two calls and alice's
