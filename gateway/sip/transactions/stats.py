"""What the transaction layer counts for metrics, and its rate-limited warnings about refused sources.

Plain integers in dicts, bumped once per message (no label lookup on a metrics library on the hot path):
the Prometheus collector (gateway/ops/metrics.py) reads them when scraped.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator

from sipcore.syntax.message import Message, Request

_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx", 6: "6xx"}


def message_label(message: Message) -> tuple[str, str]:
    """(method, status) of a message: a request's method and "", or a response's CSeq method and status."""
    if isinstance(message, Request):
        return message.method, ""
    return message.cseq.method if message.cseq is not None else "", str(message.status)


def first_line_label(data: bytes) -> tuple[str, str]:
    """(method, status) from the start line of serialized bytes (a response's method from its CSeq, ""
    without one), without parsing the rest."""
    line = data[:64].split(b" ", 2)
    if len(line) >= 2 and line[0] == b"SIP/2.0":
        return _cseq_method(data), line[1].decode("ascii", "replace")[:3]
    return (line[0].decode("ascii", "replace")[:16] if line and line[0] else "?"), ""


def _cseq_method(data: bytes) -> str:
    """The method of the CSeq header of serialized bytes (the gateway writes it as "CSeq: 1 INVITE")."""
    start = data.find(b"\nCSeq:")
    if start < 0:
        return ""
    end = data.find(b"\n", start + 6)
    fields = data[start + 6 : end if end >= 0 else start + 64].split()
    return fields[1].decode("ascii", "replace")[:16] if len(fields) >= 2 else ""


_RETRANSMISSION: contextvars.ContextVar[str | None] = contextvars.ContextVar("sip_resend", default=None)


@contextlib.contextmanager
def retransmission(kind: str) -> Iterator[None]:
    """What the block (and the tasks it awaits) sends is a retransmission of `kind`, counted as such:
    ``request`` (timers A and E, RFC 3261 §17.1), ``response`` (timer G, §17.2.1, and the last response
    resent to a retransmitted request, §17.2), ``2xx`` (a 2xx to INVITE resent until its ACK, §13.3.1.4),
    ``ack`` (an ACK resent to a retransmitted final response, §17.1.1.2, §13.2.2.4)."""
    token = _RETRANSMISSION.set(kind)
    try:
        yield
    finally:
        _RETRANSMISSION.reset(token)


def retransmitting() -> str | None:
    """The kind of retransmission being sent now (None: a first transmission)."""
    return _RETRANSMISSION.get()


class SipStats:
    """Messages in and out by (method, status, transport), retransmissions by (kind, transport), parse
    errors and policy refusals by source class (trusted, untrusted)."""

    def __init__(self) -> None:
        self.received: Counter[tuple[str, str, str]] = Counter()
        self.sent: Counter[tuple[str, str, str]] = Counter()
        self.retransmissions: Counter[tuple[str, str]] = Counter()  # (kind, transport): retransmission()
        self.parse_errors: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()


class SourceWarnings:
    """One WARNING per source per `window` seconds for something a peer can repeat at will (requests
    refused by the policy): the first is logged at once, the next line says how many came meanwhile."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 4096,
    ) -> None:
        self._logger, self._what, self.window, self._clock = logger, what, window, clock
        self._max = max_sources
        self._sources: dict[str, tuple[float, int]] = {}  # source -> (window start, count since)

    def seen(self, source: str, detail: str) -> None:
        now = self._clock()
        start, count = self._sources.get(source, (None, 0))
        if start is not None and now - start < self.window:
            self._sources[source] = (start, count + 1)
            return
        if len(self._sources) >= self._max:  # a flood from many sources: forget the oldest windows
            for key in [k for k, (t, _) in self._sources.items() if now - t >= self.window] or [
                next(iter(self._sources))
            ]:
                del self._sources[key]
        more = f" ({count} more in the last {self.window:g} s)" if count else ""
        self._logger.warning("%s from %s: %s%s", self._what, source, detail, more)
        self._sources[source] = (now, 0)
