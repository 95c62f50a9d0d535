"""Live audio streams to an app (issue 37 item 4) through a whole gateway, with real peers: a pjsua2 desk
phone (440 Hz) called by an aiortc web user (1000 Hz, over WHIP), `audio_stream.policy: always` at
16 kHz with `inject: sip`, and an aiohttp WebSocket server of the test's own as the app.

The app gets the start message (the call's metadata, rate, encoding, channels), then 20 ms frames of
interleaved 16-bit stereo PCM whose left channel holds the web user's 1 kHz and the right one the
phone's 440 Hz (Goertzel); it sends back a 700 Hz tone, which the phone's recording has. The admin REST
API stops the stream (the app gets `stop`, the fast lane links again) and starts another at 8 kHz
without injection; bad requests get 400 naming the field, a second stream 409, no credentials 401, the
web user may not name a url. A stream to an app that is not there gives up and the call goes on; the
call's end stops the stream (`stop`, reason `ended`).

The web user's `/ws` `audio_stream` request starts a stream of her own call at 8 kHz in per-leg Opus with
`inject: web`: the app's frames name their channel and decode to the two tones, and the web user hears
the app's 700 Hz; her bad requests are refused naming the field."""

from __future__ import annotations

import asyncio
import json
from array import array
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.media.bridge import MediaBridge
from gateway.media.codecs.pcm_codec import PcmCodec, PcmFormat
from peers.audio import RATE, has_tone, read_wav, sine, tone_ratio
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port, free_range
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_whip import WhipClient
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.signaling.test_audio_stream_client import serving

API_KEY = "e2e-audio-stream-key-0123456789"
ADMIN_TOKEN = "e2e-audio-stream-admin-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
USER = {"Authorization": f"Bearer {API_KEY}"}


class App:
    """The app: each connection's start message, binary frames and end message; it answers each start
    with `reply` (mono PCM at the stream's rate, sent at once: the gateway plays it out in real time)."""

    def __init__(self, reply: bytes = b"") -> None:
        self.streams: list[dict[str, object]] = []
        self._reply = reply

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        stream: dict[str, object] = {"start": None, "frames": [], "stop": None}
        self.streams.append(stream)
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                body = json.loads(message.data)
                key = "start" if body.get("type") == "start" else "stop"
                stream[key] = body
                if key == "start" and self._reply:
                    for start in range(0, len(self._reply), 640):
                        await ws.send_bytes(self._reply[start : start + 640])
            elif message.type is aiohttp.WSMsgType.BINARY:
                frames = stream["frames"]
                assert isinstance(frames, list)
                frames.append(message.data)
        return ws


async def call_over_whip(
    http: aiohttp.ClientSession, base: str, phone: DeskPhone, web_user: WebPeer
) -> tuple[WhipClient, str, str, str]:
    """``web_user`` publishes to the gateway at ``base`` over WHIP, calling desk phone 2000, which answers:
    (the WHIP client, the phone's call, the HTTP API session id, the gateway's call id)."""
    whip = WhipClient(http, f"{base}/whip/2000", API_KEY)
    await web_user.accept(await whip.publish(await web_user.offer()))
    number = (await phone.wait_for("incoming"))["call"]
    await phone.wait_for("state", call=number, state="CONFIRMED")
    assert whip.resource is not None
    session_id = whip.resource.rsplit("/", 1)[1]
    async with http.get(f"{base}/webrtc/sessions/{session_id}", headers=USER) as r:
        call_id = (await r.json())["call_id"]
    return whip, number, session_id, call_id


def channels(frames: list[bytes]) -> tuple[array[int], array[int]]:
    samples = array("h")
    samples.frombytes(b"".join(frames))
    return samples[0::2], samples[1::2]


def both_tones(frames: list[bytes], rate: int) -> bool:
    """The web user's 1 kHz on the left and the phone's 440 Hz on the right."""
    left, right = channels(frames)
    return has_tone(left, rate, 1000) and has_tone(right, rate, 440)


def frames_of(stream: dict[str, object]) -> list[bytes]:
    frames = stream["frames"]
    assert isinstance(frames, list)
    return frames


async def test_a_call_streams_both_legs_and_hears_the_app(tmp_path: Path) -> None:
    require_desk_phone()
    app = App(reply=sine(700, 16000, 4.0, amplitude=8000).tobytes())
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone, serving(app.handler) as url:
        config = gateway_config(
            phone.address,
            alice_extra={"api_keys": [{"key": API_KEY}]},
            media={"rtp_ports": {"start": free_range()}},
            admin={"token": ADMIN_TOKEN},
            audio_stream={"url": url, "policy": "always", "sample_rate": 16000, "inject": "sip",
                          "reconnect_attempts": 1, "backoff": 0.05, "connect_timeout": 1.0},
        )  # fmt: skip
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            base = gateway.http_url
            web_user = WebPeer(freq=1000)
            try:
                whip, number, session_id, call_id = await call_over_whip(http, base, phone, web_user)
                (runtime,) = gateway.driver.runtimes
                bridge = runtime.bridge
                assert isinstance(bridge, MediaBridge)

                # policy always: the stream started when the call was answered
                await wait_until(lambda: app.streams and len(frames_of(app.streams[0])) >= 150, timeout=15)
                first = app.streams[0]
                start = first["start"]
                assert isinstance(start, dict)
                assert {k: start[k] for k in ("type", "call_id", "direction", "user", "sample_rate",
                                              "encoding", "channels", "channel_map", "inject")} == {
                    "type": "start", "call_id": call_id, "direction": "outbound", "user": "alice",
                    "sample_rate": 16000, "encoding": "pcm16", "channels": 2, "channel_map": ["web", "sip"],
                    "inject": "sip",
                }  # fmt: skip
                assert "2000" in str(start["to"])
                assert bridge.fast_lane is None or bridge.fast_lane.link is None  # the Python path
                frames = frames_of(first)
                assert all(len(f) == 2 * 2 * 320 for f in frames)  # 20 ms of 16 kHz stereo
                await wait_until(
                    lambda: both_tones(frames_of(first)[-100:], 16000), timeout=10, interval=0.25
                )
                left, right = channels(frames_of(first)[-100:])
                assert not has_tone(left, 16000, 440, threshold=0.2)
                assert not has_tone(right, 16000, 1000, threshold=0.2)

                # the admin API: status, stop (the app gets stop, the fast lane may link again)
                path = f"{base}/admin/api/calls/{call_id}/audio-stream"
                async with http.get(path, headers=ADMIN) as r:
                    status = await r.json()
                    assert (r.status, status["status"], status["started_by"]) == (200, "on", "policy")
                    assert status["connected"] is True and status["frames"] >= 150
                async with http.post(path, json={}, headers=ADMIN) as r:
                    assert (r.status, (await r.json())["field"]) == (409, "call_id")  # streams already
                async with http.delete(path, headers=ADMIN) as r:
                    body = await r.json()
                    assert (r.status, body["status"], body["reason"]) == (200, "stopped", "api")
                await wait_until(lambda: first["stop"] is not None, timeout=5)
                stop = first["stop"]
                assert isinstance(stop, dict)
                assert (stop["type"], stop["call_id"], stop["stream_id"], stop["reason"]) == (
                    "stop", call_id, start["stream_id"], "api"
                )  # fmt: skip
                assert stop["frames"] >= len(frames)
                if bridge.fast_lane is not None:
                    lane = bridge.fast_lane
                    await wait_until(lambda: lane.link is not None, timeout=5)
                assert bridge.audio_filter is None
                async with http.delete(path, headers=ADMIN) as r:
                    assert (r.status, (await r.json())["field"]) == (404, "call_id")

                # bad requests name the field; none is started by them
                for bad, field in (({"sample_rate": 44100}, "sample_rate"), ({"encoding": "mp3"}, "encoding"),
                                   ({"inject": "left"}, "inject"), ({"url": "http://x"}, "url"),
                                   ({"colour": "red"}, "colour")):  # fmt: skip
                    async with http.post(path, json=bad, headers=ADMIN) as r:
                        assert (r.status, (await r.json())["field"]) == (400, field), bad
                async with http.post(
                    path, data="[1]", headers={**ADMIN, "Content-Type": "application/json"}
                ) as r:
                    assert r.status == 400
                async with http.post(path, json={}) as r:
                    assert r.status == 401
                async with http.post(
                    f"{base}/admin/api/calls/c-nope/audio-stream", json={}, headers=ADMIN
                ) as r:
                    assert (r.status, (await r.json())["field"]) == (404, "call_id")
                user_path = f"{base}/webrtc/sessions/{session_id}/audio-stream"
                async with http.post(user_path, json={"url": url}, headers=USER) as r:
                    assert (r.status, (await r.json())["field"]) == (400, "url")  # the operator's choice
                assert len(app.streams) == 1

                # started again by the admin: 8 kHz, nothing injected
                async with http.post(path, json={"sample_rate": 8000, "inject": "none"}, headers=ADMIN) as r:
                    body = await r.json()
                    assert (r.status, body["sample_rate"], body["inject"]) == (201, 8000, "none"), body
                await wait_until(
                    lambda: len(app.streams) == 2 and len(frames_of(app.streams[1])) >= 100, timeout=10
                )
                second = app.streams[1]
                assert isinstance(second["start"], dict) and second["start"]["sample_rate"] == 8000
                frames = frames_of(second)
                assert all(len(f) == 2 * 2 * 160 for f in frames)
                # each leg's tone in the latest 1.5 s (a desk phone starved at the suite's peak load sends
                # in bursts, and a stretch of concealment hides its tone for a while)
                await wait_until(lambda: both_tones(frames_of(second)[-75:], 8000), timeout=10, interval=0.25)

                # the web user may not stop the admin's stream; she starts (the configured url) and
                # stops her own with her own credentials
                async with http.delete(user_path, headers=USER) as r:
                    assert (r.status, (await r.json())["field"]) == (403, "session_id")
                async with http.delete(path, headers=ADMIN) as r:
                    assert r.status == 200
                await wait_until(lambda: second["stop"] is not None, timeout=5)
                async with http.post(user_path, json={"inject": "none"}, headers=USER) as r:
                    body = await r.json()
                    assert r.status == 201 and "url" not in body and body["started_by"] == "user alice", body
                await wait_until(lambda: len(app.streams) == 3 and frames_of(app.streams[2]), timeout=10)
                async with http.delete(user_path, headers=USER) as r:
                    assert r.status == 200 and "url" not in await r.json()
                await wait_until(lambda: app.streams[2]["stop"] is not None, timeout=5)

                # an app that is not there: the stream gives up, the call goes on
                gone = {"url": f"ws://127.0.0.1:{free_port()}/listen"}
                async with http.post(path, json=gone, headers=ADMIN) as r:
                    assert r.status == 201
                await wait_until(
                    lambda: gateway.audio_streams.status(call_id).get("error") is not None, timeout=10
                )
                web_user.clear()
                await wait_until(lambda: web_user.heard(440, last=1.0), timeout=10)

                # the call ends: so does the stream
                async with http.delete(path, headers=ADMIN) as r:
                    assert r.status == 200
                async with http.post(path, json={}, headers=ADMIN) as r:
                    assert r.status == 201
                await wait_until(
                    lambda: len(app.streams) == 4 and app.streams[3]["start"] is not None, timeout=10
                )
                assert await whip.delete() == 200
                await phone.wait_for("state", call=number, state="DISCONNECTED")
                await wait_until(lambda: app.streams[3]["stop"] is not None, timeout=10)
                last = app.streams[3]["stop"]
                assert isinstance(last, dict) and last["reason"] == "ended"
                rate, recording = read_wav(await phone.wait_for_recording(number))
            finally:
                await web_user.close()
    # the phone heard the app's 700 Hz (mixed into the web user's audio) while the first stream ran
    blocks = [recording[i : i + rate // 2] for i in range(0, len(recording), rate // 2)]
    assert sum(tone_ratio(b, rate, 700) >= 0.2 for b in blocks) >= 3, (
        "the app's 700 Hz never reached the phone"
    )
    assert sum(tone_ratio(b, rate, 1000) >= 0.2 for b in blocks) >= 3
    await asyncio.sleep(0)


async def test_a_web_user_streams_her_call_from_ws_and_hears_the_app(tmp_path: Path) -> None:
    require_desk_phone()
    app = App(reply=sine(700, 8000, 6.0, amplitude=8000).tobytes())
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone, serving(app.handler) as url:
        config = gateway_config(
            phone.address,
            media={"rtp_ports": {"start": free_range()}},
            audio_stream={"url": url, "sample_rate": 8000, "encoding": "opus", "inject": "web"},
        )
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(1000)
            try:
                call_id = await alice.call("2000", await peer.offer())
                await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
                incoming = await phone.wait_for("incoming")
                await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                assert not app.streams  # policy never: nothing until asked
                assert not peer.heard(700, last=1.0, threshold=0.2)

                for bad, field in (({"action": "begin"}, "action"), ({"action": "start", "url": url}, "url"),
                                   ({"action": "start", "sample_rate": 11025}, "sample_rate"),
                                   ({"action": "stop"}, "call_id")):  # fmt: skip
                    try:
                        await alice.request({"type": "audio_stream", "call_id": call_id, **bad})
                    except WebUserError as exc:
                        assert f"'field': '{field}'" in str(exc), exc
                    else:
                        raise AssertionError(f"{bad} was accepted")
                ack = await alice.request({"type": "audio_stream", "call_id": call_id, "action": "start"})
                assert (ack["type"], ack["request"], ack["call_id"]) == ("ack", "audio_stream", call_id)
                await wait_until(lambda: app.streams and len(frames_of(app.streams[0])) >= 200, timeout=10)
                start = app.streams[0]["start"]
                assert isinstance(start, dict)
                assert (start["encoding"], start["sample_rate"], start["started_by"]) == (
                    "opus",
                    8000,
                    "user alice",
                )
                try:
                    await alice.request({"type": "audio_stream", "call_id": call_id, "action": "start"})
                except WebUserError as exc:
                    assert "conflict" in str(exc), exc
                else:
                    raise AssertionError("a second stream was started")

                # per-leg Opus: a channel byte, then one packet; each leg's tone decodes on its own
                decoders = {0: PcmCodec("opus", PcmFormat(8000)), 1: PcmCodec("opus", PcmFormat(8000))}
                pcm: dict[int, bytes] = {0: b"", 1: b""}
                for frame in frames_of(app.streams[0]):
                    pcm[frame[0]] += decoders[frame[0]].decode(frame[1:])
                web, sip = array("h"), array("h")
                web.frombytes(pcm[0])
                sip.frombytes(pcm[1])
                assert has_tone(web[-8000:], 8000, 1000) and has_tone(sip[-8000:], 8000, 440)
                # the app's 700 Hz mixed into what the web user hears, with the phone's 440 Hz
                await wait_until(lambda: peer.heard(700, last=1.0, threshold=0.2), timeout=5)
                assert peer.heard(440, last=1.0, threshold=0.2)

                ack = await alice.request({"type": "audio_stream", "call_id": call_id, "action": "stop"})
                assert ack["request"] == "audio_stream"
                await wait_until(lambda: app.streams[0]["stop"] is not None, timeout=5)
                await asyncio.sleep(0.3)  # what was mixed before the stop, in flight
                peer.clear()
                await wait_until(lambda: len(peer.pcm) >= RATE, timeout=10)  # a second of audio since
                assert peer.heard(440) and not peer.heard(700, threshold=0.2)  # the app is gone from the call
            finally:
                await peer.close()
