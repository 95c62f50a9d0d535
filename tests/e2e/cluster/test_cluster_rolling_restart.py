"""A rolling restart under load (issue 18 behaviour 4): three instances as processes behind the shipped
Kamailio edge, a sipp UAC placing RATE calls/s (each held HOLD_MS) through the edge to alice, and the
instances drained (SIGUSR1), left to exit and started again one after the other. No call fails: a
draining instance answers new INVITEs 503 and Kamailio's dispatcher takes the next one; one stopped
meanwhile times out once and is probed out (in practice the OPTIONS probes, answered 503 by a draining
instance, take it out before any INVITE goes there).

The answering side is alice with SESSIONS aiortc web users on every instance (directly, not through
HAProxy, so that each instance rings its own sessions): an idle one answers each incoming call. The
sessions of a drained instance close with it and are opened again when it is back. On this 2-core
machine the rate is 2 calls/s (the issue's 5/s saturates the aiortc answerers, not the gateways).

Every call rings alice on two instances (the 302's fork), and the losing branch rings until the winner's
200 brings Kamailio's CANCEL: each instance counts nearly every call in flight as ringing her. At 2 calls/s
answers slower than ~2 s (a loaded machine, a restarting instance's CPU) reach the default
``calls.max_ringing_per_user`` (4), and the instance rightly answers 486 (a flood guard,
docs/signaling.md): three full-suite runs failed so. That guard is not what this test is about, so both
per-user caps are set above sipp's 10 calls at once; any other refusal still fails sipp, and the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from peers.kamailio_edge import running_edge
from peers.redis import running_redis
from peers.sipp import Sipp
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster
from tests.e2e.harness import ALICE_SECRET

RTP_BASE = 42400  # this file's RTP ports: 42400-42599, 43000-43199, 43600-43799
RATE = 2.0
HOLD_MS = 1000
CALLS = 70  # 35 s of load
SESSIONS = 3
SIPP_LIMIT = 10  # sipp's calls at once


class Answerers:
    """alice's sessions on one instance; an idle one answers every call that rings it."""

    def __init__(self, instance: GatewayProcess, claimed: set[str]) -> None:
        self.instance = instance
        # SIP Call-IDs (sipp's X-Sipp-Call, passed to the browser) some instance's session took: a user
        # whose sessions are on several instances is rung on all of them (Kamailio forks the 302), and
        # like a person only one device answers; the others ring until Kamailio CANCELs them
        self.claimed = claimed
        self.users: list[WebUser] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.busy: set[int] = set()  # id() of the sessions in a call
        self.rung: dict[str, list[WebUser]] = {}  # call id -> the sessions that rang
        self.calls: set[asyncio.Task[None]] = set()
        self.answered = 0

    async def open(self) -> None:
        for _ in range(SESSIONS):
            user = WebUser(self.instance.http_url, "alice", ALICE_SECRET)
            await user.__aenter__()
            self.users.append(user)
            self.tasks.append(asyncio.create_task(self._serve(user)))

    async def _serve(self, user: WebUser) -> None:
        while True:
            ringing = await user.wait_for("incoming", timeout=3600)
            call_id = str(ringing["call_id"])
            headers = {str(k).lower(): v for k, v in (ringing.get("headers") or {}).items()}
            sip_call = str(headers.get("x-sipp-call", call_id))
            if sip_call in self.claimed and call_id not in self.rung:
                continue  # answered on another instance
            self.claimed.add(sip_call)
            rung = self.rung.setdefault(call_id, [])
            rung.append(user)
            if len(rung) > 1:  # every session of alice here rings: one answers
                continue
            task = asyncio.create_task(self._answer(call_id))
            self.calls.add(task)
            task.add_done_callback(self.calls.discard)

    async def _answer(self, call_id: str) -> None:
        """Answer on an idle session that rang (waiting for one to be free if all are busy; a session
        that logged in after the call arrived does not know it)."""
        while not (idle := [u for u in self.rung[call_id] if id(u) not in self.busy]):
            await asyncio.sleep(0.02)
        user = idle[0]
        self.busy.add(id(user))
        peer = WebPeer(1000, codecs=("PCMU",))
        try:
            await user.answer(call_id, peer.answer)
            self.answered += 1
            await user.wait_for("ended", call_id=call_id, timeout=30)
        except (WebUserError, ConnectionError, TimeoutError):
            pass  # the caller gave up, or the instance went away
        finally:
            self.busy.discard(id(user))
            # bounded: aiortc's close can wait forever on a transport whose instance vanished, and a
            # cancelled answerer must not keep close() below (and the test) waiting
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.close(), 5)

    async def close(self) -> None:
        tasks = (*self.tasks, *self.calls)
        for task in tasks:
            task.cancel()
        if tasks:  # the 5 s bound of each peer's close, and a margin: never the test's whole timeout
            await asyncio.wait(tasks, timeout=15)
        for user in self.users:
            with contextlib.suppress(Exception):
                await user.close()
        self.users, self.tasks = [], []


async def test_rolling_restart_under_load_fails_no_call(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        # no reconnect grace: a drain hands its calls over only to a page that comes back for them
        # (test_cluster_drain_handover.py); here each call ends by itself (sipp's UAC takes no re-INVITE)
        grace = {
            "web_auth": {"reconnect_grace": 0},
            "calls": {"max_ringing_per_user": 2 * SIPP_LIMIT},  # see the module's note
            "limits": {"calls_per_user": 2 * SIPP_LIMIT},
        }
        mappings = [instance_mapping(i, redis.url, rtp_base=RTP_BASE, extra=grace) for i in range(3)]
        for mapping in mappings:  # sipp's Call-ID reaches the pages: one answer per call (Answerers)
            mapping["sip"]["pass_headers"] = ["X-Sipp-Call"]
        async with process_cluster(tmp_path, mappings) as instances:
            with running_edge(tmp_path, [i.sip for i in instances]) as edge:
                claimed: set[str] = set()
                answerers = [Answerers(i, claimed) for i in instances]
                for group in answerers:
                    await group.open()
                uac = Sipp(tmp_path, "uac_basic_call", edge.address, service="1001", calls=CALLS,
                           rate=RATE, limit=SIPP_LIMIT, duration_ms=HOLD_MS, timeout=120)  # fmt: skip
                restarts: list[float] = []
                try:
                    await uac.start()
                    await asyncio.sleep(4.0)
                    for index, instance in enumerate(instances):
                        started = time.monotonic()
                        instance.drain()
                        await asyncio.sleep(0.5)
                        assert not instance.ready(), "a draining instance's /readyz must say 503"
                        assert await instance.wait(30) == 0, instance.log()[-3000:]
                        await answerers[index].close()
                        await instance.restart()
                        answerers[index] = Answerers(instance, claimed)
                        await answerers[index].open()
                        restarts.append(time.monotonic() - started)
                        await asyncio.sleep(2.0)  # Kamailio's probes take it back
                    result = await uac.wait(timeout=120)
                finally:
                    for group in answerers:
                        await group.close()
                # (sipp's own account when a call failed: its errors, its screen, and the edge's log tail;
                # this test failed twice under a full suite's load without saying which call or why)
                assert result.ok, (
                    f"sipp {result.returncode}\nerrors:\n{result.errors[-3000:]}\nscreen:\n{result.screen[-2000:]}"
                    f"\nedge:\n{edge.log()[-3000:]}"
                )
                assert result.count("SIP/2.0 200") >= 2 * CALLS  # 200 to every INVITE and BYE
                assert len(restarts) == 3
                for instance in instances:
                    assert "drained: 0 calls left" in instance.log(), instance.log()[-3000:]
                    assert "Traceback" not in instance.log(), instance.log()[-3000:]
    print(f"rolling restart at {RATE:g} calls/s: {CALLS} calls, none failed; restarts {restarts}")
