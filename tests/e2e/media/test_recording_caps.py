"""Recording caps and the disk floor with real peers (issue 67 item 17): a pjsua2 desk phone called by an
aiortc web user through a gateway started as the tests do.

A start/stop loop made a file each time (40 cycles in 6 s: 78 files for one call) and nothing looked at
the disk. Now: past `recording.max_per_call` starts a call's next start is refused 429
`too_many_recordings` (the files stay as many as the cap); a user's calls recorded at once stop at
`recording.max_per_user`; under `recording.min_free_mb` free on the directory's disk no recording starts
(507 `recording_disk_low`, an `always` call goes on unrecorded), /healthz says `recording: low`, and
`gateway_recordings_refused{reason}` / `gateway_recording_disk_free_bytes` count and measure."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, running_gateway, wait_until
from tests.e2e.ops.test_admin_api import ADMIN, admin_config, connect
from tests.e2e.ops.test_operations import TOKEN, scrape, value

HUGE_MB = 10**7  # 10 TB: more than any test machine has free


def _config(phone: DeskPhone, directory: Path, rtp: int, **recording: Any) -> Any:
    return admin_config(
        phone, [], rtp, recording={"mode": "on_demand", "directory": str(directory), **recording},
        metrics={"token": TOKEN},
    )  # fmt: skip


async def _healthz(gateway: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.http_url}/healthz") as reply:
        assert reply.status == 200
        body: dict[str, Any] = await reply.json()
        return body


async def _record(alice: WebUser, call_id: str, action: str) -> str:
    await alice.request({"type": "record", "call_id": call_id, "action": action})
    return str((await alice.wait_for("recording", call_id=call_id))["state"])


async def test_a_call_makes_at_most_max_per_call_recordings(tmp_path: Path) -> None:
    require_desk_phone()
    directory = tmp_path / "recordings"
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(_config(phone, directory, 38800, max_per_call=3)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        health = (await _healthz(gateway))["recording"]
        assert health["state"] == "ok" and health["free_mb"] > 0 and health["min_free_mb"] == 200, health
        peer = WebPeer(freq=1000)
        try:
            call_id, _ = await connect(alice, peer, phone)
            await alice.wait_for("recording", call_id=call_id)  # idle, on_demand
            for _ in range(3):
                assert await _record(alice, call_id, "start") == "recording"
                assert await _record(alice, call_id, "stop") == "stopped"
            for _ in range(2):  # a loop goes on asking: refused each time, no file made
                try:
                    await alice.request({"type": "record", "call_id": call_id, "action": "start"})
                except WebUserError as exc:
                    assert "too_many_recordings" in str(exc) and "'field': 'action'" in str(exc), exc
                    assert "recording.max_per_call" in str(exc), exc
                else:
                    raise AssertionError("a 4th recording of the call was started")
            async with aiohttp.ClientSession() as http:  # the admin API is held to it too: 429
                url = f"{gateway.http_url}/admin/api/calls/{call_id}/recording"
                async with http.post(url, json={"action": "start"}, headers=ADMIN) as reply:
                    answer = await reply.json()
                    assert reply.status == 429 and answer["field"] == "action", answer
            _, samples = await scrape(gateway)
            assert value(samples, "gateway_recordings_refused_total", reason="call_cap") == 3, samples
            assert value(samples, "gateway_recording_disk_free_bytes") > 0
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()
    assert len(sorted(directory.rglob("*.wav"))) == 3


async def test_a_users_calls_recorded_at_once_stop_at_max_per_user(tmp_path: Path) -> None:
    require_desk_phone()
    directory = tmp_path / "recordings"
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(_config(phone, directory, 39000, max_per_user=1)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        first, second = WebPeer(freq=1000), WebPeer(freq=1300)
        try:
            call_1, _ = await connect(alice, first, phone)
            call_2, _ = await connect(alice, second, phone)
            for call_id in (call_1, call_2):
                assert (await alice.wait_for("recording", call_id=call_id))["state"] == "idle"
            assert await _record(alice, call_1, "start") == "recording"
            try:
                await alice.request({"type": "record", "call_id": call_2, "action": "start"})
            except WebUserError as exc:
                assert "too_many_recordings" in str(exc) and "recording.max_per_user" in str(exc), exc
            else:
                raise AssertionError("alice's second call was recorded beside her first")
            assert await _record(alice, call_1, "stop") == "stopped"  # her first stops: now it may
            assert await _record(alice, call_2, "start") == "recording"
            _, samples = await scrape(gateway)
            assert value(samples, "gateway_recordings_refused_total", reason="user_cap") == 1, samples
            for call_id in (call_1, call_2):
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
        finally:
            await asyncio.gather(first.close(), second.close())


async def test_no_recording_starts_under_the_free_disk_floor(tmp_path: Path) -> None:
    require_desk_phone()
    directory = tmp_path / "recordings"
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = _config(phone, directory, 39200, min_free_mb=HUGE_MB)
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            health = (await _healthz(gateway))["recording"]
            assert health["state"] == "low" and health["min_free_mb"] == HUGE_MB, health
            peer = WebPeer(freq=1000)
            try:
                call_id, _ = await connect(alice, peer, phone)
                await alice.wait_for("recording", call_id=call_id)
                try:
                    await alice.request({"type": "record", "call_id": call_id, "action": "start"})
                except WebUserError as exc:
                    assert "recording_disk_low" in str(exc) and "recording.min_free_mb" in str(exc), exc
                else:
                    raise AssertionError("a recording started under the disk floor")
                async with aiohttp.ClientSession() as http:
                    url = f"{gateway.http_url}/admin/api/calls/{call_id}/recording"
                    async with http.post(url, json={"action": "start"}, headers=ADMIN) as reply:
                        answer = await reply.json()
                        assert reply.status == 507 and answer["field"] == "action", answer
                _, samples = await scrape(gateway)
                assert value(samples, "gateway_recordings_refused_total", reason="disk") == 2, samples
                await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)  # the call goes on
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
    assert not list(directory.rglob("*.wav"))
