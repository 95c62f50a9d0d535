"""Sessions of the HTTP offer/answer API: one WebRTC session per offer, without a WebSocket.

An `HttpSession` is the `SessionSink` of such a session: instead of pushing events to a browser it
resolves the pending offer with the WebRTC answer as soon as the gateway made it (the call runtime's
early answer, before the far end picks up; on a pass-through route the far end's answer, with early
media or the 2xx), or fails it with the reason the call ended before that. Everything the call does
afterwards is recorded in its `SessionProgress` (polling and server-sent events). The mapping of call
results to HTTP statuses is `http_status_for`. This module owns these sessions and `OfferApi`; it
imports the signaling's errors, events and progress records, `sdp`, and names the driver (whose
`HttpOffers` part `OfferApi` delegates to) for typing only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, cast

from gateway.identity import WebUser
from gateway.media.errors import MediaError
from gateway.signaling import events as sig
from gateway.signaling.conference import Merged, Split
from gateway.signaling.errors import BadRequest, Conflict, NotFound, ServiceError
from gateway.signaling.http_api.progress import SessionProgress
from gateway.signaling.service import JsonValue, OfferResult
from sdp import IceCandidateInit, IceParameters, SdpError, TrickleFragment
from sdp import parse as parse_sdp

if TYPE_CHECKING:
    from gateway.runtime.driver import CallDriver

logger = logging.getLogger(__name__)

# SIP status (or end reason) -> HTTP status of a failed offer with metadata.dial.
_HTTP_BY_SIP: Final = {404: 404, 410: 404, 484: 404, 604: 404, 408: 408, 401: 403, 403: 403, 407: 403}
_HTTP_BY_REASON: Final = {
    "no_such_number": 404,
    "bad_destination": 400,
    "destination_not_allowed": 403,
    "pbx_unreachable": 408,
}


def http_status_for(reason: str, sip_status: int | None) -> int:
    """404 no such number, 408 PBX unreachable, 403 refused, 400 bad destination, else 502 (the far
    end turned the call down: busy, declined, unavailable...; the SIP status is in the message)."""
    if reason in _HTTP_BY_REASON:
        return _HTTP_BY_REASON[reason]
    if sip_status is not None and sip_status in _HTTP_BY_SIP:
        return _HTTP_BY_SIP[sip_status]
    return 502


class HttpSession:
    """The `SessionSink` of one HTTP offer (see the module note)."""

    def __init__(
        self,
        user: WebUser,
        on_end: Callable[[HttpSession], None] | None = None,
        *,
        session_id: str | None = None,
        dial: str | None = None,
        api_key: str | None = None,
        renewable: bool = False,
        internal_id: str | None = None,
    ) -> None:
        # `public_id` names the session to its user (her choice, or ours); `id`, the gateway's own and
        # unique, keys it among every user's sessions: two users may choose the same id (issue 32);
        # `internal_id`: the id it had on an instance that died (its call taken over here: takeover.py)
        self._public = session_id or "h-" + secrets.token_urlsafe(12)
        self._id = internal_id or (self._public if session_id is None else "h-" + secrets.token_urlsafe(12))
        self._on_end = on_end
        self._user = user
        self.api_key = api_key  # the API key's id it was opened with (signaling.service.KeyedSink)
        self._closed = False
        self.call_id: str | None = None
        self._early_sdp: str | None = None
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.progress = SessionProgress(self._public, dial=dial)
        self.ended_at: float | None = None  # loop time the session finished (kept for polling a while)
        self._renewable = renewable  # the browser renews lost media with a new offer (RenewingSink)
        self.renewal: asyncio.Future[str] | None = None  # the answer to such an offer (http_offers.py)
        self.fingerprints: frozenset[str] = frozenset()  # its RTCPeerConnection's DTLS fingerprints
        self.ice_ufrag: str | None = (
            None  # its offers' ice-ufrag (a pass-through call's restart: http_offers)
        )

    @property
    def id(self) -> str:
        return self._id

    def moved(self) -> None:
        """Its call goes on at another instance (a drain handed it over): its client is told to renew the
        media now (`web_lost` cause `moved`: an offer with this `session_id`, from a new RTCPeerConnection,
        the old one playing until the new one does), before the SIP party moves there (make before break)."""
        self.progress.record("web_lost", cause="moved", seconds=0.0)

    @property
    def public_id(self) -> str:
        """The id its user knows it by (responses, URLs, events); unique only among her sessions."""
        return self._public

    @property
    def user(self) -> WebUser:
        return self._user

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def renews_media(self) -> bool:
        return self._renewable

    def close(self) -> None:
        self._closed = True
        self.progress.record("closed")
        if not self.answer.done():
            self.answer.cancel()

    def web_answer(self, call_id: str, sdp: str) -> None:
        """The gateway's WebRTC answer, as soon as it exists (CallRuntime's early answer)."""
        if not self.answer.done():
            self.answer.set_result(sdp)

    async def send_event(self, event: sig.Event) -> None:
        if self._closed:
            return
        progress = self.progress
        match event:
            case sig.Ringing():
                progress.record("ringing")
            case sig.EarlyMedia(call_id=call_id, sdp=sdp):
                self._early_sdp = sdp or self._early_sdp
                progress.record("early_media")
                if sdp is not None:
                    self.web_answer(call_id, sdp)  # a pass-through call: the answer is the far end's
            case sig.Connected(call_id=call_id, sdp=sdp):
                answer = sdp or self._early_sdp
                if answer is not None:
                    self.web_answer(call_id, answer)
                progress.record("answered")
            case sig.Ended():
                self._ended(event)
            case _:
                self._renewal(event)
                self._in_call(event)

    def _renewal(self, event: sig.Event) -> None:
        """A new offer's outcome for the request waiting on it (http_offers.py): the new web leg's answer
        (`reattached`), or a pass-through call's far end's answer (`answer`) or refusal."""
        waiting = self.renewal
        if waiting is None or waiting.done():
            return
        match event:
            case sig.Reattached(sdp=str(sdp)) | sig.Answer(sdp=sdp):
                waiting.set_result(sdp)
            case sig.ErrorMessage(code="renegotiation_failed", message=message):
                waiting.set_exception(Conflict(message, field="sdp", code="renegotiation_failed"))

    def _in_call(self, event: sig.Event) -> None:
        """What happens in the call, recorded as progress events (the call's features: issue 33)."""
        progress = self.progress
        match event:
            case sig.DtmfReceived(digit=digit, duration_ms=duration):
                progress.record("dtmf", digit=digit, duration_ms=duration)
            case sig.CallMessage(body=body):
                progress.record("message", body=body)  # chat from the SIP party (MESSAGE in the dialog)
            case sig.MessageResult(status=status):
                progress.record("message_result", sip_status=status)
            case sig.Held(by=by):
                progress.record("held", by=by)
            case sig.Resumed(by=by):
                progress.record("resumed", by=by)
            case sig.Transfer(state=state, sip_status=status, message=text):  # POST /webrtc/transfer's
                progress.record("transfer", state=state, sip_status=status, message=text)
            case sig.TransferRequested(to=to):  # the SIP party's REFER: an offer with transfer_of obeys
                progress.record("transfer_requested", to=to)
            case sig.RecordingChanged(state=state, mode=mode, files=files):
                progress.record("recording", state=state, mode=mode, files=list(files))
            case sig.WebLost(cause=cause, seconds=seconds):
                progress.record("web_lost", cause=cause, seconds=seconds)
            case sig.Reattached() | sig.Answer():  # the new offer's answer (`_renewal`)
                progress.record("renewed")
            case sig.CallQuality():  # the legs' figures while the call is up (gateway/ops/quality.py)
                figures = cast(dict[str, JsonValue], event.to_json())
                progress.record("quality", legs=figures["legs"], poor=figures["poor"])
            case Merged() | Split():  # three-way calls: this session's call joined or left a conference
                data = cast(dict[str, JsonValue], event.to_json())
                progress.record(str(data.pop("type")), **data)
            case sig.ErrorMessage(code=code, message=message):  # a refused hold, transfer... (issue 33)
                logger.info("HTTP session %s: %s %s", self._id, code, message)
                progress.record("error", code=code, message=message)
            case _:
                logger.debug("HTTP session %s: %s", self._id, type(event).__name__)

    def _ended(self, event: sig.Ended) -> None:
        """The call ended: a pending offer fails with the reason (and the HTTP status it maps to)."""
        reason, message, status = event.reason, event.message, event.sip_status
        self._closed = True
        self.ended_at = asyncio.get_running_loop().time()
        self.progress.record("ended", reason=reason, message=message, sip_status=status)
        if self._on_end is not None:
            self._on_end(self)
        if self.renewal is not None and not self.renewal.done():
            self.renewal.set_exception(Conflict(f"the call ended: {message or reason}", field="session_id"))
        if not self.answer.done():
            detail = f"{message} (SIP {status})" if status is not None else message
            self.answer.set_exception(
                ServiceError(detail, code=reason, http_status=http_status_for(reason, status))
            )

    def __repr__(self) -> str:
        return f"HttpSession({self._id!r}, user={self._user.id!r})"


class OfferApi:
    """`OfferService` for the HTTP API routes: the driver's `http_*` methods under the protocol's names."""

    def __init__(self, driver: CallDriver) -> None:
        self._driver = driver

    async def offer(
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
        try:  # RustPBX's document: "400: Bad request (invalid SDP, missing fields)", not a failed call
            parse_sdp(sdp)
        except SdpError as exc:
            raise BadRequest(f"invalid SDP: {exc}", field="sdp") from None
        referred = self._referring_call(user, transfer_of) if transfer_of is not None else None
        return await self._driver.http_offer(
            user, sdp, dial, metadata, session_id, api_key=api_key, transfer_of=referred, renewable=renewable
        )

    def whip_waiting(self, user: WebUser, destination: str, api_key: str | None) -> str | None:
        return self._driver.whip_waiting(user, destination, api_key)

    def whip_resource(self, user: WebUser, session_id: str) -> bool:
        try:
            session = self._driver.http_session(user, session_id)
        except NotFound:
            return False
        return not session.renews_media and not session.closed

    def _referring_call(self, user: WebUser, session_id: str) -> str:
        """The call of the user's session `session_id` whose SIP party's REFER is waiting for its call
        (`transfer_requested`): 404 no such session, 409 no REFER waiting (none came, or it timed out)."""
        session = self._session_with_call(user, session_id, "transfer_of")
        assert session.call_id is not None
        if not self._driver.referred(session.call_id):
            raise Conflict(f"session {session_id!r} has no transfer requested", field="transfer_of")
        return session.call_id

    def _session_with_call(self, user: WebUser, session_id: str, field: str) -> HttpSession:
        """The user's session `session_id` with a call in progress (NotFound, Conflict naming `field`)."""
        try:
            session = self._driver.http_session(user, session_id)
        except NotFound:
            raise NotFound(f"no session {session_id!r}", field=field) from None
        if session.call_id is None or session.closed:
            raise Conflict(f"session {session_id!r} has no call in progress", field=field)
        return session

    async def record(self, user: WebUser, session_id: str, action: str) -> dict[str, object]:
        """`POST /webrtc/record`: `/ws`'s `record` on the session's call."""
        session = self._session_with_call(user, session_id, "session_id")
        assert session.call_id is not None
        return await self._driver.record(session, session.call_id, action)

    async def add_candidate(self, user: WebUser, session_id: str, candidate: IceCandidateInit | None) -> None:
        await self._driver.http_add_candidate(user, session_id, candidate)

    async def close(self, user: WebUser, session_id: str) -> None:
        await self._driver.http_close(user, session_id)

    async def restart_ice(self, user: WebUser, session_id: str, remote: IceParameters) -> TrickleFragment:
        """The session's web leg restarts ICE in place (`MediaBridge.restart_web_ice`); a pass-through
        call's media is the far end's, a call not connected yet has no ICE session to restart: 422."""
        session = self._driver.http_session(user, session_id)
        runtime = next((r for r in self._driver.runtimes if r.call_id == session.call_id), None)
        bridge = runtime.bridge if runtime is not None else None
        if bridge is None or bridge.passes_through:
            raise ServiceError(
                "this session's media cannot restart ICE (no gateway media leg)",
                code="ice_restart",
                http_status=422,
            )
        try:
            return bridge.restart_web_ice(remote)
        except MediaError as exc:
            raise ServiceError(f"ICE restart refused: {exc}", code="ice_restart", http_status=422) from None

    async def progress(self, user: WebUser, session_id: str) -> SessionProgress:
        return self._driver.http_session(user, session_id).progress

    async def control(
        self, user: WebUser, session_id: str, action: str, *, digits: str = "", duration_ms: int | None = None,
        to: str = "", body: str = "", replaces: str = "", other: str = "",
    ) -> None:  # fmt: skip
        """The `/ws` requests of the same names on the session's call (BrowserRequests: the call machine
        decides, and refuses what the call's state does not allow). An attended transfer's `replaces` is
        another session of the user's (its call the consultation: HttpOffers.owns_call lets one of her
        HTTP sessions name another's call)."""
        session = self._session_with_call(user, session_id, "session_id")
        call_id = session.call_id
        assert call_id is not None
        driver = self._driver
        if action == "hold":
            await driver.hold(session, call_id)
        elif action == "resume":
            await driver.resume(session, call_id)
        elif action == "dtmf":
            await driver.dtmf(session, call_id, digits, duration_ms)
        elif action == "transfer" and replaces:
            consult = self._session_with_call(user, replaces, "replaces").call_id
            await driver.transfer(session, call_id, None, consult)
        elif action == "transfer":
            await driver.transfer(session, call_id, to, None)
        elif action == "message":
            await driver.call_message(session, call_id, body)
        elif action == "merge":  # three-way calls (gateway/runtime/merge/): `with`'s call joins this one's
            joining = self._session_with_call(user, other, "with").call_id
            assert joining is not None
            await driver.three_way.merge(session, [call_id, joining], field="with")
        elif action == "split":
            await driver.three_way.split(session, call_id, field="session_id")
        else:
            raise BadRequest(f"no such action {action!r}", field="action")
