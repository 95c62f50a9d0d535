"""A JSON-RPC peer's new offer for one of its calls, `offer {call_id, sdp}` (issue 34): its media again.

- The same RTCPeerConnection with new ICE credentials (`restartIce()` after a network change): ICE
  restarts in place on the web leg, the DTLS association and the call go on (`WebIceRestartService`).
- A new RTCPeerConnection (a new DTLS fingerprint: a browser whose old one died with its network, an
  aiortc client, which cannot restart ICE), or any offer once the call's web media was given up: a new
  web leg on the same SIP leg (`ReattachService`, as `/ws`'s `reattach`); its answer comes back as the
  `Reattached` event, which the peer hands to `answered`.

Either way the result is the gateway's answer; an offer that changes nothing (the same ice-ufrag and
fingerprint) or a pass-through call's is refused, -32602 naming `sdp`. The peer's calls wait for such an
offer when their media is lost (`RenewingSink`: `web_auth.reconnect_grace`), as an HTTP session's do.
"""

from __future__ import annotations

import asyncio
from typing import Final

from gateway.signaling.errors import BadRequest, Conflict, SignalingError
from gateway.signaling.service import CallService, ReattachService, SessionSink, WebIceRestartService

__all__ = ["RENEW_TIMEOUT", "Renewals"]

RENEW_TIMEOUT: Final = 15.0  # seconds a new web leg may take to answer


class Renewals:
    """The peer's offers for its calls waiting for a new web leg's answer, by call id."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[str]] = {}

    def answered(self, call_id: str, sdp: str) -> None:
        """The new web leg's answer (the call core's `Reattached`)."""
        future = self._waiting.get(call_id)
        if future is not None and not future.done():
            future.set_result(sdp)

    async def offer(self, calls: CallService, session: SessionSink, call_id: str, sdp: str) -> str:
        """The gateway's answer to the peer's new offer for ``call_id`` (see the module note)."""
        refused: SignalingError | None = None
        if isinstance(calls, WebIceRestartService):
            try:
                answer = await calls.restart_web_ice(session, call_id, sdp)
            except (BadRequest, Conflict) as exc:  # a new DTLS association, or media already given up
                refused = exc
            else:
                if answer is not None:
                    return answer
        if refused is None or not isinstance(calls, ReattachService):
            raise BadRequest(
                "the offer restarts no ICE session of the gateway's (the same ice-ufrag, or a pass-through "
                "call): an offer for a call is an ICE restart or new media",
                field="sdp",
            )
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        try:
            await calls.reattach(session, call_id, sdp)
            async with asyncio.timeout(RENEW_TIMEOUT):
                return await future
        except TimeoutError:
            raise Conflict("the call's media could not be renewed in time", field="sdp") from None
        finally:
            self._waiting.pop(call_id, None)
