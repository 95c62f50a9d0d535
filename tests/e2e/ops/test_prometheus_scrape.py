"""Metrics that tell the truth, as a real Prometheus sees them (issue 36 item 2): Debian's `prometheus`
scrapes the gateway's /metrics every second with the bearer token, a pjsua2 desk phone is the PBX (it
answers the keep-alive's OPTIONS, so `gateway_pbx_reachable` is 1), and `promtool check metrics` lints
the exposition. An operator's queries answer before, during and after one call from a web user (the
aiortc browser stand-in) to the desk phone, and so do the panels of deploy/grafana-dashboard.json."""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

import aiohttp

from gateway import __version__
from gateway.app import Gateway
from gateway.ops.metrics import DIALECTS
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.prometheus import JOB, Prometheus, check_metrics, running_prometheus
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.deploy.test_grafana_dashboard import dashboard, expressions
from tests.e2e.harness import ALICE_SECRET, running_gateway, wait_until
from tests.e2e.ops.test_operations import TOKEN, ops_config

SIP_RECEIVED = 'gateway_media_packets_total{leg="sip", direction="received"}'
LIVE_STATES = ("inviting", "invited", "early", "connected", "holding", "closing")  # docs/operations.md


async def exposition(gateway: Gateway) -> str:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http, http.get(gateway.ops.metrics_url, headers=headers) as reply:
        assert reply.status == 200
        return await reply.text()


async def lint(gateway: Gateway) -> None:
    code, output = await check_metrics(await exposition(gateway))
    assert code == 0, output


def by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {sample["metric"][label]: float(sample["value"][1]) for sample in result}


def one(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


async def sum_is(prometheus: Prometheus, expr: str, wanted: float) -> None:
    await prometheus.wait_for(f"sum({expr})", lambda r: len(r) == 1 and float(r[0]["value"][1]) == wanted)


async def idle_figures(prometheus: Prometheus) -> None:
    """Before any call: the PBX reachable, the build, the process, every labelled gauge at 0."""
    await prometheus.wait_for("gateway_pbx_reachable", lambda r: [s["value"][1] for s in r] == ["1"])
    (build,) = await prometheus.query("gateway_build_info")
    assert (
        build["metric"]["version"] == __version__ and build["metric"]["python"] == platform.python_version()
    )
    assert build["metric"]["job"] == JOB and build["value"][1] == "1"
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert one(await prometheus.query(name)) > 0, name
    calls = await prometheus.query("gateway_calls")
    assert {(s["metric"]["state"], s["metric"]["direction"]) for s in calls} == {
        (state, direction) for state in LIVE_STATES for direction in ("inbound", "outbound")
    }
    assert all(s["value"][1] == "0" for s in calls)
    assert by(await prometheus.query("gateway_web_sessions"), "dialect") == dict.fromkeys(DIALECTS, 0.0)
    # the per-call series are there at 0 before the first call, so that rate() counts it
    ended = by(await prometheus.query("sum by (outcome) (gateway_calls_ended_total)"), "outcome")
    assert ended == {"answered": 0, "failed": 0}
    setups = by(await prometheus.query("gateway_call_setup_seconds_count"), "direction")
    assert setups == {"inbound": 0, "outbound": 0}
    assert by(await prometheus.query("gateway_call_mos_count"), "leg") == {"sip": 0, "web": 0}
    # an empty label value is no label at all to Prometheus: every SIP series keeps all three
    sent = await prometheus.query("gateway_sip_messages_sent_total")
    assert sent and all({"method", "status", "transport"} <= set(s["metric"]) for s in sent), sent
    options = by(await prometheus.query('gateway_sip_messages_sent_total{method="OPTIONS"}'), "status")
    assert set(options) == {"none"} and options["none"] >= 1, options  # a request has no status
    answers = await prometheus.query('gateway_sip_messages_received_total{method="OPTIONS", status="200"}')
    assert one(answers) >= 1


async def during_the_call(prometheus: Prometheus) -> float:
    """The figures of the live call; returns the SIP leg's packets received so far."""
    await sum_is(prometheus, 'gateway_calls{state="connected", direction="outbound"}', 1)
    await sum_is(prometheus, 'gateway_web_sessions{dialect="json"}', 1)
    received = 'gateway_media_packets_total{direction="received"}'
    await prometheus.wait_for(received, lambda r: len(r) == 2 and all(float(s["value"][1]) > 20 for s in r))
    (cpu_per_call,) = panel("CPU per connected call")
    cpu = one(await prometheus.wait_for(cpu_per_call, lambda r: len(r) == 1))
    assert 0 < cpu < 2, cpu  # a share of a core, of the one call (two cores here)
    return one(await prometheus.query(SIP_RECEIVED))


async def after_the_call(prometheus: Prometheus, sip_received: float) -> None:
    """The ended call counted once, its setup time, MOS and loss observed, no counter gone back."""
    await sum_is(prometheus, 'gateway_calls_ended_total{direction="outbound", outcome="answered"}', 1)
    await sum_is(prometheus, 'gateway_call_setup_seconds_count{direction="outbound"}', 1)
    assert one(await prometheus.query("sum(gateway_calls)")) == 0
    assert 0 < one(await prometheus.query('gateway_call_setup_seconds_sum{direction="outbound"}')) < 10
    assert by(await prometheus.query("gateway_call_mos_count"), "leg")["sip"] == 1
    assert by(await prometheus.query("gateway_media_loss_ratio_count"), "leg")["sip"] == 1
    mos = by(await prometheus.query("gateway_call_mos_sum / gateway_call_mos_count > 0"), "leg")
    assert 3.5 < mos["sip"] <= 4.5 and all(1 <= v <= 4.5 for v in mos.values()), mos
    after = one(await prometheus.query(SIP_RECEIVED))  # the live call's figures, now the ended call's
    assert after >= sip_received > 20, (after, sip_received)
    for direction, method, status in (("sent", "INVITE", "none"), ("received", "INVITE", "200"),
                                      ("sent", "BYE", "none"), ("received", "BYE", "200")):  # fmt: skip
        expr = f'gateway_sip_messages_{direction}_total{{method="{method}", status="{status}"}}'
        assert one(await prometheus.query(expr)) >= 1, expr


def panel(title: str) -> list[str]:
    """The queries of the dashboard's panel `title`, as Grafana sends them (a 1 min rate interval)."""
    queries = [expr for t, expr in expressions(dashboard()) if t == title]
    assert queries, title
    return queries


# Panels that show nothing after one answered call, rightly: no failure, no call now, no error sent
EMPTY_NOW = {"Calls that never connected, by reason", "CPU per connected call", "SIP error responses sent"}


async def dashboard_panels(prometheus: Prometheus) -> None:
    """Prometheus evaluates every query of the dashboard without an error, every panel but `EMPTY_NOW`
    shows a series, and the main ones show the call."""
    shown: dict[str, int] = {}
    for title, expr in expressions(dashboard()):
        error = await prometheus.query_error(expr)
        assert error is None, (title, expr, error)
        shown[title] = shown.get(title, 0) + len(await prometheus.query(expr))
    assert {title for title, count in shown.items() if count == 0} <= EMPTY_NOW, shown
    p50, _, _ = [one(await prometheus.query(expr)) for expr in panel("Call setup latency")]
    assert 0 < p50 <= 10, p50
    mean, _ = panel("MOS per leg")
    assert 3.5 < by(await prometheus.query(mean), "leg")["sip"] <= 4.5
    live, per_call = panel("Packet loss per leg")
    for expr in (live, per_call):
        loss = by(await prometheus.query(expr), "leg")
        assert not math.isnan(loss["sip"]) and 0 <= loss["sip"] <= 1, (expr, loss)
    (ended,) = panel("Calls ended per minute")
    result = await prometheus.query(ended)
    assert {
        (s["metric"]["direction"], s["metric"]["outcome"]) for s in result if float(s["value"][1]) > 0
    } == {("outbound", "answered")}
    (reachable,) = panel("PBX reachable")
    assert one(await prometheus.query(reachable)) == 1


async def test_a_real_prometheus_scrapes_what_an_operator_needs(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = ops_config(phone.address, tmp_path, keepalive=1.0)
        async with (
            running_gateway(config) as gateway,
            running_prometheus(tmp_path, gateway.ops.metrics_url, token=TOKEN) as prometheus,
        ):
            target = await prometheus.wait_until_up()
            assert target["scrapeUrl"] == gateway.ops.metrics_url and not target["lastError"], target
            await lint(gateway)
            await idle_figures(prometheus)
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                peer = WebPeer(freq=1000)
                try:
                    call_id = await alice.call("2000", await peer.offer())
                    await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
                    incoming = await phone.wait_for("incoming")
                    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                    sip_received = await during_the_call(prometheus)
                    await lint(gateway)
                    await alice.request({"type": "hangup", "call_id": call_id})
                    await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                    await alice.wait_for("ended", call_id=call_id)
                finally:
                    await peer.close()
            await after_the_call(prometheus, sip_received)
            await lint(gateway)
            await dashboard_panels(prometheus)
