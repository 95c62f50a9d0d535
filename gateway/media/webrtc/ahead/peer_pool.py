"""The web legs' peer connections, made before the calls that take them (issue 64 item 2).

A web leg's RTCPeerConnection and its audio transceiver (aiortc's ICE gatherer and agent with their
credentials drawn, the DTLS transport on the process's certificate, the RTP sender and receiver: ~0.4 ms
of Python) were made on the request's path, between the browser's offer and our answer. Nothing in them
depends on the call until a description is applied: ``PeerPool`` makes them ahead.

* ``take(ice_servers, certificate)`` gives a pair made with those ICE servers and that certificate, else
  one made there and then (``make``, as without a pool). A pair made for other ones (the config was
  reloaded, the certificate renewed) is never given out: it is dropped.
* ``REFILL_DELAY`` seconds after a take (the answer has gone by then) the pool makes pairs again, with
  the last take's servers and certificate, up to ``size``; none is made before the first call.
* A pair waiting in the pool holds no socket and runs no task (aiortc opens the ICE sockets when the
  leg gathers, and starts its tasks on connect); ``close()`` closes those waiting, and the pool then
  makes no more.

The pool owns no task, only a timer handle on the running loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCCertificate

from gateway.media.webrtc import aiortc_hooks

logger = logging.getLogger(__name__)

SIZE = 4  # pairs made ahead (the next calls' at up to SIZE / REFILL_DELAY calls per second)
REFILL_DELAY = 0.05  # seconds after a take before the pool makes pairs again (the answer has gone)


def make(
    ice_servers: Sequence[RTCIceServer], certificate: RTCCertificate | None
) -> tuple[RTCPeerConnection, RTCRtpTransceiver]:
    """A web leg's peer connection, built with ``ice_servers`` (even none: aiortc's default is a public STUN
    server) and ``certificate`` (None: aiortc makes one), and its sendrecv audio transceiver."""
    pc = aiortc_hooks.peer_connection(RTCConfiguration(iceServers=list(ice_servers)), certificate)
    return pc, pc.addTransceiver("audio", direction="sendrecv")


@dataclass(frozen=True, slots=True)
class _Made:
    ice_servers: tuple[RTCIceServer, ...]
    certificate: RTCCertificate | None
    pc: RTCPeerConnection
    transceiver: RTCRtpTransceiver

    def fits(self, ice_servers: Sequence[RTCIceServer], certificate: RTCCertificate | None) -> bool:
        return self.certificate is certificate and self.ice_servers == tuple(ice_servers)


class PeerPool:
    """Web legs' peer connections made ahead of their calls (module note)."""

    def __init__(self, size: int = SIZE) -> None:
        if size < 0:
            raise ValueError(f"a pool holds 0 or more peer connections, not {size!r}")
        self._size = size
        self._idle: deque[_Made] = deque()
        self._wanted: tuple[tuple[RTCIceServer, ...], RTCCertificate | None] | None = None
        self._refill: asyncio.TimerHandle | None = None
        self._closed = False
        self.taken = 0  # pairs calls took from the pool
        self.missed = 0  # pairs calls had to make themselves

    @property
    def idle(self) -> int:
        return len(self._idle)

    def take(
        self, ice_servers: Sequence[RTCIceServer], certificate: RTCCertificate | None
    ) -> tuple[RTCPeerConnection, RTCRtpTransceiver]:
        """A pair made with ``ice_servers`` and ``certificate``: one made ahead, else one made now."""
        found = None
        while self._idle and found is None:
            made = self._idle.popleft()
            if made.fits(ice_servers, certificate):
                found = made
            # (else: made for servers or a certificate no longer in use; it holds no socket nor task)
        if not self._closed:
            self._wanted = (tuple(ice_servers), certificate)
            self._soon()
        if found is not None:
            self.taken += 1
            return found.pc, found.transceiver
        self.missed += 1
        return make(ice_servers, certificate)

    def top_up(self) -> int:
        """Make pairs up to the pool's size with the last take's servers and certificate; how many."""
        wanted = self._wanted
        if wanted is None or self._closed:
            return 0
        ice_servers, certificate = wanted
        count = 0
        while len(self._idle) < self._size:
            pc, transceiver = make(ice_servers, certificate)
            self._idle.append(_Made(ice_servers, certificate, pc, transceiver))
            count += 1
        return count

    def _soon(self) -> None:
        if self._refill is None:
            self._refill = asyncio.get_running_loop().call_later(REFILL_DELAY, self._refilled)

    def _refilled(self) -> None:
        self._refill = None
        try:
            self.top_up()
        except Exception:  # a pair that cannot be made now is made by its call (and fails there)
            logger.exception("peer connections could not be made ahead")

    async def close(self) -> None:
        """Close the pairs waiting; none is made after. Idempotent."""
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        idle, self._idle = list(self._idle), deque()
        for made in idle:
            await aiortc_hooks.close_throwaway(made.pc)
