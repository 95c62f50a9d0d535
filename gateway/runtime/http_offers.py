"""`HttpOffers`: the driver's side of the HTTP offer/answer API and WHIP (`OfferApi` delegates here).

One `HttpSession` (offers.py) per offer, dialling `metadata.dial`, answered as soon as the WebRTC
answer exists; an ended session stays readable for `HTTP_RETENTION` seconds. An HTTP session has one
call, so a user's calls that belong together (a REFER carried out by a new offer, the consultation call
of an attended transfer) are in two of her sessions: `owns_call` lets either name the other's call.
An offer naming one of the user's own live sessions is that session's ICE restart (issue 34), or, from
a new RTCPeerConnection or while its call waits for lost media (`web_auth.reconnect_grace`), a new web
leg on the same SIP leg (`reattach`). On a pass-through call both go to the far end in a re-INVITE.
This module imports what `BrowserRequests` does and builds on it (an offer is a dial).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import NamedTuple

import sdp
from gateway.calls import (
    CallError,
)
from gateway.calls.boundary import events as ev
from gateway.identity import WebUser
from gateway.runtime.browser_requests import BrowserRequests
from gateway.runtime.offers import HttpSession
from gateway.signaling.errors import BadRequest, Conflict, NotFound
from gateway.signaling.service import JsonValue, OfferResult, SessionSink, session_key, whip_key

logger = logging.getLogger(__name__)

HTTP_RETENTION = 120.0  # seconds an ended HTTP session stays readable (GET /webrtc/sessions/{id})
RENEW_TIMEOUT = 15.0  # seconds a session's new web leg may take to answer (`_http_renew`)
RELAY_TIMEOUT = 34.0  # a pass-through call's far end: our re-INVITE's Timer B (64 T1) and a margin


class HttpOffers(BrowserRequests):
    """The HTTP API's sessions (see the module note)."""

    def dial_grace(self, session: SessionSink) -> float | None:
        """An HTTP API session's call waits web_auth.http_reconnect_grace for its client's new offer: no
        socket of its tells that the client is still there."""
        if isinstance(session, HttpSession) and session.renews_media:
            return self.registry.settings.http_reconnect_grace
        return None

    def http_session_ids(self) -> tuple[str, ...]:
        """The HTTP-API/WHIP sessions this process holds, by `session_key` (user and session id: their
        ownership is shared in a cluster under it)."""
        return tuple(session_key(user_id, session_id) for user_id, session_id in self._http)

    def http_sessions_of(self, user: WebUser) -> tuple[HttpSession, ...]:
        self._expire_http()
        return tuple(session for (user_id, _), session in self._http.items() if user_id == user.id)

    def whip_waiting(self, user: WebUser, destination: str, api_key: str | None) -> str | None:
        """The id of `user`'s WHIP resource calling `destination`, opened with API key `api_key`, whose
        call waits for new media here (it was taken over from an instance that died:
        runtime/continuity/takeover.py): its client's next publish to that destination renews it, instead
        of placing a second call."""
        for session in self.http_sessions_of(user):
            call_id = session.call_id
            if session.renews_media or session.closed or call_id is None or call_id not in self._runtimes:
                continue
            if session.api_key != api_key:  # (another client of the user's: not its call to take)
                continue
            if session.progress.dial == destination and self.registry.get(call_id).web_lost:
                return session.public_id
        return None

    def whip_keys(self) -> tuple[str, ...]:
        """`whip_key` of each live WHIP resource here: a cluster records where they are, so that a publish
        to the same destination after this instance died waits for the survivor that takes it over."""
        return tuple(
            whip_key(user_id, session.progress.dial)
            for (user_id, _), session in self._http.items()
            if not session.renews_media and not session.closed and session.progress.dial
        )

    async def http_offer(
        self,
        user: WebUser,
        sdp: str,
        dial: str | None,
        metadata: Mapping[str, JsonValue],
        session_id: str | None,
        *,
        api_key: str | None = None,
        transfer_of: str | None = None,
        renewable: bool = False,
    ) -> OfferResult:
        """One WebRTC session per offer, calling `dial`; answered as soon as the WebRTC answer exists
        (docs/signaling.md), the call's progress in the session's `SessionProgress`. `transfer_of`: the
        user's call whose SIP party's REFER this one carries out (`dial` None: the REFER's target)."""
        self._expire_http()
        if session_id is not None and (user.id, session_id) in self._http:
            return await self._http_restart(self._http[user.id, session_id], sdp, metadata)
        if transfer_of is not None and not dial and transfer_of in self.registry:
            dial = self.registry.get(transfer_of).transfer_in
        if not dial:
            raise BadRequest(
                "metadata.dial is required (no default destination is configured for you)",
                field="metadata.dial",
            )
        session = HttpSession(
            user,
            on_end=self._http_ended,
            session_id=session_id,
            dial=dial,
            api_key=api_key,
            renewable=renewable,
        )
        session.fingerprints, session.ice_ufrag = _keys(sdp)  # (one parse, on the setup path)
        self._sessions[session.id] = session
        self._http[user.id, session.public_id] = session
        try:
            session.call_id = await self.dial(session, dial, sdp, transfer_of=transfer_of)
            session.progress.call_id = session.call_id
            # Awaited directly, not through asyncio.shield: shield's outer future wakes this handler one
            # loop iteration later, behind the web leg's ICE start and other calls' work (~1 ms of each
            # offer -> answer, issue 14 goal 3). A cancelled handler cancels the future, as
            # _close_http below would anyway.
            answer = await session.answer
        except BaseException:
            await self._close_http(session)
            raise
        return OfferResult(session.public_id, answer, (), metadata, call_id=session.call_id)

    def referred(self, call_id: str) -> bool:
        """Whether call `call_id`'s SIP party sent a REFER that waits for the web user's call."""
        return call_id in self.registry and self.registry.get(call_id).transfer_in is not None

    def owns_call(self, session: SessionSink, call_id: str) -> bool:
        """`session`'s call, or, for an HTTP session, the call of another HTTP session of its user (each
        has one call: the REFER's and the consultation call are in her other sessions)."""
        owns = super().owns_call
        if owns(session, call_id):
            return True
        if not isinstance(session, HttpSession):
            return False
        return any(
            other.call_id == call_id and owns(other, call_id) for other in self.http_sessions_of(session.user)
        )

    async def _http_restart(
        self, session: HttpSession, sdp: str, metadata: Mapping[str, JsonValue]
    ) -> OfferResult:
        """An offer naming one of the user's own sessions: its RTCPeerConnection's new offer restarting
        ICE (issue 34), answered with our new credentials while its call is connected; anything else is
        409, as for any taken id (a finished session, one not connected yet, an offer that restarts
        nothing or comes from another RTCPeerConnection). Another user's sessions are not looked at: ids
        name sessions per user, so the same id chosen by two users makes two sessions, and an id says
        nothing about other users' sessions (issue 32 item 10)."""
        taken = f"session {session.public_id!r} exists already"
        call_id = session.call_id
        if session.closed or call_id is None or call_id not in self._runtimes:
            raise Conflict(f"{taken} (finished, or no call yet)", field="session_id")
        keys = _keys(sdp)
        fingerprints = keys.fingerprints
        machine = self.registry.get(call_id)
        if machine.web_lost or (
            session.renews_media and fingerprints and not fingerprints & session.fingerprints
        ):
            return await self._http_renew(session, call_id, sdp, keys, metadata)
        if self.passthrough(call_id) and keys.ufrag not in (None, session.ice_ufrag):
            return await self._http_relay(session, call_id, sdp, keys, metadata)  # the far end's ICE restarts
        try:
            answer = await self.restart_web_ice(session, call_id, sdp)
        except (BadRequest, Conflict, NotFound) as exc:
            raise Conflict(f"{taken}; its offer restarts no ICE: {exc.message}", field="session_id") from None
        if answer is None:
            raise Conflict(f"{taken}; an offer for it must restart ICE (a new ice-ufrag)", field="session_id")
        logger.info("call=%s HTTP session %s restarted ICE", call_id, session.public_id)
        return OfferResult(session.public_id, answer, (), metadata, call_id=call_id)

    async def _http_relay(
        self, session: HttpSession, call_id: str, sdp: str, keys: _Keys, metadata: Mapping[str, JsonValue]
    ) -> OfferResult:
        """A pass-through call's new offer from the same RTCPeerConnection (its ICE restart): it goes to
        the far end, whose ICE session and media it is, in our re-INVITE, and the far end's answer is
        returned (as JSON-RPC's `offer {call_id, sdp}` does: jsonrpc/renew.py). A refusal is 409
        (`renegotiation_failed`): the session goes on as it was (RFC 3261 §14.1)."""
        late = "the other side did not answer in time"
        answer = await _outcome(session, self.reoffer(session, call_id, sdp), RELAY_TIMEOUT, late)
        session.ice_ufrag = keys.ufrag
        logger.info("call=%s HTTP session %s: its new offer went to the far end", call_id, session.public_id)
        return OfferResult(session.public_id, answer, (), metadata, call_id=call_id)

    async def _http_renew(
        self,
        session: HttpSession,
        call_id: str,
        sdp: str,
        keys: _Keys,
        metadata: Mapping[str, JsonValue],
    ) -> OfferResult:
        """An offer of a new RTCPeerConnection (a new DTLS fingerprint) for the session, or any offer
        while its call waits for lost media: a new web leg on the same SIP leg, as `/ws`'s `reattach`
        (issue 34); the new leg's answer returned. The SIP party notices nothing."""
        started = self.reattach(session, call_id, sdp)
        # a pass-through call's offer goes to its far end in our re-INVITE: its Timer B bounds the answer
        timeout = RELAY_TIMEOUT if self.passthrough(call_id) else RENEW_TIMEOUT
        answer = await _outcome(session, started, timeout, "the session's media could not be renewed in time")
        session.fingerprints, session.ice_ufrag = keys
        logger.info("call=%s HTTP session %s renewed its media", call_id, session.public_id)
        return OfferResult(session.public_id, answer, (), metadata, call_id=call_id)

    def _expire_http(self) -> None:
        now = asyncio.get_running_loop().time()
        for session in list(self._http.values()):
            if session.ended_at is not None and now - session.ended_at > HTTP_RETENTION:
                del self._http[session.user.id, session.public_id]

    def http_session(self, user: WebUser, session_id: str) -> HttpSession:
        self._expire_http()
        session = self._http.get((user.id, session_id))
        if session is None:
            raise NotFound(f"no session {session_id!r}", field="session_id")
        return session

    async def http_add_candidate(
        self, user: WebUser, session_id: str, candidate: sdp.IceCandidateInit | None
    ) -> None:
        session = self.http_session(user, session_id)
        if session.call_id is not None and session.call_id in self._runtimes:
            self._runtimes[session.call_id].add_candidate(candidate)

    async def http_close(self, user: WebUser, session_id: str) -> None:
        await self._close_http(self.http_session(user, session_id))

    async def _close_http(self, session: HttpSession) -> None:
        call_id = session.call_id
        if call_id is not None and call_id in self._runtimes and call_id in self.registry:
            try:
                await self._runtimes[call_id].feed(ev.WebHangup(session.id))
            except CallError as exc:
                logger.info("call=%s HTTP close: %s", call_id, exc)
        session.close()
        self._http.pop((session.user.id, session.public_id), None)
        self._sessions.pop(session.id, None)


class _Keys(NamedTuple):
    """What tells an offer's RTCPeerConnection and ICE session from the session's last ones."""

    fingerprints: frozenset[str]  # of its first section, as "algorithm VALUE" (none when unreadable)
    ufrag: str | None  # its first section's ice-ufrag


def _keys(offer: str) -> _Keys:
    """An offer's DTLS fingerprints and ice-ufrag, read in one parse."""
    try:
        parsed = sdp.parse(offer)
    except sdp.SdpError:
        return _Keys(frozenset(), None)
    if not parsed.media:
        return _Keys(frozenset(), None)
    dtls, ice = parsed.dtls_for(0), parsed.ice_for(0)
    fingerprints = (
        frozenset(f"{f.algorithm.lower()} {f.value.upper()}" for f in dtls.fingerprints)
        if dtls
        else frozenset()
    )
    return _Keys(fingerprints, ice.ufrag if ice is not None else None)


async def _outcome(session: HttpSession, started: Awaitable[None], timeout: float, late: str) -> str:
    """The answer to a session's new offer (`started`: handing it to the call core), as the session hears
    it (`HttpSession.renewal`); 409 with ``late`` when it does not come within ``timeout`` seconds."""
    if session.renewal is not None:  # one new offer at a time (its answer is the session's one)
        if asyncio.iscoroutine(started):
            started.close()
        raise Conflict(
            "a new offer for the session is under way: offer again once it is answered", field="sdp"
        )
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    session.renewal = future
    try:
        await started
        async with asyncio.timeout(timeout):
            return await future
    except TimeoutError:
        raise Conflict(late, field="sdp") from None
    finally:
        if session.renewal is future:
            session.renewal = None
