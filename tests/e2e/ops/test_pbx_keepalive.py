"""OPTIONS keep-alive to the PBX (issue 13, item 4): /healthz says whether the PBX answers, and how
fast; when it stops answering, /healthz says so within a few intervals and one WARNING is logged."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from peers.binaries import require_binary
from peers.sipp import Sipp
from tests.e2e.harness import gateway_config, running_gateway


async def health(gateway: Gateway) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(gateway.http_url + "/healthz") as reply:
        body: dict[str, Any] = await reply.json()
        return body


async def test_healthz_follows_the_pbx(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_basic_call", calls=None, auto_answer=True)  # -aa: 200 to OPTIONS
    await pbx.start()
    try:
        config = gateway_config(pbx.address)
        config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0.5))
        async with running_gateway(config) as gateway:
            states: list[Any] = []

            async def state() -> Any:
                states.append((await health(gateway))["pbx"])
                return states[-1]["state"]

            for _ in range(40):
                if await state() == "reachable":
                    break
                await asyncio.sleep(0.1)
            assert states[-1]["state"] == "reachable" and states[-1]["rtt_ms"] < 500, states[-1]
            assert states[-1]["target"] == f"sip:{pbx.address}"
            with caplog.at_level(logging.INFO, logger="gateway.sip.useragent.keepalive"):
                await pbx.stop()
                for _ in range(60):
                    if await state() == "unreachable":
                        break
                    await asyncio.sleep(0.1)
            assert states[-1]["state"] == "unreachable", states[-1]
            lost = [
                r
                for r in caplog.records
                if r.levelno == logging.WARNING and "reachable -> unreachable" in r.getMessage()
            ]
            assert len(lost) == 1
    finally:
        await pbx.stop()
