"""A session's progress after its answer: polling `GET /webrtc/sessions/{id}` and server-sent events at
`/webrtc/sessions/{id}/events` (gateway/signaling/http_api/sessions.py), and the progress log itself."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from itertools import product

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.signaling.http_api.progress import (
    EVENT_NAMES,
    TRANSITIONS,
    ProgressEvent,
    SessionProgress,
    SessionState,
)
from tests.signaling.harness import ALICE_SECRET, OFFER_SDP, Harness, make_harness

Client = TestClient[web.Request, web.Application]
ALICE = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}
BOB = {"Authorization": "Basic " + base64.b64encode(b"bob:bob-demo").decode()}
OFFER = {"sdp": {"type": "offer", "sdp": OFFER_SDP}, "metadata": {"dial": "2000"}}


@pytest.fixture
async def env() -> AsyncIterator[tuple[Harness, Client]]:
    harness = make_harness()
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    yield harness, client
    await client.close()


async def _session(client: Client) -> str:
    response = await client.post("/webrtc/offer", json=OFFER, headers=ALICE)
    assert response.status == 200
    session_id: str = (await response.json())["session_id"]
    return session_id


async def _read_events(response: object, count: int) -> list[tuple[str, str, dict[str, object]]]:
    """(id, event, data) of the next `count` SSE events."""
    assert hasattr(response, "content")
    found: list[tuple[str, str, dict[str, object]]] = []
    fields: dict[str, str] = {}
    while len(found) < count:
        line = (await asyncio.wait_for(response.content.readline(), 5)).decode().rstrip("\n")
        if line == "":
            if "event" in fields:
                found.append((fields["id"], fields["event"], json.loads(fields["data"])))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return found


async def test_polling_shows_state_and_events(env: tuple[Harness, Client]) -> None:
    harness, client = env
    session_id = await _session(client)
    progress = harness.offers.progresses[session_id]
    progress.record("ringing")
    progress.record("answered")
    progress.record("dtmf", digit="5", duration_ms=160)
    response = await client.get(f"/webrtc/sessions/{session_id}", headers=ALICE)
    body = await response.json()
    assert (response.status, body["state"], body["last_event_id"]) == (200, "answered", 3)
    assert [(e["id"], e["event"]) for e in body["events"]] == [(1, "ringing"), (2, "answered"), (3, "dtmf")]
    assert body["events"][2]["digit"] == "5" and body["events"][2]["duration_ms"] == 160
    progress.record("ended", reason="remote_hangup", message="The other party hung up", sip_status=None)
    body = await (await client.get(f"/webrtc/sessions/{session_id}", headers=ALICE)).json()
    assert (body["state"], body["reason"]) == ("ended", "remote_hangup")
    response = await client.get(f"/webrtc/sessions/{session_id}", headers=BOB)  # not bob's
    assert (response.status, (await response.json())["code"]) == (404, 404)
    response = await client.get(f"/webrtc/sessions/{session_id}")
    assert (response.status, (await response.json())["code"]) == (401, 401)


async def test_event_stream_delivers_progress_and_ends(env: tuple[Harness, Client]) -> None:
    harness, client = env
    session_id = await _session(client)
    progress = harness.offers.progresses[session_id]
    progress.record("ringing")
    async with client.get(f"/webrtc/sessions/{session_id}/events", headers=ALICE) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        [(event_id, name, data)] = await _read_events(response, 1)
        assert (event_id, name, data["id"], data["event"]) == ("1", "ringing", 1, "ringing")
        assert isinstance(data["at"], float) and data["at"] > 1e9
        progress.record("ended", reason="busy", message="Busy", sip_status=486)  # never answered: failed
        [(event_id, name, data)] = await _read_events(response, 1)
        assert (event_id, name, data["reason"], data["sip_status"]) == ("2", "failed", "busy", 486)
        rest = await asyncio.wait_for(response.content.read(), 5)  # the stream ends after the final event
        assert b"event:" not in rest
    async with client.get(
        f"/webrtc/sessions/{session_id}/events", headers={**ALICE, "Last-Event-ID": "1"}
    ) as response:
        assert [e[1] for e in await _read_events(response, 1)] == ["failed"]


async def test_event_stream_bad_requests(env: tuple[Harness, Client]) -> None:
    _, client = env
    session_id = await _session(client)
    response = await client.get(f"/webrtc/sessions/{session_id}/events?after=x", headers=ALICE)
    assert (response.status, (await response.json())["field"]) == (400, "after")
    response = await client.get("/webrtc/sessions/nope/events", headers=ALICE)
    assert (response.status, (await response.json())["session_id"]) == (404, "nope")


# --- the progress log, without HTTP ---------------------------------------------------------------


def test_every_state_and_event_pair() -> None:
    """Each (state, event) either moves as TRANSITIONS says or leaves the state; nothing follows the end."""
    for state, name in product(SessionState, sorted(EVENT_NAMES)):
        progress = SessionProgress("s")
        progress._state = state
        event = progress.record(name)
        if state in (SessionState.FAILED, SessionState.ENDED, SessionState.CLOSED):
            assert event is None and progress.state is state
            continue
        assert event is not None
        effective = "failed" if name == "ended" and state is not SessionState.ANSWERED else name
        assert event.name == effective
        assert progress.state is TRANSITIONS.get((state, effective), state), (state, name)


def test_log_is_bounded_and_events_validate() -> None:
    progress = SessionProgress("s")
    progress.record("answered")
    for _ in range(500):
        progress.record("dtmf", digit="1", duration_ms=100)
    assert len(progress.events_after(0)) == 200 and progress.last_id == 501
    with pytest.raises(ValueError, match="unknown progress event 'nope'"):
        ProgressEvent(1, "nope")
    with pytest.raises(ValueError, match="below 1"):
        ProgressEvent(0, "ringing")


async def test_wait_returns_new_events_or_times_out() -> None:
    progress = SessionProgress("s")
    assert await progress.wait(0, 0.01) == []
    waiter = asyncio.ensure_future(progress.wait(0, 5))
    await asyncio.sleep(0)
    progress.record("ringing")
    assert [e.name for e in await waiter] == ["ringing"]
