"""A JSON-RPC peer's new offer for one of its calls, `offer {call_id, sdp}` (issue 34): its media again.

- The same RTCPeerConnection with new ICE credentials (`restartIce()` after a network change): ICE
  restarts in place on the web leg, the DTLS association and the call go on (`WebIceRestartService`).
- A new RTCPeerConnection (a new DTLS fingerprint: a browser whose old one died with its network, an
  aiortc client, which cannot restart ICE), or any offer once the call's web media was given up: a new
  web leg on the same SIP leg (`ReattachService`, as `/ws`'s `reattach`); its answer comes back as the
  `Reattached` event, which the peer hands to `answered`.

- A pass-through call's new offer (its ICE and DTLS are the far end's): it goes to the far end as it is in
  a re-INVITE (`ReofferService`), and the far end's answer, which comes back as the `Answer` event, is the
  result; its refusal (`error {code: renegotiation_failed}`) is -32004 with that reason. A call that
  waits for new web media (`WebRenewalService.web_media_lost`: one taken over whose media was lost already) is taken back
  instead (`ReattachService`, relayed to the far end the same way; its answer is `Reattached`): a mere
  re-offer would be answered but leave the call waiting, and its grace would end it.

Either way the result is the answer; on a call whose media is the gateway's, an offer that changes
nothing (the same ice-ufrag and fingerprint) is refused, -32602 naming `sdp`. The peer's calls wait for such an
offer when their media is lost (`RenewingSink`: `web_auth.reconnect_grace`), as an HTTP session's do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final

from gateway.signaling import events as sig
from gateway.signaling.errors import BadRequest, Conflict, SignalingError
from gateway.signaling.service import (
    CallService,
    PassthroughQuery,
    ReattachService,
    ReofferService,
    SessionSink,
    WebIceRestartService,
    WebRenewalService,
)

__all__ = ["RENEW_TIMEOUT", "Renewals"]

RENEW_TIMEOUT: Final = 15.0  # seconds a new web leg may take to answer
RELAY_TIMEOUT: Final = 34.0  # a pass-through call's far end: our re-INVITE's Timer B (64 T1) and a margin


class Renewals:
    """The peer's offers for its calls waiting for a new web leg's answer, by call id (a SIP library's
    re-INVITEs renewing a call taken over wait the same way: gateway/websip/takeover.py)."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[str]] = {}

    def answered(self, call_id: str, sdp: str) -> bool:
        """The new web leg's answer (the call core's `Reattached`), or the far end's to a pass-through
        call's offer (`Answer`); whether an offer waited for it."""
        future = self._waiting.get(call_id)
        if future is None or future.done():
            return False
        future.set_result(sdp)
        return True

    def waiting(self, call_id: str) -> bool:
        return call_id in self._waiting

    def heard(self, event: sig.Event) -> None:
        """A call event for the peer: the answer an offer waits for, its refusal, or the call's end."""
        match event:
            case sig.Reattached(call_id=call_id, sdp=str(sdp)) | sig.Answer(call_id=call_id, sdp=sdp):
                self.answered(call_id, sdp)
            case sig.ErrorMessage(call_id=str(call_id), code="renegotiation_failed", message=message):
                self.refused(call_id, "renegotiation_failed", message)
            case sig.Ended(call_id=call_id, reason=reason, message=message):
                self.refused(call_id, reason, message or "the call ended")

    def refused(self, call_id: str, code: str, message: str) -> None:
        """The far end refused a pass-through call's new offer (`error` with the call's id)."""
        future = self._waiting.get(call_id)
        if future is not None and not future.done():
            future.set_exception(Conflict(message, field="sdp", code=code))

    async def offer(self, calls: CallService, session: SessionSink, call_id: str, sdp: str) -> str:
        """The gateway's answer to the peer's new offer for ``call_id`` (see the module note)."""
        if isinstance(calls, PassthroughQuery) and calls.passthrough(call_id):
            if (
                isinstance(calls, ReattachService)
                and isinstance(calls, WebRenewalService)
                and calls.web_media_lost(session, call_id)
            ):
                return await self.wait(call_id, calls.reattach(session, call_id, sdp), RELAY_TIMEOUT)
            if not isinstance(calls, ReofferService):
                raise BadRequest("a pass-through call's offer cannot go to the far end here", field="sdp")
            return await self.wait(call_id, calls.reoffer(session, call_id, sdp), RELAY_TIMEOUT)
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
        return await self.wait(call_id, calls.reattach(session, call_id, sdp))

    async def wait(
        self, call_id: str, request: Coroutine[Any, Any, None], timeout: float = RENEW_TIMEOUT
    ) -> str:
        """Make ``request`` and wait for the answer it brings about (`answered`, or `refused`); one offer
        per call at a time (a second is `Conflict`: the first's answer is not its)."""
        if call_id in self._waiting:
            request.close()
            raise Conflict(
                "a new offer for the call is under way: offer again once it is answered", field="sdp"
            )
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        try:
            await request
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise Conflict("the call's media could not be renewed in time", field="sdp") from None
        finally:
            self._waiting.pop(call_id, None)
