"""ICE consent freshness of the web leg (RFC 7675) through aioice's private internals (aioice 0.13), guarded
with the other hooks by ``tests/media/webrtc/test_aiortc_hooks.py``:

* ``set_consent_expiry(seconds)``: ICE consent freshness (RFC 7675 §5.1 allows a shorter expiry than
  30 s): aioice's ``query_consent`` reads ``aioice.ice.CONSENT_INTERVAL`` and ``CONSENT_FAILURES`` at
  each check, so setting them makes every web leg of the process check each second and give up (ICE
  failed: the call ends) after about ``seconds`` without an answer, on hold as much as in speech.

* ``on_consent_expired(pc, callback)``: wraps the connection's ``query_consent`` (an endless loop that
  returns only once consent expired, just before aioice closes the connection) to call ``callback``:
  a browser gone silent, told apart from one that closed DTLS itself.
  With ``media_count`` (the browser's RTP packets received so far) the loop is ours (``_query_consent``,
  aioice's with one change): a check is skipped while that count grows and a check went out less than
  RFC 7675's 5 s ago (§5.1: every 5 s, randomized over 0.8-1.2 x). While its media arrive the browser
  is there (and the inactivity watchdog ends a call whose media stop); the 1 s cadence of
  ``set_consent_expiry`` resumes as soon as they stop (a hold, a vanished browser), so consent expires
  as quickly as before then. Sleeps are on the process's coarse timers. ``answered`` is called at each
  answer: a browser that sends nothing on purpose (hold) is there while it answers (``answer_interval``).

* ``consent_credentials(pair)``: what the fast lane's thread answers the browser's consent checks with
  while it reads the ICE socket (``_stun.c``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
import aioice.stun
from aioice import Connection
from aiortc import RTCPeerConnection

from gateway.media import coarse_timers
from gateway.media.webrtc.aiortc_hooks import ice_connection

logger = logging.getLogger("gateway.media.webrtc.aiortc_hooks")


def on_consent_expired(
    pc: RTCPeerConnection,
    callback: Callable[[], None],
    *,
    media_count: Callable[[], int] | None = None,
    answered: Callable[[], None] | None = None,
) -> None:
    """Call ``callback`` when the connection's consent expires (RFC 7675). Call after the transceiver
    exists and before the connection connects (which starts the consent checks). ``media_count``: the
    browser's RTP packets received so far; checks are fewer while it grows (module note); with it,
    ``answered`` is called at each check the browser answered."""
    connection = ice_connection(pc)
    original: Callable[[], Awaitable[None]] = connection.query_consent

    async def query_consent() -> None:
        if media_count is None:
            await original()  # returns only when consent expired (cancelled when the connection closes)
        else:
            await _query_consent(connection, media_count, answered)
        callback()

    connection.query_consent = query_consent  # type: ignore[method-assign]


CONSENT_WHILE_MEDIA = 5.0  # RFC 7675 §5.1: a consent check every 5 s (randomized 0.8-1.2 x)


async def _query_consent(
    connection: Connection, media_count: Callable[[], int], answered: Callable[[], None] | None = None
) -> None:
    """aioice's ``Connection.query_consent`` (returns once consent expired, the connection closed), with
    checks skipped while the browser's media flow and one went out within ``CONSENT_WHILE_MEDIA``, and
    ``answered()`` after each answer."""
    assert connection.remote_password is not None
    failures = 0
    due = _ConsentDue(asyncio.get_running_loop(), media_count)
    while True:
        await due.next()
        for pair in connection._nominated.values():
            request = connection.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request,
                    pair.remote_addr,
                    integrity_key=connection.remote_password.encode("utf8"),
                    retransmissions=0,
                )
                failures = 0
                if answered is not None:
                    answered()
            except aioice.stun.TransactionError:
                failures += 1
            if failures >= aioice.ice.CONSENT_FAILURES:
                logger.info("ICE consent to send expired")
                connection._query_consent_task = None
                await connection.close()
                return


class _ConsentDue:
    """When ``_query_consent``'s next check goes out. Every CONSENT_INTERVAL (randomized 1-1.2 x) a
    coarse-timer callback reads the media count; the task waiting for the check is woken only when one is
    due (the count stood still, or CONSENT_WHILE_MEDIA passed since the last): while media flow, the
    ticks in between wake no task."""

    def __init__(self, loop: asyncio.AbstractEventLoop, media_count: Callable[[], int]) -> None:
        self._loop, self._media_count = loop, media_count
        self._seen, self._last_check = media_count(), loop.time()

    def next(self) -> asyncio.Future[None]:
        """Done when the next check is due (cancelled with the waiting task: the ticks stop)."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._schedule(future)
        return future

    def _schedule(self, future: asyncio.Future[None]) -> None:
        # On whole seconds, with every call's ticks and the other periodic work: one event-loop wakeup a
        # second for all of them, where 1-1.2 s ticks on the quarter-second slots woke the loop at each
        # slot from 10 calls up. RFC 7675 §5.1's 0.8-1.2 x randomization is kept to the second: with
        # set_consent_expiry's CONSENT_INTERVAL of 1 s every tick is a second apart, and while media
        # flow the checks go 4, 5 or 6 s apart (CONSENT_WHILE_MEDIA's draw in _tick); aioice's 5 s: 4-6 s.
        interval = aioice.ice.CONSENT_INTERVAL
        delay = interval * (0.8 + 0.4 * random.random())
        grid = coarse_timers.PERIODIC_GRID
        if interval >= grid:
            delay = max(delay, grid)  # not under the grid: that would be a timer of its own
        coarse_timers.coarse_timers(self._loop).call_later(delay, self._tick, future, grid=grid)

    def _tick(self, future: asyncio.Future[None]) -> None:
        if future.done():
            return
        count = self._media_count()
        flowing, self._seen = count != self._seen, count
        now = self._loop.time()
        if flowing and now - self._last_check < CONSENT_WHILE_MEDIA * (0.8 + 0.4 * random.random()):
            self._schedule(future)
            return
        self._last_check = now
        future.set_result(None)


def consent_credentials(pair: Any) -> tuple[bytes, bytes, bool] | None:
    """What the fast lane's thread needs to answer the browser's consent checks on ``pair`` (an aioice
    ``CandidatePair``) as aioice would: the requests' USERNAME (ours:theirs), our ice-pwd, our role; None
    before the remote credentials are known."""
    connection = getattr(pair.protocol, "receiver", None)
    if not isinstance(connection, Connection) or connection.remote_username is None:
        return None
    username = f"{connection.local_username}:{connection.remote_username}"
    return username.encode(), connection.local_password.encode(), connection.ice_controlling


def answer_interval() -> float:
    """Seconds between our checks while no media arrive (``set_consent_expiry``: 1; aioice's own: 5): how
    often a browser that sends nothing on purpose still answers one."""
    return float(aioice.ice.CONSENT_INTERVAL)


# aioice sends each consent check once (no retransmission) and counts it failed after RETRY_RTO.
_CONSENT_CHECK = 1.0 + aioice.stun.RETRY_RTO


def set_consent_expiry(seconds: float) -> None:
    """Consent checks every second on every web leg of this process; ICE fails after about ``seconds``
    without an answer (at least two checks). Process-wide, as aioice keeps these in its module."""
    if seconds <= 0:
        raise ValueError(f"consent expiry must be positive, got {seconds!r}")
    aioice.ice.CONSENT_INTERVAL = 1
    aioice.ice.CONSENT_FAILURES = max(2, int(seconds // _CONSENT_CHECK))
