"""Call events out: `ringing`, `answered`, `ended` and `quality_alarm` POSTed to the configured webhooks,
signed, and retried with exponential backoff, never holding up a call.

How it works. `Webhooks.emit(event, call_id, data)` builds one JSON body per event and offers it to the
`WebhookQueue` of each receiver (gateway.yaml `webhooks`, gateway/config/admin.py) that wants it; it never
blocks and never raises. A queue is bounded: beyond `queue` events the oldest is dropped with a WARNING.
Each receiver has one asyncio worker that takes the queue's next due delivery, signs it and POSTs it
through the injected `Poster` (gateway/signaling/webhook_http.py: aiohttp lives there). A 2xx is done;
anything else (another status, a timeout, a refused connection) is tried again after
`backoff * 2**(attempt-1)` seconds, at most `backoff_max`, until `max_attempts`, then dropped with a WARNING.
The queue (`WebhookQueue`) and the signature are sans-I/O: the clock is passed in, tests drive them
without a network.

Signature (like Stripe's): header `X-Gateway-Signature: t=<unix seconds>,v1=<hex>`, where hex is
HMAC-SHA256 (RFC 2104) under the receiver's secret of `<t>.` followed by the raw body bytes; `t` is the
time of that attempt, so a receiver refuses stale replays (`verify_signature`). `X-Gateway-Event` names
the event and `X-Gateway-Delivery` its id (the same on every attempt: receivers drop duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.config.admin import WEBHOOK_EVENTS, WebhookConfig

logger = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Gateway-Signature"
EVENT_HEADER: Final = "X-Gateway-Event"
DELIVERY_HEADER: Final = "X-Gateway-Delivery"
DEFAULT_TOLERANCE: Final = 300.0  # seconds a receiver accepts a signature's timestamp

# (url, body, headers, timeout) -> HTTP status; raises on a failure to get one (timeout, refused...)
Poster = Callable[[str, bytes, Mapping[str, str], float], Awaitable[int]]


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-Gateway-Signature` value of `body` sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes, header: str, body: bytes, now: float, tolerance: float = DEFAULT_TOLERANCE
) -> bool:
    """What a receiver checks: a `v1` MAC of `body` matches, and `t` is within `tolerance` of `now`."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields.get("t", [""])[0])
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after the `attempt`-th failed attempt (1, 2, ...): base, 2 base, 4 base... <= cap."""
    return float(min(cap, base * 2.0 ** min(max(attempt - 1, 0), 32)))


@dataclass(slots=True)
class Delivery:
    """One event for one receiver: its body, and how often it was tried."""

    delivery_id: str
    event: str
    call_id: str
    body: bytes
    attempts: int = 0


@dataclass(slots=True)
class WebhookQueue:
    """The sans-I/O queue of one receiver: new deliveries in order, failed ones waiting for their retry.
    `next_due(now)` gives the delivery to send now (a due retry first), `wait(now)` how long until one
    is due (None: nothing waits), `finished(delivery, ok, now)` records an attempt's outcome."""

    target: WebhookConfig
    fresh: deque[Delivery] = field(default_factory=deque)
    retries: list[tuple[float, int, Delivery]] = field(default_factory=list)  # heap: (due, seq, delivery)
    dropped: int = 0  # for the queue's bound
    given_up: int = 0  # after max_attempts
    delivered: int = 0
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self.fresh) + len(self.retries)

    def offer(self, delivery: Delivery) -> None:
        self.fresh.append(delivery)
        while len(self) > self.target.queue:
            oldest = self._drop_oldest()
            self.dropped += 1
            logger.warning(
                "call=%s webhook %s: queue full (%d), dropped %s event %s",
                oldest.call_id,
                self.target.url,
                self.target.queue,
                oldest.event,
                oldest.delivery_id,
            )

    def _drop_oldest(self) -> Delivery:
        if self.retries:  # the retries were queued before every fresh one
            oldest = min(self.retries, key=lambda item: item[1])
            self.retries.remove(oldest)
            heapq.heapify(self.retries)
            return oldest[2]
        return self.fresh.popleft()

    def next_due(self, now: float) -> Delivery | None:
        if self.retries and self.retries[0][0] <= now:
            return heapq.heappop(self.retries)[2]
        if self.fresh:
            return self.fresh.popleft()
        return None

    def wait(self, now: float) -> float | None:
        if self.fresh:
            return 0.0
        if self.retries:
            return max(0.0, self.retries[0][0] - now)
        return None

    def finished(self, delivery: Delivery, ok: bool, now: float, why: str = "") -> None:
        delivery.attempts += 1
        if ok:
            self.delivered += 1
            return
        target = self.target
        if delivery.attempts >= target.max_attempts:
            self.given_up += 1
            logger.warning(
                "call=%s webhook %s: %s event %s given up after %d attempts (last: %s)",
                delivery.call_id,
                target.url,
                delivery.event,
                delivery.delivery_id,
                delivery.attempts,
                why,
            )
            return
        delay = backoff_delay(delivery.attempts, target.backoff, target.backoff_max)
        logger.info(
            "call=%s webhook %s: %s event attempt %d failed (%s), again in %.2f s",
            delivery.call_id,
            target.url,
            delivery.event,
            delivery.attempts,
            why,
            delay,
        )
        heapq.heappush(self.retries, (now + delay, next(self._seq), delivery))


class _Worker:
    """The asyncio side of one receiver's queue: wakes when an event comes or a retry is due."""

    def __init__(self, queue: WebhookQueue, post: Poster, clock: Callable[[], float]) -> None:
        self.queue = queue
        self._post = post
        self._clock = clock
        self._wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.busy = False

    def offer(self, delivery: Delivery) -> None:
        self.queue.offer(delivery)
        self._wake.set()
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name="webhook")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delivery = self.queue.next_due(loop.time())
            if delivery is None:
                wait = self.queue.wait(loop.time())
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            self.busy = True
            ok, why = await self._send(delivery)
            self.busy = False
            self.queue.finished(delivery, ok, loop.time(), why)

    async def _send(self, delivery: Delivery) -> tuple[bool, str]:
        target = self.queue.target
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(target.secret.reveal().encode(), int(self._clock()), delivery.body),
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.delivery_id,
        }
        try:
            status = await asyncio.wait_for(
                self._post(target.url, delivery.body, headers, target.timeout), target.timeout + 0.5
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the receiver: timeout, refused, HTTP client error
            return False, str(exc) or type(exc).__name__
        return 200 <= status < 300, f"HTTP {status}"

    def idle(self) -> bool:
        """Nothing out and nothing new to send (retries waiting for their time do not count)."""
        return not self.busy and not self.queue.fresh


class Webhooks:
    """The configured receivers, fed by `emit`; `close()` waits briefly for deliveries out, then stops."""

    def __init__(
        self,
        targets: Iterable[WebhookConfig],
        post: Poster | None,
        *,
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self.instance = instance  # the cluster instance id, in every body (None alone)
        self._workers = [_Worker(WebhookQueue(t), post, clock) for t in targets] if post else []
        self._closed = False

    @property
    def enabled(self) -> bool:
        return bool(self._workers)

    @property
    def queues(self) -> list[WebhookQueue]:
        return [worker.queue for worker in self._workers]

    def emit(self, event: str, call_id: str, data: Mapping[str, object]) -> None:
        """Queue `event` (one of ringing, answered, ended, quality_alarm) of `call_id` with `data` (any
        JSON-able mapping; other values become strings) for every receiver that wants it. Call it on the
        event loop; it returns at once and never raises (a wrong event name is logged)."""
        if event not in WEBHOOK_EVENTS:
            logger.error("call=%s webhook event %r unknown (not emitted)", call_id, event)
            return
        wanted = [w for w in self._workers if event in w.queue.target.events]
        if self._closed or not wanted:
            return
        delivery_id = uuid.uuid4().hex
        try:
            body = json.dumps(
                {
                    "id": delivery_id,
                    "event": event,
                    "call_id": call_id,
                    "time": round(self._clock(), 3),
                    "instance": self.instance,
                    "data": dict(data),
                },
                separators=(",", ":"),
                default=str,
            ).encode()
        except (TypeError, ValueError) as exc:
            logger.error("call=%s webhook %s event not encodable: %s", call_id, event, exc)
            return
        try:
            for worker in wanted:
                worker.offer(Delivery(delivery_id, event, call_id, body))
        except RuntimeError:  # no running event loop: a caller outside the gateway's loop
            logger.error("call=%s webhook %s event emitted outside the event loop", call_id, event)

    async def close(self, timeout: float = 0.5) -> None:
        """Idempotent: no more events; those out or queued get up to `timeout` s (shutdown waits for
        nothing longer: a retry waiting for its backoff is given up), then the workers stop."""
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not all(w.idle() for w in self._workers):
            await asyncio.sleep(0.05)
        tasks = [w.task for w in self._workers if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in self._workers:
            worker.task = None
            left = len(worker.queue)
            if left:
                logger.warning(
                    "webhook %s: %d events not delivered at shutdown", worker.queue.target.url, left
                )
