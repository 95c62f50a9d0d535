"""deploy/grafana-dashboard.json (issue 36 item 2): a Grafana dashboard that imports (its Prometheus data
source an input, `${DS_PROMETHEUS}`), whose every panel has a title and queries, and whose every query
names only metrics the gateway exports, as its /metrics declares them (a live gateway's, not a list kept
here), and is accepted by a real Prometheus scraping that gateway.

tests/e2e/ops/test_prometheus_scrape.py queries the same panels after a call, for their values.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import aiohttp

from peers.ports import free_port
from peers.prometheus import running_prometheus
from tests.conftest import REPO
from tests.e2e.harness import gateway_config, running_gateway

DASHBOARD = REPO / "deploy" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# PromQL words that are not metric names (functions and aggregations are told by the "(" after them)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "atan2"}  # fmt: skip
_SAMPLE_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count", "_created"), "summary": ("", "_sum", "_count")}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions(board: dict[str, Any], rate_interval: str = "1m") -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query, Grafana's variables replaced as Grafana does before it asks
    Prometheus: `$__rate_interval` by `rate_interval`, `$instance` (All) by its `.*`."""
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", rate_interval).replace("$instance", ".*"))
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers less label matchers and lists,
    ranges, strings, numbers, keywords and the functions and aggregations (an identifier before "(")."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'", " ", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        if match.group() not in _KEYWORDS and not text[match.end() :].lstrip().startswith("("):
            names.add(match.group())
    return names


def variable_metrics(board: dict[str, Any]) -> set[str]:
    """The metrics the template variables' `label_values(metric, label)` queries read."""
    names: set[str] = set()
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        names.update(re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)", text))
    return names


def exported_names(exposition: str) -> set[str]:
    """The sample names a /metrics text declares (its `# TYPE` lines, each family even with no sample yet):
    a counter's as written (`..._total`), a histogram's `_bucket`, `_sum`, `_count`..."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        names.update(name + suffix for suffix in _SAMPLE_SUFFIXES.get(kind, ("",)))
    return names


def test_the_dashboard_imports_with_its_prometheus_as_an_input() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    (source,) = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    every = panels(board)
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids)), ids
    for panel in every:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == DATASOURCE, variable["name"]


def test_every_panel_has_a_title_and_queries() -> None:
    for panel in panels(dashboard()):
        assert panel.get("title"), panel
        targets = panel.get("targets")
        assert targets, panel["title"]
        assert all(target.get("expr", "").strip() for target in targets), panel["title"]
        refs = [target["refId"] for target in targets]
        assert len(refs) == len(set(refs)), panel["title"]


def test_the_panels_show_what_the_issue_asks_for() -> None:
    """Calls by state and dialect, setup latency, MOS and loss per leg, CPU per call, refusals and
    throttles, the PBX, the build (issue 36 item 2)."""
    queries = expressions(dashboard())
    wanted = {
        "Calls by state and dialect": (
            "gateway_calls{",
            "by (state)",
            "gateway_calls_by_dialect",
            "by (dialect)",
        ),
        "Web sessions by dialect": ("gateway_web_sessions", "by (dialect)"),
        "Call setup latency": ("gateway_call_setup_seconds_bucket", "histogram_quantile"),
        "MOS per leg": ("gateway_call_mos", "by (leg"),
        "Packet loss per leg": ("gateway_media_packets_lost_total", "by (leg)"),
        "CPU per connected call": ("process_cpu_seconds_total", "gateway_calls"),
        "Refusals and throttles": (
            "gateway_sip_policy_refusals_total",
            "gateway_login_alarms_total",
            "gateway_connections_refused_total",
            "gateway_logins_throttled_total",
        ),
        "Live calls: MOS and loss per leg": (
            "gateway_call_leg_mos_bucket",
            "gateway_call_leg_loss_ratio",
            "gateway_call_quality_alarms_total",
        ),
        "PBX reachable": ("gateway_pbx_reachable",),
        "Build": ("gateway_build_info",),
    }
    for title, parts in wanted.items():
        texts = [expr for t, expr in queries if t == title]
        assert texts, (title, sorted({t for t, _ in queries}))
        assert all(any(part in expr for expr in texts) for part in parts), (title, texts)


def test_metric_names_are_told_from_functions_labels_and_ranges() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (leg, le) (rate(gateway_media_rtt_seconds_bucket{leg="web", '
        'instance=~".*"}[1m]))) / on (leg) group_left (x) (gateway_calls > 0) and bool 1e3'
    )
    assert metric_names(expr) == {"gateway_media_rtt_seconds_bucket", "gateway_calls"}


async def test_every_query_names_exported_metrics_and_a_real_prometheus_accepts_it(tmp_path: Path) -> None:
    """The names from a live, idle gateway's /metrics (with a PBX keep-alive, so `gateway_pbx_reachable` is
    there): every family is declared there before its first sample. Then a real Prometheus, scraping that
    gateway, evaluates every query without an error."""
    board = dashboard()
    config = gateway_config(f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}")
    async with running_gateway(config) as gateway:
        async with aiohttp.ClientSession() as http, http.get(gateway.ops.metrics_url) as reply:
            exported = exported_names(await reply.text())
        used = {name for _, expr in expressions(board) for name in metric_names(expr)}
        used |= variable_metrics(board)
        assert used and used <= exported, sorted(used - exported)
        async with running_prometheus(tmp_path, gateway.ops.metrics_url) as prometheus:
            await prometheus.wait_until_up()
            errors = [(title, expr, await prometheus.query_error(expr)) for title, expr in expressions(board)]
    assert not [error for error in errors if error[2] is not None], errors
