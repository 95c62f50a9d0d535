"""A CANCEL's Reason (RFC 3326) on the wire (issue 18 item 4): sipp calls alice and CANCELs with a Reason
header after the 180, as a forking proxy (Kamailio's parallel fork, tests/e2e/cluster/test_cluster_routing.py)
cancels the branches that lost when another answered.

- `SIP;cause=200;text="Call completed elsewhere"`, or Q.850 cause 26 (non-selected user clearing):
  alice's ringing ends with `answered_elsewhere`, and so does the call record (no missed call);
- Q.850 cause 16 (normal clearing), or no Reason at all: `caller_cancelled`, as before.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.ops.records import CallRecord
from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.web_user import WebUser
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ('SIP;cause=200;text="Call completed elsewhere"', "answered_elsewhere"),
        ("Q.850;cause=26", "answered_elsewhere"),
        ('Q.850;cause=16;text="Normal call clearing"', "caller_cancelled"),
        ("", "caller_cancelled"),
    ],
)
async def test_cancel_reason_decides_how_the_ringing_ends(tmp_path: Path, reason: str, expected: str) -> None:
    require_binary("sipp")
    records: list[CallRecord] = []
    async with (
        running_gateway(gateway_config(None)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        gateway.ops.record_sinks.append(records.append)
        host, port = gateway.sip_address
        scenario = "uac_cancel_reason" if reason else "uac_cancel"
        keys = {"reason": reason} if reason else None
        sipp = Sipp(tmp_path, scenario, f"{host}:{port}", service="1001", keys=keys)
        run = asyncio.create_task(sipp.run())
        incoming = await alice.wait_for("incoming", timeout=10)
        ended = await alice.wait_for("ended", call_id=incoming["call_id"], timeout=10)
        assert ended["reason"] == expected, ended
        result = await run
        assert result.ok, result
        if reason:
            assert f"Reason: {reason}" in result.messages  # the CANCEL carried it on the wire
        assert result.count("SIP/2.0 487") == 1, result
        await wait_until(lambda: len(records) == 1)
        [record] = records
        assert (record.direction, record.end_reason, record.hangup_by) == ("inbound", expected, "sip"), record
        assert record.answer_time is None
