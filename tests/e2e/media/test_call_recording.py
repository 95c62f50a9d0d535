"""Call recording with real peers (issue 37 item 3): a pjsua2 desk phone (440 Hz) called by an aiortc web
user (1000 Hz) through a gateway started as the tests do.

`always`: the call is recorded from its answer to its end; the WAV has the web user's 1 kHz in the left
channel and the phone's 440 Hz in the right, as long as the call; the JSON sidecar names the call, its
SIP Call-ID, the parties and times; the call record (`cdr.file`) and the signed `ended` webhook list the
file. `on_demand` (the user's own mode over the section's `never`): `record` start, pause, resume and
stop from `/ws`, each told back as a `recording` event; the file has audio only in the recorded spans;
bad requests are refused naming the field. The admin API starts a second file in the same call."""

from __future__ import annotations

import array
import asyncio
import dataclasses
import json
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config.recording import RecordingMode
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, running_gateway, wait_until
from tests.e2e.ops.test_admin_api import ADMIN, HOOK_SECRET, Receiver, admin_config, connect, receivers
from tests.media.recording.test_recorder import _power

WEB_TONE, PHONE_TONE = 1000.0, 440.0


def _wav(path: Path) -> tuple[list[int], list[int], int]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2), path
        frames = array.array("h", wav.readframes(wav.getnframes()))
        return list(frames[0::2]), list(frames[1::2]), wav.getframerate()


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_always_records_both_legs_with_sidecar_record_and_webhook(tmp_path: Path) -> None:
    require_desk_phone()
    hooks = Receiver()
    directory, cdr = tmp_path / "recordings", tmp_path / "calls.jsonl"
    async with receivers(hooks), DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone:
        config = admin_config(
            phone, [{"url": hooks.url, "secret": HOOK_SECRET, "events": ["ended"], "backoff": 0.1}], 38400,
            recording={"mode": "always", "directory": str(directory)}, cdr={"file": str(cdr)},
        )  # fmt: skip
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(freq=WEB_TONE)
            try:
                call_id, _ = await connect(alice, peer, phone)
                told = await alice.wait_for("recording", call_id=call_id)
                assert told["state"] == "recording" and told["mode"] == "always", told
                [path] = told["files"]
                await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)
                await asyncio.sleep(2.0)  # the call goes on for a while, recorded
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
            await wait_until(lambda: len(_records(cdr)) == 1, timeout=10)
            [record] = _records(cdr)
            sidecar_path = Path(path).with_suffix(".json")
            assert record["recording"] == {"files": [path], "sidecars": [str(sidecar_path)]}, record
            await wait_until(lambda: len(hooks.events(call_id)) == 1, timeout=10)
            [ended] = hooks.events(call_id)
            assert ended["event"] == "ended" and ended["data"]["recording"]["files"] == [path], ended

        await wait_until(sidecar_path.exists, timeout=10)
        sidecar = json.loads(sidecar_path.read_text())
        assert sidecar["call_id"] == call_id and sidecar["sip_call_ids"] == record["sip_call_ids"]
        assert sidecar["sip_call_ids"], sidecar
        assert (sidecar["user"], sidecar["from"], sidecar["to"]) == ("alice", record["from"], record["to"])
        assert sidecar["mode"] == "always" and sidecar["channels"] == {"left": "web", "right": "sip"}
        assert abs(sidecar["start_time"] - record["answer_time"]) < 0.5, (sidecar, record)
        assert abs(sidecar["end_time"] - record["end_time"]) < 0.5, (sidecar, record)
        left, right, rate = _wav(Path(path))
        assert abs(len(left) / rate - record["duration"]) < 0.5, (len(left) / rate, record["duration"])
        assert abs(len(left) / rate - sidecar["duration"]) < 0.01
        body = slice(
            rate // 2, len(left) - rate // 2
        )  # the call's audio, its first and last half second aside
        assert _power(left[body], WEB_TONE, rate) > 0.25, "no 1 kHz from the web user in the left channel"
        assert _power(left[body], PHONE_TONE, rate) < 0.05
        assert _power(right[body], PHONE_TONE, rate) > 0.25, "no 440 Hz from the phone in the right channel"
        assert _power(right[body], WEB_TONE, rate) < 0.05


async def test_on_demand_start_pause_resume_stop_from_ws(tmp_path: Path) -> None:
    require_desk_phone()
    directory = tmp_path / "recordings"
    async with DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone:
        config = admin_config(
            phone,
            [],
            38600,
            recording={"mode": "never", "directory": str(directory)},
        )
        users = tuple(
            dataclasses.replace(u, recording=RecordingMode.ON_DEMAND) if u.id == "alice" else u
            for u in config.users
        )  # her own mode, over the section's
        config = dataclasses.replace(config, users=users)
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(freq=WEB_TONE)
            try:
                call_id, _ = await connect(alice, peer, phone)
                told = await alice.wait_for("recording", call_id=call_id)
                assert (told["state"], told["mode"], told["files"]) == ("idle", "on_demand", []), told
                await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)

                refusals = [
                    ({"call_id": call_id, "action": "rewind"}, "'field': 'action'"),
                    ({"call_id": call_id}, "'field': 'action'"),
                    ({"call_id": "c-nobody", "action": "start"}, "'field': 'call_id'"),
                    ({"call_id": call_id, "action": "pause"}, "'field': 'action'"),  # nothing to pause yet
                ]
                for body, field in refusals:
                    try:
                        await alice.request({"type": "record", **body})
                    except WebUserError as exc:
                        assert field in str(exc), exc
                    else:
                        raise AssertionError(f"record {body} was not refused")

                states, sent = [], []
                for action in ("start", "pause", "resume", "stop"):
                    sent.append(time.monotonic())  # the spans are measured against these (a busy machine)
                    ack = await alice.request({"type": "record", "call_id": call_id, "action": action})
                    assert ack["type"] == "ack" and ack["request"] == "record", ack
                    states.append((await alice.wait_for("recording", call_id=call_id))["state"])
                    await asyncio.sleep(1.5)  # each span as long as the others
                assert states == ["recording", "paused", "recording", "stopped"], states
                # the admin API: a second file, started by an admin; refusals name the field
                async with aiohttp.ClientSession() as http:
                    url = f"{gateway.http_url}/admin/api/calls/{call_id}/recording"
                    for body, status, field in (
                        ({"action": "rewind"}, 400, "action"),
                        ({}, 400, "action"),
                        ({"action": "pause"}, 409, "action"),  # stopped: nothing to pause
                    ):
                        async with http.post(url, json=body, headers=ADMIN) as reply:
                            answer = await reply.json()
                            assert (reply.status, answer.get("field")) == (status, field), (body, answer)
                    async with http.post(url.replace(call_id, "c-nobody"), json={"action": "start"},
                                         headers=ADMIN) as reply:  # fmt: skip
                        assert reply.status == 404 and (await reply.json())["field"] == "call_id"
                    async with http.post(url, json={"action": "start"}, headers=ADMIN) as reply:
                        answer = await reply.json()
                        assert reply.status == 200 and answer["state"] == "recording", answer
                        assert len(answer["files"]) == 2 and answer["files"][1].endswith("-2.wav"), answer
                told = await alice.wait_for("recording", call_id=call_id)
                assert told["state"] == "recording" and len(told["files"]) == 2, told
                await asyncio.sleep(1.0)
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()

        path, second = sorted(directory.rglob("*.wav"))
        sidecar_path = path.with_suffix(".json")
        await wait_until(lambda: second.with_suffix(".json").exists(), timeout=10)
        assert json.loads(second.with_suffix(".json").read_text())["spans"][0][0] == 0.0
        sidecar = json.loads(sidecar_path.read_text())
        assert sidecar["mode"] == "on_demand" and len(sidecar["spans"]) == 2, sidecar
        (start1, end1), (start2, end2) = sidecar["spans"]
        at = [t - sent[0] for t in sent]  # when the test asked for each, from the start (about 1.5 s apart)
        spans = (start1, end1, start2, end2)
        assert start1 == 0.0 and all(abs(a - b) < 0.3 for a, b in zip(spans[1:], at[1:], strict=True)), (
            spans,
            at,
        )
        left, right, rate = _wav(path)
        assert abs(len(left) / rate - end2) < 0.05

        def part(channel: list[int], begin: float, end: float) -> list[int]:
            return channel[int((begin + 0.2) * rate) : int((end - 0.2) * rate)]

        for channel, tone in ((left, WEB_TONE), (right, PHONE_TONE)):
            assert _power(part(channel, start1, end1), tone, rate) > 0.25, tone
            assert _power(part(channel, start2, end2), tone, rate) > 0.25, tone
            assert max(map(abs, part(channel, end1, start2))) == 0, "audio in the paused span"
