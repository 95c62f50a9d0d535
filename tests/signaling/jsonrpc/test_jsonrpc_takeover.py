"""A JSON-RPC peer's calls across instances (issue 34; gateway/signaling/jsonrpc/resume.py, takeover.py):
where an announce goes when the peer waits elsewhere (`relay_elsewhere`), which frames may be carried
on, and the peer made again for calls taken over from a dead instance (`adopt_peer`), with the fake
call service and a real `/jsonrpc` socket (the processes and Redis: tests/e2e/cluster/)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.signaling.errors import ServiceError
from gateway.signaling.jsonrpc.endpoint import RPC_KEY, _lone_announce
from gateway.signaling.jsonrpc.peer import RpcPeer
from gateway.signaling.jsonrpc.resume import Relayed, relay_elsewhere
from gateway.signaling.jsonrpc.takeover import adopt_peer
from tests.signaling.harness import Harness, demo_config, make_harness

Client = TestClient[web.Request, web.Application]
API_KEY = "jsonrpc-takeover-key-0123456789"


class Where:
    """relay_to's answers in turn, and what it was asked."""

    def __init__(self, *answers: str | Exception | None) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, str | None]] = []

    async def __call__(self, family: str, unreachable: str | None) -> str | None:
        self.asked.append((family, unreachable))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Relays:
    """relay's outcomes in turn (True carried on, False unreachable, None refused), and the URLs."""

    def __init__(self, *outcomes: bool | None) -> None:
        self.outcomes = list(outcomes)
        self.urls: list[str] = []

    async def __call__(self, url: str) -> bool | None:
        self.urls.append(url)
        return self.outcomes.pop(0)


async def test_a_peer_waiting_nowhere_else_is_served_here() -> None:
    where, relays = Where(None), Relays()
    await relay_elsewhere("rpc:alice:desk", where, relays)
    assert where.asked == [("rpc:alice:desk", None)] and relays.urls == []


@pytest.mark.parametrize("outcome", [True, None])
async def test_a_peer_waiting_on_a_live_instance_is_carried_on_there(outcome: bool | None) -> None:
    """Carried on (True), or refused there for now (None: the socket closes 1013): no answer from here."""
    where, relays = Where("http://b:8080"), Relays(outcome)
    with pytest.raises(Relayed):
        await relay_elsewhere("rpc:alice:desk", where, relays)
    assert relays.urls == ["http://b:8080"]


async def test_a_dead_instance_is_asked_about_again_and_the_survivor_may_be_this_one() -> None:
    where, relays = Where("http://dead:8080", None), Relays(False)
    await relay_elsewhere("rpc:alice:desk", where, relays)
    assert where.asked == [("rpc:alice:desk", None), ("rpc:alice:desk", "http://dead:8080")]


async def test_the_same_dead_instance_named_again_or_redis_down_is_served_here() -> None:
    where, relays = Where("http://dead:8080", "http://dead:8080"), Relays(False)
    await relay_elsewhere("rpc:alice:desk", where, relays)
    assert relays.urls == ["http://dead:8080"]
    await relay_elsewhere("rpc:alice:desk", Where(ServiceError("Redis down")), Relays())


@pytest.mark.parametrize(
    ("frame", "lone"),
    [
        ('{"jsonrpc": "2.0", "method": "announce", "params": {"peer_id": "d"}, "id": 1}', True),
        (b' {"method": "announce"}', True),
        ('[{"jsonrpc": "2.0", "method": "announce", "params": {"peer_id": "d"}, "id": 1}]', False),
        ('{"jsonrpc": "2.0", "method": "ping", "id": 1}', False),
    ],
)
def test_only_a_lone_announce_is_carried_on(frame: str | bytes, lone: bool) -> None:
    """A batch is never relayed: the rest of it would run here and again there."""
    assert _lone_announce(frame) is lone


@pytest.fixture
async def env() -> AsyncIterator[tuple[Harness, Client]]:
    config = demo_config(
        GATEWAY_USERS__0__API_KEYS=f'[{{key: "{API_KEY}", default_dial: "2000"}}]',
        GATEWAY_WEB_AUTH__RECONNECT_GRACE="5",
    )
    harness = make_harness(config=config)
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    yield harness, client
    await client.close()


async def _alice(harness: Harness) -> Any:
    return await harness.app[RPC_KEY].credentials.identity.store.get("alice")


async def _ask(ws: Any, method: str, params: dict[str, Any], rpc_id: int) -> Any:
    await ws.send_str(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": rpc_id}))
    while True:
        message = await ws.receive_json(timeout=5)
        if message.get("id") == rpc_id:
            return message


async def test_a_peer_made_again_holds_its_calls_until_its_client_announces_it(
    env: tuple[Harness, Client],
) -> None:
    """Two calls of one peer taken over side by side: one peer made again under the peer's session id,
    holding both (the call service sees one session, never replaced); the client's announce resumes it
    with both; a third call taken over after that is told to the live client as `taken_over`."""
    harness, client = env
    context, alice = harness.app[RPC_KEY], await _alice(harness)
    assert await adopt_peer(context, alice, "r-dead1", "desk", "c1")
    made = harness.calls.sessions["r-dead1"]
    assert isinstance(made, RpcPeer) and context.detached.holds(made)
    assert await adopt_peer(context, alice, "r-dead1", "desk", "c2")
    assert harness.calls.sessions["r-dead1"] is made and len(context.detached) == 1

    async with client.ws_connect(f"/jsonrpc?api_key={API_KEY}") as ws:
        reply = await _ask(ws, "announce", {"peer_id": "desk"}, 1)
        result = reply["result"]
        assert result["resumed"] is True and result["call_ids"] == ["c1", "c2"], reply
        assert result["session_id"] == "r-dead1"
        assert await adopt_peer(context, alice, "r-dead1", "desk", "c3")
        told = await ws.receive_json(timeout=5)
        assert told["method"] == "progress" and told["params"] == {"call_id": "c3", "event": "taken_over"}
        assert harness.calls.sessions["r-dead1"] is made  # still the live one, not a second peer
    assert "r-dead1" not in harness.calls.closed  # its socket went with calls up: detached again


async def test_no_peer_is_made_again_without_a_reconnect_grace() -> None:
    harness = make_harness(config=demo_config(GATEWAY_WEB_AUTH__RECONNECT_GRACE="0"))
    context, alice = harness.app[RPC_KEY], await _alice(harness)
    assert not await adopt_peer(context, alice, "r-dead1", "desk", "c1")
    assert "r-dead1" not in harness.calls.sessions
