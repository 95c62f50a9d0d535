"""Operations end to end (issue 15 items 1-4): /metrics scraped while a real call runs (a sipp UAS as the
PBX, echoing RTP; the aiortc browser stand-in as alice), call records for answered, rejected, cancelled
and failed calls, both call ids on every log line of a call, /readyz following the PBX."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from gateway.app import Gateway
from gateway.config import Config
from gateway.media import fastlane
from gateway.ops.call_list import DIALECTS as SESSION_DIALECTS
from gateway.ops.metrics import DIALECTS
from peers.binaries import require_binary
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port, free_range
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

TOKEN = "scrape-token-for-tests"


def ops_config(pbx: str, tmp_path: Path, keepalive: float = 0.0, **sections: Any) -> Config:
    base = gateway_config(
        pbx,
        media={"rtp_ports": {"start": free_range(), "end": 0}},
        metrics={"token": TOKEN},
        cdr={"file": str(tmp_path / "calls.jsonl")},
        **sections,
    )
    return dataclasses.replace(base, pbx=dataclasses.replace(base.pbx, keepalive_interval=keepalive))


async def scrape(
    gateway: Gateway, token: str | None = TOKEN
) -> tuple[int, dict[tuple[str, tuple[Any, ...]], float]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(gateway.ops.metrics_url, headers=headers) as reply:
        text = await reply.text()
        if reply.status != 200:
            return reply.status, {}
    samples: dict[tuple[str, tuple[Any, ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return 200, samples


def value(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def records(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_metrics_records_and_log_ids_of_an_answered_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_binary("sipp")
    async with Sipp(tmp_path, "uas_basic_call", calls=1, rtp_echo=True, auto_answer=True) as pbx:
        async with running_gateway(ops_config(pbx.address, tmp_path)) as gateway:
            status, _ = await scrape(gateway, token=None)
            assert status == 401
            status, before = await scrape(gateway)
            assert status == 200
            assert value(before, "gateway_calls") == 0
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                peer = WebPeer(1000)
                caplog.set_level(logging.DEBUG)
                try:
                    call_id = await alice.call("2000", await peer.offer())
                    connected = await alice.wait_for("connected", call_id=call_id)
                    await peer.accept(connected["sdp"])
                    await asyncio.sleep(1.5)
                    _, during = await scrape(gateway)
                    assert value(during, "gateway_calls", state="connected", direction="outbound") == 1
                    assert value(during, "gateway_web_sessions", dialect="json") == 1
                    assert value(during, "gateway_calls_by_dialect", dialect="json") == 1
                    assert value(during, "gateway_calls_by_dialect") == 1
                    invites = value(during, "gateway_sip_messages_sent_total", method="INVITE")
                    assert invites >= 1
                    assert value(during, "gateway_sip_messages_received_total", status="200") >= 1
                    assert value(during, "gateway_fast_lane_threads") == fastlane.available()  # its engine
                    web_in = value(during, "gateway_media_packets_total", leg="web", direction="received")
                    assert web_in > 20, during
                    await asyncio.sleep(1.0)
                    _, later = await scrape(gateway)
                    assert (
                        value(later, "gateway_media_packets_total", leg="web", direction="received") > web_in
                    )
                    assert value(later, "gateway_media_packets_total", leg="sip", direction="received") > 20
                    await alice.request({"type": "hangup", "call_id": call_id})
                    await alice.wait_for("ended", call_id=call_id)
                finally:
                    await peer.close()
                await wait_until(lambda: len(records(tmp_path)) == 1)
            _, after = await scrape(gateway)
        result = await pbx.wait(timeout=10)
    assert result.ok, result
    assert value(after, "gateway_calls") == 0
    assert value(after, "gateway_calls_ended_total", direction="outbound", outcome="answered") == 1
    assert value(after, "gateway_call_setup_seconds_count", direction="outbound") == 1
    assert value(after, "gateway_media_loss_ratio_count", leg="sip") == 1
    assert value(after, "gateway_event_loop_lag_seconds_count") > 0
    (record,) = records(tmp_path)
    assert record["call_id"] == call_id and record["direction"] == "outbound" and record["user"] == "alice"
    assert record["end_reason"] == "hangup" and record["hangup_by"] == "web"
    assert record["to"].startswith("sip:2000@") and record["from"].startswith("sip:1001@")
    assert record["start_time"] < record["answer_time"] < record["end_time"]
    assert len(record["sip_call_ids"]) == 1
    assert record["media"] in ("forwarded", "transcoded")
    sip_leg = record["legs"]["sip"]
    assert sip_leg["codec"].upper().startswith("PCMU") and sip_leg["packets_received"] > 50
    # a quiet machine scores this loopback call 4.0-4.4; at the suite's peak load (about 11 on 2 cores) the
    # desk phone's own sending jitter brought it to 3.2 once: the bound tells a scored leg from a broken one
    assert 2.5 < sip_leg["mos"] <= 4.5
    # every line about this call carries its id and its SIP Call-ID, from the first (the Call-ID is chosen
    # when the call is made, before its INVITE is built)
    sip_call_id = record["sip_call_ids"][0]
    about = [r for r in caplog.records if call_id in r.getMessage() or sip_call_id in r.getMessage()]
    assert len(about) > 20 and "created" in about[0].getMessage(), about[0].getMessage()
    no_call = [r.getMessage() for r in about if getattr(r, "call", None) != call_id]
    assert not no_call, no_call[:5]
    no_sip = [r.getMessage() for r in about if getattr(r, "sip_call_id", None) != sip_call_id]
    assert not no_sip, no_sip[:5]
    in_context = [r for r in caplog.records if getattr(r, "call", None) == call_id]
    assert len(in_context) > len(about)  # media and library lines of the call's tasks carry them too


async def one_call(tmp_path: Path, pbx: str, cancel: bool = False) -> tuple[str, float]:
    """alice calls 2000 through `pbx`, cancels once it rings when `cancel`; (call id, failures counted)."""
    async with (
        running_gateway(ops_config(pbx, tmp_path)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            if cancel:
                await alice.wait_for("ringing", call_id=call_id)
                await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id, timeout=40)
        finally:
            await peer.close()
        await wait_until(lambda: call_id in {r["call_id"] for r in records(tmp_path)})
        _, after = await scrape(gateway)
    return call_id, value(after, "gateway_calls_ended_total", outcome="failed")


async def test_records_of_rejected_cancelled_and_failed_calls(tmp_path: Path) -> None:
    require_binary("sipp")
    async with Sipp(tmp_path, "uas_busy", calls=1) as busy:
        rejected, failures = await one_call(tmp_path, busy.address)
    assert failures == 1
    async with Sipp(tmp_path, "uas_ring_cancelled", calls=1) as ringing:
        cancelled, _ = await one_call(tmp_path, ringing.address, cancel=True)
    failed, _ = await one_call(tmp_path, f"127.0.0.1:{free_port()}")  # nobody there: ICMP
    by_id = {r["call_id"]: r for r in records(tmp_path)}
    assert by_id[rejected]["end_reason"] == "busy" and by_id[rejected]["sip_status"] == 486
    assert by_id[rejected]["hangup_by"] == "sip" and by_id[rejected]["answer_time"] is None
    assert by_id[cancelled]["end_reason"] == "cancelled" and by_id[cancelled]["hangup_by"] == "web"
    assert by_id[failed]["hangup_by"] == "gateway" and by_id[failed]["end_reason"] == "pbx_unreachable"
    assert by_id[failed]["sip_status"] == 503
    for record in by_id.values():
        assert record["user"] == "alice" and record["direction"] == "outbound" and record["sip_call_ids"]
        assert record["legs"] == {} or record["legs"]["sip"]["packets_received"] == 0


async def readyz(gateway: Gateway) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(gateway.http_url + "/readyz") as reply:
        body: dict[str, Any] = await reply.json()
        return reply.status, body


async def pbx_reachable(gateway: Gateway) -> float:
    status, samples = await scrape(gateway)
    assert status == 200 and ("gateway_pbx_reachable", ()) in samples, sorted(samples)[:5]
    return samples[("gateway_pbx_reachable", ())]


async def test_a_pbx_outage_leaves_the_gateway_ready_and_the_page_hears_it(tmp_path: Path) -> None:
    """Issue 36: a PBX outage is every instance's at once, so it never fails /readyz (the load balancer
    would take every instance out); it shows in the pbx check's detail, `gateway_pbx_reachable` and the
    page's `pbx` event."""
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_basic_call", calls=None, auto_answer=True)  # -aa: 200 to OPTIONS
    await pbx.start()
    try:
        async with (
            running_gateway(ops_config(pbx.address, tmp_path, keepalive=0.5)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            assert (await alice.wait_for("pbx"))["state"] == "reachable"
            status, body = await readyz(gateway)
            checks = body["checks"]
            assert (
                status == 200 and checks["pbx"]["state"] == "ok" and checks["sip_listeners"]["state"] == "ok"
            )
            assert checks["rtp_ports"]["state"] == "ok" and checks["pbx"]["since"].endswith("Z")
            assert await pbx_reachable(gateway) == 1
            await pbx.stop()
            assert (await alice.wait_for("pbx", state="unreachable"))["type"] == "pbx"
            status, body = await readyz(gateway)
            assert status == 200 and body["status"] == "ready", body
            assert (
                body["checks"]["pbx"]["state"] == "degraded"
                and "does not answer" in body["checks"]["pbx"]["detail"]
            )
            assert await pbx_reachable(gateway) == 0
            async with aiohttp.ClientSession() as http, http.get(gateway.http_url + "/healthz") as reply:
                assert reply.status == 200 and (await reply.json())["pbx"]["state"] == "unreachable"
            pbx = Sipp(tmp_path, "uas_basic_call", calls=None, auto_answer=True, port=pbx.port)
            await pbx.start()
            assert (await alice.wait_for("pbx", state="reachable"))["state"] == "reachable"
            assert await pbx_reachable(gateway) == 1
    finally:
        await pbx.stop()


async def test_an_inbound_call_refused_at_once_has_its_record(tmp_path: Path) -> None:
    """Issue 36: a phone's call to a web user who is not online (480), or to nobody (404), was refused
    before its runtime saw the call and left no record; it has one now, ended by the gateway."""
    require_desk_phone()
    config = ops_config(f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}", tmp_path)
    async with DeskPhone(tmp_path, user="2000") as phone, running_gateway(config) as gateway:
        host, port = gateway.sip_address
        for user, status in (("1002", 480), ("9999", 404)):
            call = await phone.call(f"sip:{user}@{host}:{port}")
            ended = await phone.wait_for("state", call=call, state="DISCONNECTED")
            assert ended["code"] == status, ended
        await wait_until(lambda: len(records(tmp_path)) == 2)
    offline, nobody = records(tmp_path)
    assert offline["direction"] == "inbound" and offline["to"].startswith("sip:1002@127.0.0.1")  # its To
    assert (offline["end_reason"], offline["sip_status"], offline["hangup_by"]) == (
        "unavailable",
        480,
        "gateway",
    )
    assert offline["from"] == "sip:2000@127.0.0.1" and offline["sip_call_ids"]
    assert (nobody["end_reason"], nobody["sip_status"], nobody["hangup_by"]) == (
        "no_such_number",
        404,
        "gateway",
    )


async def test_an_idle_gateway_exports_every_series_at_zero(tmp_path: Path) -> None:
    """Issue 36 item 2: labelled gauges showed no series while zero (rate() and absence alerts break),
    and there were no process and build metrics. Every label value is non-empty."""
    async with running_gateway(ops_config(f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}", tmp_path)) as gateway:
        status, samples = await scrape(gateway)
    assert status == 200
    assert value(samples, "gateway_calls", state="connected", direction="inbound") == 0
    assert ("gateway_calls", (("direction", "outbound"), ("state", "holding"))) in samples
    assert {dict(labels)["dialect"] for name, labels in samples if name == "gateway_web_sessions"} == set(
        DIALECTS
    )
    assert ("gateway_registrations", (("state", "registered"),)) in samples
    assert value(samples, "gateway_build_info", version=__version__) == 1
    if fastlane.available():  # (CI builds it: tests/media/fastlane/test_fastpath.py)
        assert samples[("gateway_fast_lane_threads", ())] == 0  # started with the first call
        assert samples[("gateway_fast_lane_late_waits_total", ())] == 0
    assert (
        samples[("process_cpu_seconds_total", ())] > 0 and samples[("process_resident_memory_bytes", ())] > 0
    )
    empty = [(name, labels) for name, labels in samples if any(v == "" for _, v in labels)]
    assert not empty, empty
    # what the wiring names sessions, the gauges show
    assert set(SESSION_DIALECTS.values()) == set(DIALECTS)
    assert {dict(labels)["dialect"] for name, labels in samples if name == "gateway_calls_by_dialect"} == {
        *DIALECTS,
        "none",
    }
