"""Video added or dropped mid-call on a SIP-over-WebSocket session (escalation, issue 19).

A browser SIP library (JsSIP, SIP.js) renegotiates by re-INVITE, so both directions of the JSON protocol's
escalation (gateway/calls/connected/escalation.py) map onto SIP in the library's dialog:

- The library's re-INVITE whose offer adds video (an m=video with a port) to a call without it, or turns
  the video in use down (port 0, RFC 3264 §8.2), or restarts ICE (a new ice-ufrag) on a pass-through call
  (its ICE is the far end's, issue 34), is the JSON protocol's `offer {call_id, sdp}`: the call
  core re-INVITEs the SIP side first; the `answer` event it sends once the SIP side's 2xx came is our 200
  to the library, its `error renegotiation_failed` our refusal with the SIP side's status (488 when it had
  none), the session as it was (RFC 3261 §14.2). A re-offer the call core cannot take now (another
  renegotiation under way) gets 491 (§14.2), one for a call it no longer has 481. Any other re-INVITE
  (hold, resume, a session refresh) is answered by the session at once, as before.
- The SIP side's re-INVITE that adds or drops video comes as the gateway's mid-call `offer` event: it
  goes to the library as our re-INVITE (the library answers it: JsSIP and SIP.js apply a new offer on the
  same RTCPeerConnection), and the library's 2xx answer is the `answer {call_id, sdp}` that makes the SIP
  side's 200. A refusal (or no answer) leaves the call core's WEB_REOFFER timer to refuse the SIP side
  (488) and put the web leg back.

Whether the session has live video is taken from the answer of each completed exchange.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.signaling import events as sig
from gateway.signaling.errors import Conflict, NotFound, SignalingError
from gateway.signaling.service import CallService, PassthroughQuery, ReofferService, SessionSink
from gateway.sip.useragent.ua_calls import Call
from gateway.sip.useragent.ua_events import with_settled_setup
from sipcore.errors import SIPError

__all__ = ["MidcallVideo", "live_video"]

logger = logging.getLogger(__name__)

RENEGOTIATION_FAILED = "renegotiation_failed"
_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)
Spawn = Callable[[Coroutine[Any, Any, None]], None]


def _ufrag(sdp_text: str) -> str | None:
    """The first a=ice-ufrag of a description (session or media level), None without one."""
    found = _UFRAG.search(sdp_text)
    return found[1] if found else None


def live_video(sdp_text: str) -> bool:
    """The description has a video m-line that is not rejected (port other than 0)."""
    for line in sdp_text.splitlines():
        if line.startswith("m=video "):
            fields = line.split()
            if len(fields) > 1 and fields[1] != "0":
                return True
    return False


class MidcallVideo:
    """One session's video renegotiations, both ways. ``answers`` is the session's own map of the SDP it
    answers hold/resume re-INVITEs with (updated here once a renegotiation changed the media)."""

    def __init__(
        self, session: SessionSink, calls: CallService, spawn: Spawn, answers: dict[str, str]
    ) -> None:
        self._session = session
        self._calls = calls
        self._spawn = spawn
        self._answers = answers
        self._live: dict[str, bool] = {}  # call id -> the session's video is live
        self._ufrags: dict[str, str | None] = {}  # call id -> the library's ICE ufrag in its last description
        self._offered: dict[str, str | None] = {}  # ...in its re-offer at the SIP side (kept once answered)
        self._waiting: dict[str, Call] = {}  # the library's re-INVITE awaiting the SIP side's answer
        self._offering: set[str] = set()  # our re-INVITE to the library is under way

    def settled(self, call_id: str, answer: str) -> None:
        """An offer/answer exchange with the library completed with ``answer``."""
        self._live[call_id] = live_video(answer)

    def library_said(self, call_id: str, description: str) -> None:
        """The library's own description of the call (its offer or its answer): its ICE ufrag, by which
        a later re-offer is told to restart ICE."""
        self._ufrags[call_id] = _ufrag(description)

    def restarts(self, call_id: str, offer: str) -> bool:
        """The library's re-offer restarts ICE: an ice-ufrag other than its last description's."""
        before = self._ufrags.get(call_id)
        return before is not None and _ufrag(offer) != before

    def changes(self, call_id: str, offer: str) -> bool:
        """The library's re-offer goes to the SIP side first: it adds video or drops it, or it restarts
        ICE on a pass-through call (else: hold, resume, a refresh, answered by the session)."""
        video = call_id in self._live and live_video(offer) != self._live[call_id]
        before = self._ufrags.get(call_id)
        calls = self._calls
        restart = before is not None and _ufrag(offer) != before
        return video or (restart and isinstance(calls, PassthroughQuery) and calls.passthrough(call_id))

    def forget(self, call_id: str) -> None:
        self._live.pop(call_id, None)
        self._ufrags.pop(call_id, None)
        self._offered.pop(call_id, None)
        self._waiting.pop(call_id, None)
        self._offering.discard(call_id)

    # --- the library's re-INVITE -> the SIP side ------------------------------------------------------
    async def from_library(self, call_id: str, leg: Call, offer: str) -> None:
        """The library's re-INVITE ``offer`` changes the video: the call core re-offers the SIP side."""
        calls = self._calls
        if not isinstance(calls, ReofferService):
            leg.reject_reinvite(488, "Video Changes Not Supported")
            return
        if call_id in self._waiting or call_id in self._offering:
            leg.reject_reinvite(491, "Request Pending")  # RFC 3261 §14.2
            return
        self._waiting[call_id] = leg
        self._offered[call_id] = _ufrag(offer)
        try:
            await calls.reoffer(self._session, call_id, offer)
        except SignalingError as exc:
            self._waiting.pop(call_id, None)
            self._offered.pop(call_id, None)
            status = 491 if isinstance(exc, Conflict) else 481 if isinstance(exc, NotFound) else 488
            logger.info("call=%s the library's video re-offer refused %d: %s", call_id, status, exc)
            _quietly_reject(leg, status)
            return
        logger.info("call=%s the library's re-INVITE changes the media: the SIP side is asked", call_id)

    # --- call events ---------------------------------------------------------------------------------
    def event(self, call_id: str, event: sig.ServerMessage, leg: Call | None) -> bool:
        """A call event about a renegotiation (taken: True), ``leg`` the call's answered dialog if any."""
        match event:
            case sig.Answer(sdp=answer) if call_id in self._waiting:
                waiting = self._waiting.pop(call_id)
                try:
                    waiting.answer_reinvite(answer)
                except SIPError as exc:
                    logger.info("call=%s the library's re-INVITE cannot be answered: %s", call_id, exc)
                    return True
                self._answers[call_id] = answer
                self.settled(call_id, answer)
                if call_id in self._offered:  # the library's new credentials are the session's now
                    self._ufrags[call_id] = self._offered.pop(call_id)
                return True
            case sig.ErrorMessage(code=code, sip_status=status) if (
                code == RENEGOTIATION_FAILED and call_id in self._waiting
            ):
                refusal = status if status is not None and 300 <= status < 700 else 488
                self._offered.pop(call_id, None)  # the library rolls its offer back (RFC 3261 §14.1)
                _quietly_reject(self._waiting.pop(call_id), refusal)
                return True
            case sig.Offer(sdp=offer) if leg is not None:
                self._offering.add(call_id)
                self._spawn(self._offer(call_id, leg, offer))
                return True
        return False

    # --- the SIP side's re-INVITE -> the library ------------------------------------------------------
    async def _offer(self, call_id: str, leg: Call, offer: str) -> None:
        """The gateway's new offer (the SIP side added or dropped video) as our re-INVITE to the library;
        its 2xx answer goes to the call core."""
        try:
            try:
                result = await leg.reinvite(offer)
            except (SIPError, OSError) as exc:
                logger.info("call=%s cannot re-INVITE the library: %s", call_id, exc)
                return
            if not result.ok or not result.sdp:
                logger.info("call=%s the library refused the new media: %d", call_id, result.status)
                return  # the call core's WEB_REOFFER timer refuses the SIP side
            self._answers[call_id] = with_settled_setup(offer, result.sdp)
            self.settled(call_id, result.sdp)
        finally:
            self._offering.discard(call_id)
        try:
            await self._calls.answer(self._session, call_id, result.sdp)
        except SignalingError as exc:
            logger.info("call=%s the library's answer came too late: %s", call_id, exc)


def _quietly_reject(leg: Call, status: int) -> None:
    try:
        leg.reject_reinvite(status)
    except (SIPError, ValueError) as exc:
        logger.info("call %s: the re-INVITE cannot be refused: %s", leg.call_id, exc)
