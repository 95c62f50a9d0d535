"""Call transfer by a browser SIP library over WebSocket: its REFER (RFC 3515), as the page's `transfer`.

JsSIP's and SIP.js's REFER in a call's dialog (``ReferReceived`` from the UA, which checked its one
sip/sips Refer-To) is the JSON protocol's `transfer {call_id, to | replaces}` (gateway/calls/connected/
transfer.py): blind to the Refer-To's user part, under the user's outbound policy; attended when the
Refer-To carries Replaces (RFC 3891) naming the library's other call through the gateway (its SIP
dialog's Call-ID), whose far end is then the target. The REFER is answered 202 once the call core took
the request (a call it no longer has, or a Replaces naming no call of the session's: 481 / 403), and
NOTIFY 100 Trying starts the implicit subscription (§2.4.4). The call core's `transfer` events are the
NOTIFYs' sipfrag (§2.4.5): progress its 1xx, succeeded 200 (the call then ends `transferred`: our BYE
follows the NOTIFY), failed the far end's status (503 when it gave none), each final one ending the
subscription. The NOTIFYs of a call go out one after the other.

The other way (RFC 3515 §2.4.4 as the page does with `transfer_requested`): when the SIP party REFERs a
library's call and the call core has accepted it (202, NOTIFY 100 to the phone), its `transfer_requested`
becomes our REFER in the library's dialog with that Refer-To. The library places the call as a new
INVITE over its flow; the session's INVITE to that target within ``REFERRED_WINDOW`` seconds is dialled
with ``transfer_of`` (:meth:`LibraryTransfers.referred`), so the call core NOTIFYs the phone how it goes
(180, 200 or its failure), as for the page. The library's own NOTIFYs about it are answered 200 (the UA)
and only logged: what they say is what that call's events already told the phone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote

from gateway.signaling import events as sig
from gateway.signaling.errors import NotFound, SignalingError
from gateway.signaling.service import CallService, SessionSink
from gateway.sip.useragent.ua_calls import Call
from sipcore.dialogs.refer import Replaces
from sipcore.errors import SIPError
from sipcore.syntax.headers import NameAddr
from sipcore.syntax.uri import SipURI, parse_uri

__all__ = ["LibraryTransfers"]

logger = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], None]
CallOfDialog = Callable[[str], str | None]  # a SIP Call-ID of the session's -> the call core's call id
REFERRED_WINDOW = 32.0  # seconds: the library's INVITE for our REFER (the call core's refer_timeout is 30)
_PHRASES = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 503: "Service Unavailable"}


class LibraryTransfers:
    """One session's transfers asked by its library (see the module note)."""

    def __init__(self, session: SessionSink, calls: CallService, spawn: Spawn, call_of: CallOfDialog) -> None:
        self._session = session
        self._calls = calls
        self._spawn = spawn
        self._call_of = call_of
        self._reporting: dict[str, Call] = {}  # call id -> the library's dialog whose REFER we NOTIFY
        self._last: dict[str, asyncio.Future[None]] = {}  # call id -> its last NOTIFY sent: the next waits
        self._referred: dict[str, tuple[str, float]] = {}  # our REFER's target user -> (call id, when)

    async def refer(self, call_id: str, leg: Call, target: str, replaces: str) -> None:
        """The library's REFER in the dialog of ``call_id``: to the call core, 202 and NOTIFY 100."""
        consult: str | None = None
        to: str | None = None
        try:
            if replaces:
                try:
                    named = Replaces.parse(unquote(replaces))
                except SIPError as exc:
                    leg.transfer.answer(400, exc.reason_phrase)
                    return
                consult = self._call_of(named.call_id)
                if consult is None or consult == call_id:
                    leg.transfer.answer(403, "Replaces Names No Other Call")
                    return
            else:
                uri = parse_uri(target)
                to = uri.user if isinstance(uri, SipURI) and uri.user else target
            try:
                await self._calls.transfer(self._session, call_id, to, consult)
            except SignalingError as exc:
                logger.info("call=%s the library's REFER refused: %s", call_id, exc)
                leg.transfer.answer(481 if isinstance(exc, NotFound) else 403, None)
                return
            leg.transfer.answer(202)
        except (SIPError, ValueError) as exc:  # the REFER went meanwhile (the dialog ended)
            logger.info("call=%s the library's REFER cannot be answered: %s", call_id, exc)
            return
        logger.info("call=%s the library transfers to %s", call_id, consult or to)
        self._reporting[call_id] = leg
        self._notify(call_id, 100)

    def event(self, call_id: str, event: sig.Event, leg: Call | None) -> bool:
        """A `transfer` event of a REFER the library sent (taken: True): a NOTIFY to it; a
        `transfer_requested` (the SIP party's REFER): our REFER to the library in ``leg``."""
        if isinstance(event, sig.TransferRequested):
            if leg is not None:
                self._spawn(self._refer_library(call_id, leg, event.to))
            return True
        if not isinstance(event, sig.Transfer) or call_id not in self._reporting:
            return False
        status = event.sip_status
        match event.state:
            case "progress" if status is not None and 100 < status < 200:
                self._notify(call_id, status)
            case "succeeded":
                self._notify(call_id, 200)
            case "failed":
                self._notify(call_id, status if status is not None and status >= 300 else 503)
        return True

    def _notify(self, call_id: str, status: int) -> None:
        leg = self._reporting.get(call_id)
        if leg is None:
            return
        if status >= 200:
            del self._reporting[call_id]  # the final NOTIFY: the subscription ends
        phrase = _PHRASES.get(status, "Transfer Failed")
        before = self._last.get(call_id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last[call_id] = done

        async def send() -> None:
            try:
                if before is not None:
                    await before
                await leg.transfer.notify(status, phrase)
            finally:
                done.set_result(None)
                if self._last.get(call_id) is done:  # the last one: nothing left to wait for
                    del self._last[call_id]

        self._spawn(send())

    async def settled(self, call_id: str) -> None:
        """Wait until the NOTIFYs already asked for ``call_id`` went (our BYE must not overtake them)."""
        last = self._last.pop(call_id, None)
        self._reporting.pop(call_id, None)
        if last is not None:
            await asyncio.shield(last)

    # --- the SIP party's REFER, passed on to the library ----------------------------------------------
    async def _refer_library(self, call_id: str, leg: Call, to: str) -> None:
        try:
            uri = parse_uri(to)
        except SIPError as exc:
            logger.info("call=%s the transfer target %r is no URI: %s", call_id, to, exc)
            return
        user = uri.user if isinstance(uri, SipURI) and uri.user else to
        self._referred[user] = (call_id, time.monotonic())
        try:
            response = await leg.transfer.refer(NameAddr(uri))
        except (SIPError, OSError) as exc:
            logger.info("call=%s cannot REFER the library: %s", call_id, exc)
            self._referred.pop(user, None)
            return
        if response.status >= 300:  # the call core's refer_timeout tells the phone (408)
            logger.info("call=%s the library refused our REFER: %d", call_id, response.status)
            self._referred.pop(user, None)

    def referred(self, target: str) -> str | None:
        """The call whose REFER the library's INVITE to ``target`` (the user part) carries out, if any."""
        found = self._referred.pop(target, None)
        if found is None or time.monotonic() - found[1] > REFERRED_WINDOW:
            return None
        return found[0]
