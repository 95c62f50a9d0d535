"""A Redis outage (issue 18 behaviour 3), end to end: three instances (in this process) behind the shipped
Kamailio edge and HAProxy, a real Redis stopped and started again.

A pjsua2 desk phone calls alice (logged in through HAProxy) through the edge; she answers. Redis stops
(SIGKILL: no goodbye to its clients) for longer than a lease:
- the call goes on: the phone's 440 Hz is heard by alice's side during the outage and after it, and
  alice's 1 kHz is in every second of the phone's recording;
- bob's login meanwhile is refused with `unavailable` ("shared state (Redis) unavailable ... try again
  shortly"), never a traceback or a hang;
- every instance's /readyz answers 503 with its `cluster` check failing (issue 36: in a cluster,
  readiness includes Redis), so HAProxy sends no new web user to an instance that cannot log her in;
Redis comes back (same port, its append-only file): /readyz is 200 again, bob's login through HAProxy
succeeds by itself within a few seconds, and a new call from the phone rings alice again (her presence
re-published by the heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from peers.audio import detect_tone, read_wav
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_harness import LEASE, cluster
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, wait_until

OUTAGE = LEASE + 2.0  # seconds: longer than a lease of instance_config


async def log_in_bob(url: str) -> str | None:
    """None when bob's login succeeds; the refusal's text otherwise (HAProxy's 503 while no instance is
    ready)."""
    try:
        async with WebUser(url, "bob", BOB_SECRET):
            return None
    except (WebUserError, aiohttp.WSServerHandshakeError) as exc:
        return str(exc)


def cluster_check(url: str) -> tuple[int, str]:
    """An instance's /readyz: (HTTP status, the state of its `cluster` check)."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return status, json.loads(body)["checks"]["cluster"]["state"]


async def phone_calls_alice(phone: DeskPhone, alice: WebUser, aor: str, peer: WebPeer) -> tuple[int, str]:
    """The phone calls `aor`; alice answers with `peer`. The phone's call number and alice's call id."""
    number = await phone.call(aor)
    ringing = await alice.wait_for("incoming")
    await alice.answer(ringing["call_id"], peer.answer)
    await phone.wait_for("state", call=number, state="CONFIRMED")
    return number, str(ringing["call_id"])


class LoopStalls:
    """The longest stalls of this process's event loop (the three instances, the peer and the test share
    it) and when they began: a failure of the call's audio says whether the process stood still."""

    def __init__(self) -> None:
        self.stalls: list[tuple[float, float]] = []  # (monotonic start, seconds)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopStalls:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            lag = time.monotonic() - before - 0.05
            if lag > 0.2:
                self.stalls.append((before, lag))

    def since(self, start: float) -> str:
        return (
            ", ".join(f"{lag:.2f} s at +{at - start:.2f} s" for at, lag in self.stalls) or "none over 0.2 s"
        )


async def test_calls_survive_a_redis_outage_and_logins_recover(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_desk_phone()
    for name in ("gateway.media.bridge", "gateway.media.codecs.comfort_fill", "gateway.media.fastlane"):
        caplog.set_level(logging.INFO, logger=name)  # the browser's audio lost and back, the lane's moves
    async with cluster(tmp_path, 3, fronts=True) as c:
        redis, gateways, edge, front = c.redis, c.gateways, c.edge, c.front
        async with (
            DeskPhone(tmp_path, user="2000", tone=440) as phone,
            WebUser(front.url, "alice", ALICE_SECRET) as alice,
            LoopStalls() as stalls,
        ):
            peer = WebPeer(freq=1000)
            moments: dict[str, float] = {}
            try:
                number, call_id = await phone_calls_alice(phone, alice, edge.aor("1001"), peer)
                answered, answered_at = time.monotonic(), time.time()  # about where the recording starts
                await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)

                # off the event loop: the instances and the browser share it, and a start under load can
                # take seconds (the browser then sends nothing: a silence of the test's own making)
                await asyncio.to_thread(redis.stop, kill=True)
                stopped = moments["Redis killed"] = time.monotonic()
                refused = await log_in_bob(gateways[0].http_url)  # the instance's own answer
                assert refused is not None and "unavailable" in refused, refused
                assert "shared state (Redis) unavailable" in refused, refused
                while time.monotonic() - stopped < OUTAGE:
                    await asyncio.sleep(1.0)
                    assert peer.heard(440, last=1.0), "the phone's tone stopped during the outage"
                for g in gateways:  # each has failed a heartbeat by now (every 0.5 s)
                    status = await asyncio.to_thread(cluster_check, g.http_url)
                    assert status == (503, "failing"), (g.http_url, status)

                await asyncio.to_thread(redis.start)
                restarted = moments["Redis restarted"] = time.monotonic()
                while (refusal := await log_in_bob(front.url)) is not None:
                    assert time.monotonic() - restarted < 10, refusal
                    await asyncio.sleep(0.2)
                recovered = time.monotonic() - restarted
                moments["bob logged in"] = time.monotonic()
                for g in gateways:  # each is ready again by its next heartbeat (0.5 s)
                    while (status := await asyncio.to_thread(cluster_check, g.http_url)) != (200, "ok"):
                        assert time.monotonic() - restarted < 10, (g.http_url, status)
                        await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)
                assert peer.heard(440, last=1.0), "the phone's tone stopped after the outage"
                moments["hangup"] = time.monotonic()
                await phone.hangup(number)
                ended = await alice.wait_for("ended", call_id=call_id)
                assert ended["reason"] == "remote_hangup", ended
            finally:
                await peer.close()
            rate, samples = read_wav(await phone.wait_for_recording(number))
            seconds = len(samples) // rate
            silent = [
                s
                for s in range(1, seconds)
                if not detect_tone(samples[s * rate : (s + 1) * rate], rate, 1000, threshold=0.3)
            ]
            timeline = ", ".join(f"{what} +{at - answered:.2f} s" for what, at in moments.items())
            media = [
                f"+{r.created - answered_at:.2f} s {r.getMessage()}"
                for r in caplog.records
                if r.name.startswith(("gateway.media", "gateway.runtime.driver_core"))
                and r.levelno >= logging.INFO
            ]
            assert seconds >= OUTAGE and not silent, (
                f"no 1 kHz in seconds {silent} of {seconds} (from the answer: {timeline}); the event loop "
                f"stalled {stalls.since(answered)}; the media log: {media}"
            )

            # routing recovered too: the phone rings alice again through the edge
            await wait_until(lambda: all(g.cluster and g.cluster.node.available for g in gateways))
            peer = WebPeer(freq=1000)
            try:
                again, call_id = await phone_calls_alice(phone, alice, edge.aor("1001"), peer)
                await phone.hangup(again)
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
    print(f"Redis outage {OUTAGE:g} s: logins back {recovered:.2f} s after Redis returned")
