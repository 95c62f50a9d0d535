"""`audio_stream.allowed_targets` on a whole gateway (issue 67 item 20): the admin audio stream of a
live call (a pjsua2 desk phone called by an aiortc web user over WHIP) to a url outside the list is
refused 400 naming the field `url` and the setting, before anything connects; one inside the list is
streamed to the test's own WebSocket app. (The patterns, the link-local default and resolved names:
tests/runtime/test_audio_streams.py, tests/signaling/test_audio_stream_client.py.)"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port, free_range
from peers.webpeer import WebPeer
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.media.test_audio_stream import ADMIN, ADMIN_TOKEN, API_KEY, App, call_over_whip, frames_of
from tests.signaling.test_audio_stream_client import serving


async def test_a_stream_goes_only_to_an_allowed_target(tmp_path: Path) -> None:
    require_desk_phone()
    app = App()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone, serving(app.handler) as url:
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        config = gateway_config(
            phone.address,
            alice_extra={"api_keys": [{"key": API_KEY}]},
            media={"rtp_ports": {"start": free_range()}},
            admin={"token": ADMIN_TOKEN},
            audio_stream={"allowed_targets": [f"127.0.0.1:{port}", "bot.example.org"]},
        )
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            base = gateway.http_url
            web_user = WebPeer(freq=1000)
            try:
                whip, _, _, call_id = await call_over_whip(http, base, phone, web_user)
                path = f"{base}/admin/api/calls/{call_id}/audio-stream"
                outside = f"ws://127.0.0.1:{free_port()}/listen"
                async with http.post(path, json={"url": outside}, headers=ADMIN) as r:
                    body = await r.json()
                    assert (r.status, body["field"]) == (400, "url"), body
                    assert "audio_stream.allowed_targets" in body["error"], body
                assert gateway.audio_streams.status(call_id)["status"] == "off"
                async with http.post(path, json={"url": url}, headers=ADMIN) as r:
                    body = await r.json()
                    assert (r.status, body["url"]) == (201, url), body
                await wait_until(lambda: app.streams and len(frames_of(app.streams[0])) >= 50, timeout=15)
                start = app.streams[0]["start"]
                assert isinstance(start, dict) and start["call_id"] == call_id
                async with http.delete(path, headers=ADMIN) as r:
                    assert r.status == 200
                await wait_until(lambda: app.streams[0]["stop"] is not None, timeout=5)
                assert await whip.delete() == 200
            finally:
                await web_user.close()
