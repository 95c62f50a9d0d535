"""How late the datagram being handled is: seconds between its arrival at the socket and now, 0 outside a
fast-lane drain.

The fast lane's engine (``gateway.media.fastlane``) queues the RTCP and STUN it leaves to Python for up to
its NOTIFY_DELAY (10 ms) so that one wake-up carries many calls' reports; ``Engine.drain`` sets ``late``
for each datagram it hands over (from one ``time.monotonic()`` read per drain: a little short for the last
ones of a long drain, never long) and resets it to 0 after. What takes a report's arrival time reads it:
RFC 3550 §6.4.1's round-trip time A - LSR - DLSR, where A is the report's ARRIVAL, and the arrival of a
sender report that our own DLSR counts from.

Nothing else needs it: RTP and DTLS wake Python at once (and what the engine forwards it accounts with
its own arrivals, jitter included, RFC 3550 A.8); ICE consent (RFC 7675) allows 30 s, 10 ms is nothing.
Datagrams asyncio hands over itself are handled as they come: ``late`` is 0 then.
"""

from __future__ import annotations

__all__ = ["late"]

late: float = 0.0  # seconds; set and reset by the fast lane's Engine.drain only
