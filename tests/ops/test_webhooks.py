"""gateway/ops/webhooks.py without a network: the signature, the backoff, the bounded queue, the retries
(an in-memory poster stands for the HTTP side; tests/e2e/ops/test_admin_api.py posts to a real receiver)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

import pytest

from gateway.config.admin import WebhookConfig
from gateway.config.secret import Secret, SecretSource
from gateway.ops.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    Delivery,
    WebhookQueue,
    Webhooks,
    backoff_delay,
    sign,
    verify_signature,
)

SECRET = "0123456789abcdef-secret"


def target(**changes: object) -> WebhookConfig:
    values: dict[str, object] = {
        "url": "http://127.0.0.1:9/hook",
        "secret": Secret(SecretSource.INLINE, "", SECRET),
        "backoff": 0.01,
        "backoff_max": 0.04,
    }
    values.update(changes)
    return WebhookConfig(**values)  # type: ignore[arg-type]


def test_signature_verifies_and_refuses_tampering_and_staleness() -> None:
    body = b'{"event":"answered"}'
    header = sign(SECRET.encode(), 1_800_000_000, body)
    assert header.startswith("t=1800000000,v1=") and len(header.partition("v1=")[2]) == 64
    assert verify_signature(SECRET.encode(), header, body, now=1_800_000_010)
    assert not verify_signature(SECRET.encode(), header, body + b" ", now=1_800_000_010)
    assert not verify_signature(b"another-secret-0000", header, body, now=1_800_000_010)
    assert not verify_signature(SECRET.encode(), header, body, now=1_800_000_000 + 301)
    assert not verify_signature(SECRET.encode(), "t=abc,v1=00", body, now=0)
    assert not verify_signature(SECRET.encode(), "", body, now=0)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 10.0) for n in (1, 2, 3, 4, 5, 60)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_full_queue_drops_the_oldest_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    queue = WebhookQueue(target(queue=2))
    for n in range(3):
        queue.offer(Delivery(f"d{n}", "ringing", f"call-{n}", b"{}"))
    assert [d.delivery_id for d in queue.fresh] == ["d1", "d2"] and queue.dropped == 1
    assert "queue full (2), dropped ringing event d0" in caplog.text


def test_failed_delivery_is_retried_with_backoff_then_given_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    queue = WebhookQueue(target(max_attempts=3, backoff=1.0, backoff_max=1.5))
    queue.offer(Delivery("d0", "ended", "call-0", b"{}"))
    delivery = queue.next_due(0.0)
    assert delivery is not None
    queue.finished(delivery, False, 0.0, "HTTP 500")
    assert queue.next_due(0.5) is None and queue.wait(0.5) == pytest.approx(0.5)
    again = queue.next_due(1.0)
    assert again is delivery
    queue.finished(again, False, 1.0, "HTTP 500")
    assert queue.next_due(2.4) is None and queue.next_due(2.5) is delivery  # 1.5 s: the cap
    queue.finished(delivery, False, 2.5, "HTTP 500")
    assert len(queue) == 0 and queue.given_up == 1 and queue.wait(3.0) is None
    assert "given up after 3 attempts (last: HTTP 500)" in caplog.text


def test_a_due_retry_goes_before_fresh_events() -> None:
    queue = WebhookQueue(target())
    queue.offer(Delivery("old", "ringing", "c", b"{}"))
    first = queue.next_due(0.0)
    assert first is not None
    queue.finished(first, False, 0.0, "refused")
    queue.offer(Delivery("new", "answered", "c", b"{}"))
    assert queue.next_due(0.005) is not None  # the fresh one: the retry is not due yet
    queue.offer(Delivery("newer", "ended", "c", b"{}"))
    retry = queue.next_due(1.0)
    assert retry is not None and retry.delivery_id == "old"


async def test_emit_posts_signed_bodies_and_retries_until_a_2xx() -> None:
    posted: list[tuple[str, bytes, Mapping[str, str]]] = []
    answers = [500, 500, 204]

    async def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        posted.append((url, body, headers))
        return answers.pop(0)

    hooks = Webhooks([target(events=("answered",))], post, instance="gw-1", clock=lambda: 1_800_000_000.0)
    hooks.emit("ringing", "call-1", {})  # not wanted by this receiver
    hooks.emit("bogus", "call-1", {})  # logged, not raised
    hooks.emit("answered", "call-1", {"from": "sip:1001@pbx", "when": object()})
    for _ in range(200):
        if not answers:
            break
        await asyncio.sleep(0.01)
    await hooks.close()
    assert len(posted) == 3 and hooks.queues[0].delivered == 1
    ids = {headers[DELIVERY_HEADER] for _, _, headers in posted}
    assert len(ids) == 1  # the same delivery each time
    url, body, headers = posted[-1]
    assert url == "http://127.0.0.1:9/hook"
    assert verify_signature(SECRET.encode(), headers[SIGNATURE_HEADER], body, now=1_800_000_000.0)
    event = json.loads(body)
    assert event["event"] == "answered" and event["call_id"] == "call-1" and event["instance"] == "gw-1"
    assert event["data"]["from"] == "sip:1001@pbx" and isinstance(event["data"]["when"], str)


async def test_emit_never_blocks_on_a_hanging_receiver() -> None:
    release = asyncio.Event()

    async def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        await release.wait()
        return 200

    hooks = Webhooks([target(timeout=0.1, max_attempts=1)], post)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(50):
        hooks.emit("ended", f"call-{n}", {"n": n})
    assert loop.time() - started < 0.5
    await hooks.close(timeout=0.2)
    await hooks.close()  # idempotent


async def test_close_gives_up_retries_waiting_for_their_backoff(caplog: pytest.LogCaptureFixture) -> None:
    attempts: list[float] = []

    async def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        attempts.append(asyncio.get_running_loop().time())
        return 503

    hooks = Webhooks([target(backoff=30.0, backoff_max=30.0)], post)
    hooks.emit("ended", "call-1", {})
    for _ in range(100):
        if attempts:
            break
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await hooks.close()
    assert loop.time() - started < 0.3 and len(attempts) == 1
    assert "1 events not delivered at shutdown" in caplog.text
    hooks.emit("ended", "call-2", {})  # after close: ignored
    assert len(hooks.queues[0]) == 1
