"""One call failing inside the driver ends that call only: an unexpected exception while the second
call sets up its media is logged with call=<id>, that call's browser gets `ended` (media_failed), and
the first call (connected to the desk phone) goes on, audio and all; the gateway keeps taking calls."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.media.bridge import MediaBridge
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until


async def test_an_exception_in_one_call_ends_only_that_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    require_desk_phone()
    original = MediaBridge.offer_to_sip
    calls = 0

    async def second_one_breaks(self: MediaBridge, web_offer: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("boom")
        return await original(self, web_offer)

    monkeypatch.setattr(MediaBridge, "offer_to_sip", second_one_breaks)
    caplog.set_level(logging.INFO, logger="gateway.runtime")
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        first, second, third = WebPeer(1000), WebPeer(1000), WebPeer(1000)
        try:
            good = await alice.call("2000", await first.offer())
            await first.accept((await alice.wait_for("connected", call_id=good))["sdp"])
            await wait_until(lambda: first.heard(440, last=1.0))

            bad = await alice.call("2000", await second.offer())
            ended = await alice.wait_for("ended", call_id=bad)
            assert ended["reason"] == "media_failed" and "boom" in ended["message"], ended
            assert f"call={bad} failed" in caplog.text

            first.clear()
            await wait_until(lambda: first.heard(440, last=1.0))  # the first call still carries audio
            assert gateway._health_details()["calls"] == 1

            again = await alice.call("2000", await third.offer())
            await third.accept((await alice.wait_for("connected", call_id=again))["sdp"])
            for call_id in (good, again):
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
        finally:
            for peer in (first, second, third):
                await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
