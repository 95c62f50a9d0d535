"""The SIP party's hold and resume, relayed to a browser SIP library over WebSocket (issue 33).

When the SIP party (a desk phone, a PBX) holds the call by re-INVITE (sendonly or inactive, RFC 3264
§8.4), the call core tells the session `held` by remote with that direction; `resumed` by remote when it
offers sendrecv again. A SIP library only learns it from SDP, so the session re-INVITEs it in the
call's dialog with the SDP it last gave the library, its direction set to the SIP party's (the library
answers recvonly or inactive and shows the call held by remote: JsSIP's `hold` with originator remote),
then sendrecv on resume.

One relay task per call sends what is wanted until the library's dialog says it: a hold and a resume
that come while a re-INVITE is out are sent one after the other, never crossed; a 491 from the library
(or a re-INVITE of its own under way) waits and tries again (RFC 3261 §14.1). A refusal leaves the
call as it is (the audio is held by the call core either way). The session answers the library's own
hold/resume re-INVITEs with :meth:`RemoteHold.answer_direction`, which keeps the SIP party's hold in
the answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.signaling import events as sig
from gateway.sip.useragent.ua_calls import Call, CallError
from gateway.sip.useragent.ua_events import set_direction
from sipcore.errors import SIPError

__all__ = ["RemoteHold"]

logger = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], None]
MAX_TRIES = 5
# what we send and receive, per direction of our SDP to the library
_FLAGS = {
    "sendrecv": (True, True),
    "sendonly": (True, False),
    "recvonly": (False, True),
    "inactive": (False, False),
}
_BY_FLAGS = {flags: direction for direction, flags in _FLAGS.items()}


class RemoteHold:
    """One session's relay of the SIP party's hold to the library. ``answers`` is the session's map of
    the SDP it last gave the library per call (updated here once the library took a re-INVITE)."""

    def __init__(self, spawn: Spawn, answers: dict[str, str], *, retry_wait: float = 2.0) -> None:
        self._spawn = spawn
        self._answers = answers
        self._retry_wait = retry_wait
        self._wanted: dict[str, str] = {}  # call id -> the direction the library should have from us
        self._sent: dict[str, str] = {}  # call id -> the direction our last SDP to it said
        self._running: set[str] = set()

    def event(self, call_id: str, event: sig.Event, leg: Call | None) -> bool:
        """A hold or resume by the SIP party (taken: True); ``leg`` the call's answered dialog, if any."""
        wanted: str
        match event:
            case sig.Held(by="remote", direction=direction):
                wanted = direction
            case sig.Resumed(by="remote"):
                wanted = "sendrecv"
            case _:
                return False
        if leg is None:  # not answered yet (a hold of early media): the library's answer is not ours
            return True
        self._wanted[call_id] = wanted
        if call_id not in self._running:
            self._running.add(call_id)
            self._spawn(self._relay(call_id, leg))
        return True

    def answer_direction(self, call_id: str, mirrored: str) -> str:
        """Our answer's direction to the library's re-offer: ``mirrored`` (theirs reversed), but while
        the SIP party holds we neither receive (sendonly) nor send (inactive) more than it lets us."""
        held = self._wanted.get(call_id, "sendrecv")
        sends, receives = _FLAGS.get(mirrored, (True, True))
        may_send, may_receive = _FLAGS[held]
        return _BY_FLAGS[(sends and may_send, receives and may_receive)]

    def taken_over(self, call_id: str, direction: str) -> None:
        """A call taken over from a dead instance (takeover.py), whose last SDP to the library said
        ``direction``: the SIP party's hold as it was there, so that its resume is relayed here."""
        if direction in _FLAGS and direction != "sendrecv":
            self._wanted[call_id] = self._sent[call_id] = direction

    def forget(self, call_id: str) -> None:
        self._wanted.pop(call_id, None)
        self._sent.pop(call_id, None)

    async def _relay(self, call_id: str, leg: Call) -> None:
        try:
            tries = 0
            while tries < MAX_TRIES:
                wanted = self._wanted.get(call_id)
                ours = self._answers.get(call_id)
                if wanted is None or ours is None or wanted == self._sent.get(call_id, "sendrecv"):
                    return
                offer = set_direction(ours, wanted)
                try:
                    result = await leg.reinvite(offer)
                except CallError:  # a re-INVITE of the library's (or ours for video) is under way
                    status = 491
                except (SIPError, OSError) as exc:  # the dialog ended, the flow went
                    logger.info("call=%s cannot re-INVITE the library for the hold: %s", call_id, exc)
                    return
                else:
                    status = result.status
                if 200 <= status < 300:
                    self._answers[call_id] = offer
                    self._sent[call_id] = wanted
                    logger.info("call=%s the SIP party's %s relayed to the library", call_id, wanted)
                    tries = 0
                    continue
                if status != 491:
                    logger.info("call=%s the library refused the %s re-INVITE: %d", call_id, wanted, status)
                    return
                tries += 1
                await asyncio.sleep(self._retry_wait * random.random())  # RFC 3261 §14.1
        finally:
            self._running.discard(call_id)
