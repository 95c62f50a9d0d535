"""`Connection` without a socket: its states, and what it sends, driven directly."""

from __future__ import annotations

import asyncio
import json

from gateway.identity import InMemoryPresence
from gateway.identity.lookup import identity_map_from_config
from gateway.signaling import events as ev
from gateway.signaling.events import ServerMessage, encode
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.service import SelectiveEarlyAnswerSink
from gateway.signaling.tokens import SessionTokens
from gateway.signaling.turn_rest import IceServers
from gateway.signaling.ws.connection import Connection, ConnectionState, SignalingContext
from tests.signaling.harness import ALICE_SECRET, ANSWER_SDP, OFFER_SDP, FakeCallService, demo_config


def make(
    clock: list[float] | None = None,
) -> tuple[Connection, list[dict[str, object]], FakeCallService, InMemoryPresence]:
    now = clock if clock is not None else [0.0]
    config = demo_config()
    presence = InMemoryPresence()
    service = FakeCallService()
    context = SignalingContext(
        service,
        identity_map_from_config(config, presence),
        presence,
        SessionTokens(b"k" * 32, 60),
        IceServers(),
        SignalingLimits(rate=1000.0, burst=1000),
        lambda: now[0],
    )
    sent: list[dict[str, object]] = []

    async def send(message: ServerMessage) -> None:
        sent.append(json.loads(encode(message)))

    return Connection(context, send), sent, service, presence


LOGIN = json.dumps({"type": "login", "user": "alice", "secret": ALICE_SECRET})


async def test_states_and_idempotent_close() -> None:
    connection, sent, service, presence = make()
    assert connection.state is ConnectionState.AWAITING_LOGIN
    await connection.receive(LOGIN)
    assert connection.state is ConnectionState.OPEN and sent[-1]["type"] == "registered"
    await connection.login_timed_out()  # too late to matter: nothing sent, nothing closed
    assert len(sent) == 1 and connection.close_code is None
    await connection.close()
    await connection.close()
    assert connection.state is ConnectionState.CLOSED
    assert service.closed == [connection.id]
    assert await presence.sessions_of("alice") == ()
    await connection.receive('{"type": "ping"}')  # ignored once closed
    assert len(sent) == 1


async def test_closing_before_login_tells_nobody() -> None:
    connection, sent, service, _ = make()
    await connection.login_timed_out()
    assert sent[-1]["code"] == "login_timeout" and connection.close_code == 4008
    await connection.close()
    assert service.closed == [] and connection.state is ConnectionState.CLOSED


async def test_a_failing_send_does_not_break_the_connection() -> None:
    connection, _, _, _ = make()

    async def broken(message: ServerMessage) -> None:
        raise ConnectionResetError("gone")

    connection._send = broken
    await connection.receive('{"type": "ping"}')
    assert connection.state is ConnectionState.AWAITING_LOGIN


async def test_dtmf_cannot_queue_more_tones_than_play_in_real_time() -> None:
    """32 digits of 2 s per message, 20 messages a second, would queue hours of tones (or INFOs)."""
    now = [0.0]
    connection, sent, service, _ = make(now)
    await connection.receive(LOGIN)
    dial = {"type": "call", "to": "2000", "sdp": "v=0\r\n"}
    await connection.receive(json.dumps(dial))
    call_id = sent[-1]["call_id"]
    burst = json.dumps({"type": "dtmf", "call_id": call_id, "digits": "1" * 32, "duration_ms": 1000})
    replies = []
    for _ in range(3):  # 33.6 s of tones each: the second goes past the 60 s budget
        await connection.receive(burst)
        replies.append(sent[-1])
    assert replies[0]["type"] == "ack"
    assert [(r["code"], r["field"]) for r in replies[1:]] == [("rate_limited", "digits")] * 2
    assert [c for c in service.calls if c[0] == "dtmf"] == [("dtmf", (call_id, "1" * 32, 1000))]
    now[0] += 30.0  # the tones play; the budget refills
    await connection.receive(burst)
    assert sent[-1]["type"] == "ack"
    await connection.receive(json.dumps({"type": "dtmf", "call_id": call_id, "digits": "5"}))
    assert sent[-1]["type"] == "ack"  # the usual keypress is never refused


async def test_early_answer_comes_after_the_ack_and_connected_then_carries_no_sdp() -> None:
    connection, sent, service, _ = make()
    await connection.receive(LOGIN)
    call = {"type": "call", "id": 1, "to": "2000", "sdp": OFFER_SDP, "early_answer": True}
    await connection.receive(json.dumps(call))
    await asyncio.sleep(0)  # the call layer's answer, as the runtime makes it after the dial
    await asyncio.sleep(0)
    assert [m["type"] for m in sent[1:]] == ["ack", "answer"]
    assert sent[2] == {"type": "answer", "call_id": "c1", "sdp": ANSWER_SDP}
    session = service.sessions[connection.id]
    await session.send_event(ev.EarlyMedia("c1", ANSWER_SDP))
    await session.send_event(ev.Connected("c1", ANSWER_SDP))
    assert sent[-2:] == [
        {"type": "early_media", "call_id": "c1", "sdp": None},
        {"type": "connected", "call_id": "c1", "sdp": None},
    ]  # the browser applied the answer once, from `answer`
    # a call placed without it: no `answer`, the SDP in `connected` as before
    await connection.receive(json.dumps({**call, "id": 2, "early_answer": False}))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sent[-1] == {"type": "ack", "id": 2, "request": "call", "call_id": "c2"}
    await session.send_event(ev.Connected("c2", ANSWER_SDP))
    assert sent[-1] == {"type": "connected", "call_id": "c2", "sdp": ANSWER_SDP}
    await session.send_event(ev.Ended("c1", "hangup", "bye", None))
    assert isinstance(session, SelectiveEarlyAnswerSink) and not session.wants_early_answer("c1")  # forgotten


async def test_early_answer_must_be_a_boolean() -> None:
    connection, sent, service, _ = make()
    await connection.receive(LOGIN)
    await connection.receive(
        json.dumps({"type": "call", "id": 1, "to": "2000", "sdp": OFFER_SDP, "early_answer": "yes"})
    )
    assert sent[-1]["code"] == "bad_request" and sent[-1]["field"] == "early_answer"
    assert service.calls == []
