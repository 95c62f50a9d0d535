"""The PBX keep-alive confirms an outage before it tells anyone (issue 36): one lost OPTIONS is not an
outage, a PBX not yet up at start is probed again within a second and is "unknown", not "unreachable",
for the start-up grace, and an unreachable PBX is probed more often than the interval."""

from __future__ import annotations

import pytest

from gateway.sip.useragent import keepalive
from gateway.sip.useragent.keepalive import PbxKeepalive
from sipcore.syntax.message import Headers, Response


class Pbx:
    """A PBX that answers OPTIONS while `up`, and otherwise gets the UA's synthetic 408 (Timer F)."""

    def __init__(self) -> None:
        self.up = True

    async def probe(self) -> Response:
        if self.up:
            return Response(200, "OK", Headers(()))
        return Response(408, "Request Timeout", Headers(()))


async def test_an_outage_is_two_failures_in_a_row() -> None:
    pbx = Pbx()
    alive = PbxKeepalive(pbx.probe, 30.0, "sip:pbx")
    assert alive.next_delay() == keepalive.RETRY  # not heard yet: soon
    await alive.check()
    assert alive.state == "reachable" and alive.next_delay() == 30.0
    pbx.up = False
    await alive.check()
    assert alive.state == "reachable" and alive.next_delay() == keepalive.RETRY  # one lost: ask again soon
    pbx.up = True
    await alive.check()
    assert alive.state == "reachable" and alive.next_delay() == 30.0
    pbx.up = False
    await alive.check()
    await alive.check()
    assert alive.state == "unreachable" and alive.report()["last_status"] == 408
    assert alive.next_delay() == keepalive.DOWN_INTERVAL  # its return is seen within seconds
    pbx.up = True
    await alive.check()
    assert alive.state == "reachable"


async def test_a_pbx_not_up_at_start_is_unknown_for_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    pbx = Pbx()
    pbx.up = False
    alive = PbxKeepalive(pbx.probe, 30.0, "sip:pbx")
    for _ in range(5):
        await alive.check()
    assert alive.state == "unknown" and alive.next_delay() == keepalive.RETRY
    monkeypatch.setattr(keepalive, "STARTUP_GRACE", 0.0)  # the grace over, still no answer
    await alive.check()
    assert alive.state == "unreachable"


async def test_a_short_interval_bounds_every_delay() -> None:
    pbx = Pbx()
    pbx.up = False
    alive = PbxKeepalive(pbx.probe, 0.5, "sip:pbx")
    await alive.check()
    assert alive.next_delay() == 0.5
