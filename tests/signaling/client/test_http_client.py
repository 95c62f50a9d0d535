"""The Python client library (gateway/signaling/client) against a whole running gateway and a pjsua2 desk phone:
exchange_sdp with an API key's default destination, progress events, candidates, ICE servers, close,
and errors carrying the HTTP status as `code`."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.signaling.client import IceCandidate, WebRtcClient, WebRtcClientError
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.webpeer import WebPeer
from tests.e2e.harness import gateway_config, running_gateway, wait_until

API_KEY = "client-library-key-0123456789"


async def test_client_library_calls_the_phone(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = gateway_config(
            phone.address,
            alice_extra={"api_keys": [{"key": API_KEY, "default_dial": "2000"}]},
            ice={"browser": [{"urls": ["stun:stun.example.com:3478"]}]},
            media={"rtp_ports": {"start": free_range()}},
        )
        async with (
            running_gateway(config) as gateway,
            WebRtcClient(gateway.http_url, api_key=API_KEY) as client,
        ):
            assert await client.get_ice_servers() == [{"urls": ["stun:stun.example.com:3478"]}]
            peer = WebPeer(freq=1000)
            try:
                session_id, answer = await client.setup_session(
                    await peer.offer(),
                    [IceCandidate("candidate:9 1 udp 2130706431 127.0.0.1 9 typ host", 0, "0")],
                )
                await peer.accept(answer)
                names = []
                async for event in client.events(session_id):
                    names.append(event.event)
                    if event.event == "answered":
                        break
                assert names == ["ringing", "answered"]
                await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                assert (await client.session_status(session_id))["state"] == "answered"
                await client.close_session(session_id, "Completed")
                await phone.wait_for("state", state="DISCONNECTED")
                with pytest.raises(WebRtcClientError) as refused:
                    await client.close_session(session_id)
                assert (refused.value.code, refused.value.reason) == (404, "not_found")
            finally:
                await peer.close()
