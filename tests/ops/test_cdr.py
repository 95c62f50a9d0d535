"""Call records out: the JSON lines file and the webhook (a real HTTP server on loopback; one that
never answers delays nothing and is given up after the timeout)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from aiohttp import web

from gateway.calls.reasons import EndReason
from gateway.config.ops import CdrSection
from gateway.ops.cdr import CallRecorder
from gateway.ops.records import CallRecord, LegRecord, hangup_by
from gateway.signaling.ops_http import post_json

RECORD = CallRecord(
    "c1", "outbound", 100.0, 110.0, "hangup", "web", ("x@h",), "alice", "sip:1001@pbx", "sip:2000@pbx", 101.5,
    legs={"sip": LegRecord("PCMU/8000", 400, 398, 2, 0.003, None, 4.3)},
)  # fmt: skip


async def test_file_log_and_webhook(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    posted: list[object] = []
    slow = asyncio.Event()

    async def collect(request: web.Request) -> web.Response:
        posted.append(await request.json())
        return web.Response(status=204)

    async def hang(request: web.Request) -> web.Response:
        await slow.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/calls", collect)
    app.router.add_post("/slow", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        section = CdrSection(file="calls.jsonl", log=True, webhook=f"http://127.0.0.1:{port}/calls")
        recorder = CallRecorder(section, post_json, tmp_path)
        with caplog.at_level(logging.INFO, logger="gateway.ops.cdr"):
            recorder.write(RECORD)
            recorder.write(RECORD)
            await recorder.close()
        lines = (tmp_path / "calls.jsonl").read_text().splitlines()
        first = json.loads(lines[0])
        assert len(lines) == 2
        assert posted == [first, first]
        body = json.loads(lines[0])
        assert (
            body["from"] == "sip:1001@pbx" and body["duration"] == 8.5 and body["legs"]["sip"]["mos"] == 4.3
        )
        assert sum("call record {" in r.getMessage() for r in caplog.records) == 2
        stuck = CallRecorder(
            CdrSection(webhook=f"http://127.0.0.1:{port}/slow", webhook_timeout=0.2), post_json, tmp_path
        )
        with caplog.at_level(logging.WARNING, logger="gateway.ops.cdr"):
            started = asyncio.get_running_loop().time()
            stuck.write(RECORD)  # returns at once
            assert asyncio.get_running_loop().time() - started < 0.1
            await stuck.close()
        assert any("not posted to the webhook" in r.getMessage() for r in caplog.records)
    finally:
        slow.set()
        await runner.cleanup()


def test_who_hung_up() -> None:
    assert hangup_by("outbound", EndReason.HANGUP) == "web"
    assert hangup_by("outbound", EndReason.CANCELLED) == "web"
    assert hangup_by("outbound", EndReason.CANCELLED, 487) == "sip"
    assert hangup_by("outbound", EndReason.BUSY, 486) == "sip"
    assert hangup_by("inbound", EndReason.BUSY) == "web"
    assert hangup_by("inbound", EndReason.CALLER_CANCELLED) == "sip"
    assert hangup_by("outbound", EndReason.MEDIA_TIMEOUT) == "gateway"
    assert hangup_by("outbound", None) == "gateway"
