"""Readiness checks: states, `since`, not ready while a check fails, and PBX changes reported once; the
PBX and the registrations at it never make the gateway unready (issue 36: a PBX outage would otherwise
take every instance out of the load balancer)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.ops.health import Readiness


class Source:
    def __init__(self) -> None:
        self.listening = (True, "udp 127.0.0.1:5060")
        self.pbx_report: dict[str, object] | None = {"target": "sip:pbx", "state": "unknown"}
        self.regs: dict[str, str] = {}
        self.ports = (10, 0)
        self.cluster_report: tuple[bool, str] | None = None

    def sip_listening(self) -> tuple[bool, str]:
        return self.listening

    def pbx(self) -> Mapping[str, object] | None:
        return self.pbx_report

    def registrations(self) -> Mapping[str, str]:
        return self.regs

    def rtp_ports(self) -> tuple[int, int]:
        return self.ports

    def cluster(self) -> tuple[bool, str] | None:
        return self.cluster_report


def test_readiness_follows_its_checks() -> None:
    now = [1000.0]
    heard: list[str] = []
    source = Source()
    readiness = Readiness(source, on_pbx=heard.append, wall=lambda: now[0])
    ready, body = readiness.report()
    checks = body["checks"]
    assert ready and isinstance(checks, dict) and checks["pbx"]["state"] == "degraded"
    assert checks["registrations"]["state"] == "disabled" and checks["rtp_ports"]["state"] == "ok"
    source.pbx_report = {"target": "sip:pbx", "state": "reachable", "rtt_ms": 1.0, "last_status": 200}
    now[0] = 1005.0
    ready, body = readiness.report()
    assert ready and body["status"] == "ready" and heard == ["reachable"]
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert (
        checks["pbx"]["state"] == "ok"
        and checks["pbx"]["since"] == "1970-01-01T00:16:45Z"
        and checks["sip_listeners"]["since"].endswith(":40Z")
    )
    source.regs = {"sip:1001@pbx": "registered", "sip:1002@pbx": "failed"}
    assert readiness.report()[0]  # degraded is still ready
    source.regs = {"sip:1002@pbx": "failed"}
    ready, body = readiness.report()
    assert ready and body["checks"]["registrations"]["state"] == "degraded"  # type: ignore[index]
    source.regs = {}
    source.ports = (0, 200)
    assert not readiness.report()[0]
    source.ports = (10, 0)
    assert readiness.report()[0]
    source.pbx_report = {"target": "sip:pbx", "state": "unreachable"}
    ready, body = readiness.report()
    readiness.report()
    assert ready and heard == ["reachable", "unreachable"]
    assert "does not answer" in body["checks"]["pbx"]["detail"]  # type: ignore[index]
    source.pbx_report = None
    assert readiness.report()[0]  # no keep-alive: disabled


def test_a_cluster_instance_without_redis_is_not_ready() -> None:
    """In a cluster, readiness includes Redis (issue 36 item 1): without it no login or routing works."""
    source = Source()
    readiness = Readiness(source)
    ready, body = readiness.report()
    assert ready and body["checks"]["cluster"]["state"] == "disabled"  # type: ignore[index]
    source.cluster_report = (True, "Redis reachable (instance a)")
    ready, body = readiness.report()
    assert ready and body["checks"]["cluster"]["state"] == "ok"  # type: ignore[index]
    source.cluster_report = (False, "Redis unreachable (instance a)")
    ready, body = readiness.report()
    assert not ready and body["status"] == "not ready"
    assert body["checks"]["cluster"]["state"] == "failing"  # type: ignore[index]
    source.cluster_report = (True, "Redis reachable (instance a)")
    assert readiness.report()[0]


class SeveralPbxs(Source):
    """A source with named PBXs (`pbxs:`, config/pbxs.py): their keep-alives' reports by name."""

    def __init__(self) -> None:
        super().__init__()
        self.named: dict[str, dict[str, object]] = {"default": {"state": "reachable"}}

    def pbxs(self) -> Mapping[str, Mapping[str, object]]:
        return self.named


def test_named_pbxs_are_checked_and_reported_by_name() -> None:
    heard: list[tuple[object, ...]] = []
    source = SeveralPbxs()
    readiness = Readiness(source, on_pbx=lambda *args: heard.append(args))
    ready, body = readiness.report()
    assert ready and body["checks"]["pbxs"]["state"] == "disabled"  # type: ignore[index]
    source.named["b"] = {"state": "unknown"}
    source.named["c"] = {"state": "reachable"}
    ready, body = readiness.report()
    checks = body["checks"]
    assert isinstance(checks, dict) and checks["pbxs"] == {**checks["pbxs"], "state": "degraded"}
    assert checks["pbxs"]["detail"] == "b: unknown, c: reachable"
    assert heard == [("reachable", "c")]  # told once per change, by name; `default` by `pbx` only
    source.named["b"] = {"state": "reachable"}
    ready, body = readiness.report()
    assert ready and body["checks"]["pbxs"]["state"] == "ok"  # type: ignore[index]
    assert heard == [("reachable", "c"), ("reachable", "b")]
    source.named["b"] = {"state": "unreachable"}
    ready, body = readiness.report()
    assert ready and body["checks"]["pbxs"]["detail"] == "b: unreachable, c: reachable"  # type: ignore[index]
    assert heard[-1] == ("unreachable", "b")
