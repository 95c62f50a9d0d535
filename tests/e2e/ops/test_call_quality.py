"""Quality while the call is up, per leg (issue 36 item 4), with real peers: a pjsua2 desk phone answers
an aiortc web user through the gateway, and the phone's RTP to the gateway crosses a user-space relay
that drops 20 % of it (tests/e2e/lossy_sip_leg.py); the web leg is clean.

- /ws: during the call a `quality` event names the SIP leg poor (its loss near 20 %, its MOS under 3)
  and the web leg fine;
- /metrics: the per-leg histograms have samples of both legs, the alarm counter counts one;
- the alarm fires once for the call's SIP leg (the alarm sinks, a signed webhook POST to a local
  receiver, a WARNING naming the call), however many poor samples follow;
- the HTTP API's event stream (a WHIP session's too) and JSON-RPC's progress notifications carry the
  same event, and a room that called the phone in hears `sip_party_quality`;
- the other way round (the browser's RTP through bench/impair.py's relay), the web leg is named, not the
  phone's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web

from gateway.config import Config
from gateway.ops.quality_monitor import QualityAlarm
from gateway.ops.webhooks import verify_signature
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_jsonrpc_call_controls import live_rpc_client
from tests.e2e.dialects.test_whip import WhipClient
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.lossy_sip_leg import RELAY_HOST, Impairment, ImpairRelay, LossyRtpRelay, point_candidates
from tests.e2e.ops.test_operations import scrape, value

API_KEY = "e2e-quality-key-0123456789"
SECRET = "quality-webhook-secret-0123"
LOSS = 0.2


class Receiver:
    """A webhook receiver on loopback: the signed POSTs it was sent, checked."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert verify_signature(SECRET.encode(), request.headers["X-Gateway-Signature"], body, time.time())
        self.bodies.append(json.loads(body))
        return web.Response(status=204)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def quality_config(phone: DeskPhone, rtp_start: int, hook: str | None = None) -> Config:
    sections: dict[str, Any] = {}
    if hook is not None:
        sections["webhooks"] = [{"url": hook, "secret": SECRET, "events": ["quality_alarm"], "backoff": 0.1}]
    return gateway_config(
        phone.address,
        media={"rtp_ports": {"start": rtp_start}, "public_address": [RELAY_HOST]},
        quality={"interval": 1.0, "alarm_samples": 2},
        alice_extra={"default_dial": "2000", "api_keys": [{"key": API_KEY, "name": "e2e"}]},
        # the phone's G.711 passed through whatever its leg loses, so that its gaps reach the browser and
        # own_loss must tell them from the browser leg's (codecs.g711_to_web auto would conceal them)
        codecs={"g711_to_web": "forward"},
        **sections,
    )


@asynccontextmanager
async def lossy_phone(tmp_path: Path) -> AsyncIterator[tuple[DeskPhone, LossyRtpRelay, int]]:
    """The desk phone (a 600 Hz tone) behind the relay, which holds the gateway's RTP range too."""
    require_desk_phone()
    relay = await LossyRtpRelay.start(200, LOSS)  # gateway_config's range: 200 ports
    try:
        async with DeskPhone(tmp_path, user="2000", tone=600, extra_args=relay.phone_args) as phone:
            yield phone, relay, relay.first
    finally:
        relay.close()


def poor_sip_leg(legs: dict[str, Any]) -> None:
    """The event's figures: the SIP leg lossy and poor, the web leg clean."""
    sip, browser = legs["sip"], legs["web"]
    assert sip["poor"] and sip["mos"] < 3.5 and 0.05 <= sip["loss"] <= 0.6, legs  # ~50 packets a sample
    # 3.94 and 3.77 in full runs: the browser's reports of the phone's gaps, netted over 5 s, cost a
    # little; what counts is that the web leg is not poor (quality.poor_mos 3.5) and lost nothing
    assert not browser["poor"] and browser["mos"] >= 3.5 and browser["loss"] <= 0.02, legs


async def test_the_phones_lossy_leg_is_told_measured_and_alarmed_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gateway.ops.quality_monitor")
    async with (
        lossy_phone(tmp_path) as (phone, relay, start),
        Receiver() as receiver,
        running_gateway(quality_config(phone, start, receiver.url)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        alarms: list[QualityAlarm] = []
        gateway.ops.quality.alarm_sinks.append(alarms.append)
        peer = WebPeer(1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
            while True:  # the first samples may hold the call's setup
                event = await alice.wait_for("quality", call_id=call_id, timeout=15)
                if "sip" in event["poor"]:
                    break
            poor_sip_leg(event["legs"])
            assert event["poor"] == ["sip"], event
            await wait_until(lambda: len(alarms) >= 1, timeout=10)
            await asyncio.sleep(4.0)  # four more poor samples: no second alarm
            # the browser's reports count the phone's gaps we forwarded; by sequence numbers its leg lost
            # none of them itself (own_loss.py)
            (runtime,) = gateway.driver.runtimes
            assert runtime.bridge is not None
            quality = runtime.bridge.quality()
            assert quality is not None
            web = quality["web"]
            assert isinstance(web["remote_loss"], float) and web["remote_loss"] >= 0.05, web
            assert isinstance(web["own_loss"], float) and web["own_loss"] <= 0.02, web
            _, samples = await scrape(gateway, token=None)
            assert alice.events[-1]["type"] != "ended"  # all of this while the call is up
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()
        await wait_until(lambda: len(receiver.bodies) >= 1, timeout=10)
    assert relay.dropped >= 20, (relay.rtp, relay.dropped)
    assert [(a.call_id, a.alarm.leg, a.alarm.state.value) for a in alarms] == [(call_id, "sip", "raised")]
    assert len(receiver.bodies) == 1, receiver.bodies
    (hook,) = receiver.bodies
    assert hook["event"] == "quality_alarm" and hook["call_id"] == call_id, hook
    assert hook["data"]["leg"] == "sip" and hook["data"]["state"] == "raised", hook
    assert any(f"call={call_id} quality_alarm" in r.getMessage() for r in caplog.records)
    for leg in ("web", "sip"):
        assert value(samples, "gateway_call_leg_mos_count", leg=leg) >= 3, samples
        assert value(samples, "gateway_call_leg_loss_ratio_count", leg=leg) >= 3
    sip_samples = value(samples, "gateway_call_leg_loss_ratio_count", leg="sip")
    mean = value(samples, "gateway_call_leg_loss_ratio_sum", leg="sip") / sip_samples
    assert 0.1 <= mean <= 0.35, mean  # the relay's 20 %, over the call
    assert value(samples, "gateway_call_leg_loss_ratio_sum", leg="web") / sip_samples < 0.02
    assert value(samples, "gateway_call_quality_alarms_total", leg="sip") == 1
    assert value(samples, "gateway_call_quality_alarms_total", leg="web") == 0


async def test_the_browsers_lossy_leg_is_named_and_the_phones_is_not(tmp_path: Path) -> None:
    """The other way round: the browser's RTP crosses a relay dropping 20 % of it (bench/impair.py's, its
    ICE candidates pointed through it both ways) and the phone's path is clean. The phone's RTCP reports
    the gaps the gateway forwards, which are not its leg's: the web leg is named, the SIP leg is not."""
    require_desk_phone()
    relay = await ImpairRelay(Impairment("lossy", loss=LOSS, seed=3)).start()
    quality = {"interval": 1.0, "alarm_samples": 2}
    try:
        async with (
            DeskPhone(tmp_path, user="2000", tone=600) as phone,
            running_gateway(gateway_config(phone.address, quality=quality)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            alarms: list[QualityAlarm] = []
            gateway.ops.quality.alarm_sinks.append(alarms.append)
            peer = WebPeer(1000)
            try:
                offer, browser = point_candidates(await peer.offer(), relay.b)
                relay.towards(peer=browser)
                call_id = await alice.call("2000", offer)
                answer, box = point_candidates(
                    (await alice.wait_for("connected", call_id=call_id))["sdp"], relay.a
                )
                relay.towards(box=box)
                await peer.accept(answer)
                while True:
                    event = await alice.wait_for("quality", call_id=call_id, timeout=15)
                    if event["poor"] == ["web"]:  # the first samples may have too few reports to tell
                        break
                await wait_until(lambda: len(alarms) >= 1, timeout=10)
                await asyncio.sleep(3.0)
                _, samples = await scrape(gateway, token=None)
                # the phone's reports count the browser's gaps we forwarded; by sequence numbers its own
                # leg lost none of them (own_loss.py). That takes two of its reports, and pjsua sends one
                # every 4.5-5.5 s: the second comes ~10 s into the call, later on a loaded machine.
                (runtime,) = gateway.driver.runtimes
                bridge = runtime.bridge
                assert bridge is not None

                def sip_leg() -> dict[str, object]:
                    figures = bridge.quality()
                    assert figures is not None
                    return figures["sip"]

                await wait_until(lambda: sip_leg()["own_loss"] is not None, timeout=15)
                sip = sip_leg()
                assert isinstance(sip["remote_loss"], float) and sip["remote_loss"] >= 0.05, sip
                assert isinstance(sip["own_loss"], float) and sip["own_loss"] <= 0.02, sip
                await alice.request({"type": "hangup", "call_id": call_id})
            finally:
                await peer.close()
    finally:
        relay.close()
    web = event["legs"]["web"]
    assert web["mos"] < 3.5 and 0.05 <= web["loss"] <= 0.6 and not event["legs"]["sip"]["poor"], event
    assert [(a.alarm.leg, a.alarm.state.value) for a in alarms] == [("web", "raised")]
    web_mos = value(samples, "gateway_call_leg_mos_sum", leg="web") / value(
        samples, "gateway_call_leg_mos_count", leg="web"
    )
    sip_mos = value(samples, "gateway_call_leg_mos_sum", leg="sip") / value(
        samples, "gateway_call_leg_mos_count", leg="sip"
    )
    # the clean leg above poor_mos (3.5, not named): the suite's load adds jitter to it (3.79 at load 7)
    assert web_mos < 3.2 and sip_mos > 3.5, (web_mos, sip_mos)


async def _sse_until_poor(response: aiohttp.ClientResponse, timeout: float = 20) -> dict[str, Any]:
    """The first `quality` server-sent event that names the SIP leg poor."""
    event: dict[str, str] = {}
    seen: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                line = (await response.content.readline()).decode().rstrip("\n")
                if line and not line.startswith(":"):
                    key, _, text = line.partition(": ")
                    event[key] = text
                elif not line:
                    if event.get("event") == "quality":
                        seen.append(event["data"])
                        data: dict[str, Any] = json.loads(event["data"])
                        if "sip" in data["poor"]:
                            return data
                    event = {}
    except TimeoutError:
        raise AssertionError(f"no quality event naming the SIP leg within {timeout} s: {seen}") from None


async def test_the_http_apis_event_stream_tells_the_phones_poor_leg(tmp_path: Path) -> None:
    headers = {"X-API-Key": API_KEY}
    async with (
        lossy_phone(tmp_path) as (phone, _, start),
        running_gateway(quality_config(phone, start)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        base = gateway.http_url
        peer = WebPeer(1000)
        try:
            offer = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "metadata": {"dial": "2000"}}
            async with http.post(f"{base}/webrtc/offer", json=offer, headers=headers) as reply:
                assert reply.status == 200, await reply.text()
                body = await reply.json()
            await peer.accept(body["sdp"]["sdp"])
            async with http.get(f"{base}{body['events_url']}", headers=headers) as events:
                data = await _sse_until_poor(events)
            poor_sip_leg(data["legs"])
            async with http.post(
                f"{base}/webrtc/close", json={"session_id": body["session_id"]}, headers=headers
            ):
                pass
        finally:
            await peer.close()


async def test_a_whip_sessions_events_tell_the_phones_poor_leg(tmp_path: Path) -> None:
    """A WHIP publisher has no messages of its own: its session's events (by the resource's id) carry it."""
    headers = {"X-API-Key": API_KEY}
    async with (
        lossy_phone(tmp_path) as (phone, _, start),
        running_gateway(quality_config(phone, start)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        whip = WhipClient(http, f"{gateway.http_url}/whip/2000", API_KEY)
        peer = WebPeer(1000)
        try:
            await peer.accept(await whip.publish(await peer.offer()))
            assert whip.resource is not None
            session = unquote(whip.resource.rsplit("/", 1)[1])
            async with http.get(
                f"{gateway.http_url}/webrtc/sessions/{session}/events", headers=headers
            ) as events:
                data = await _sse_until_poor(events)
            poor_sip_leg(data["legs"])
            assert await whip.delete() == 200
        finally:
            await peer.close()


async def test_jsonrpc_progress_tells_the_phones_poor_leg(tmp_path: Path) -> None:
    async with (
        lossy_phone(tmp_path) as (phone, _, start),
        running_gateway(quality_config(phone, start)) as gateway,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}") as ws,
        live_rpc_client(ws) as client,
    ):
        peer = WebPeer(1000)
        try:
            reply = await client.request("offer", {"sdp": await peer.offer(), "type": "offer", "to": "2000"})
            await peer.accept(reply["result"]["answer"]["sdp"])
            call_id = reply["result"]["call_id"]
            seen: list[dict[str, Any]] = []
            while True:
                try:
                    note = await client.notification("progress", timeout=20, call_id=call_id, event="quality")
                except TimeoutError:
                    raise AssertionError(
                        f"no quality naming the SIP leg: {seen}; all: {client.notes}"
                    ) from None
                seen.append(note)
                if "sip" in note["poor"]:
                    break
            poor_sip_leg(note["legs"])
            await client.request("disconnect", {})
        finally:
            await peer.close()


async def test_a_room_hears_its_sip_partys_poor_leg(tmp_path: Path) -> None:
    """alice's aiortc peer calls the phone into a room: the room's peers hear the SIP party's figures."""
    auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}
    async with (
        lossy_phone(tmp_path) as (phone, _, start),
        running_gateway(quality_config(phone, start)) as gateway,
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{gateway.http_url.replace('http', 'ws', 1)}/webrtc/signaling/q/alice-web", headers=auth
        ) as ws,
    ):
        pending: list[dict[str, Any]] = []

        async def next_message(kind: str, **match: Any) -> dict[str, Any]:
            async with asyncio.timeout(20):
                while True:
                    for message in pending:
                        if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                            pending.remove(message)
                            return message
                    pending.append(await ws.receive_json())

        peer = WebPeer(1000)
        try:
            await next_message("joined")
            await ws.send_json({"type": "dial", "to": "2000"})
            call_id = (await next_message("dialing"))["call_id"]
            offer = await next_message("offer", from_peer_id="gateway")
            answer = {"type": "answer", "sdp": await peer.answer(offer["offer"]["sdp"])}
            await ws.send_json({"type": "answer", "answer": answer, "target_peer_id": "gateway"})
            await next_message("sip_party", call_id=call_id, state="connected")
            while not (figures := await next_message("sip_party_quality", call_id=call_id))["poor"]:
                pass
            assert figures["mos"] < 3.5 and 0.05 <= figures["loss"] <= 0.6, figures
            await ws.send_json({"type": "hangup", "call_id": call_id})
            await next_message("sip_party", call_id=call_id, state="ended")
        finally:
            await peer.close()
