"""Events into a call: from signaling (the browser), the SIP UA, the media bridge and the timers.

All are frozen values, validated when built. Events from the browser name the session that sent
them; the machine refuses (`WrongSession`) a session that is not part of the call.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.calls.boundary import _checks
from gateway.calls.boundary.caller import NO_DETAILS, CallerDetails
from gateway.calls.errors import InvalidValue
from gateway.calls.reasons import EndReason
from gateway.calls.states import RejectKind, TimerName
from gateway.identity.model import Found, InboundResult, NoSuchUser, NotOnline, WebUser

# --- from signaling (the browser) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebDial:
    """A logged-in web user dials `destination` (a number or a SIP URI) with a WebRTC offer."""

    session_id: str
    user: WebUser
    destination: str
    sdp: str
    headers: tuple[tuple[str, str], ...] = ()  # custom headers for the INVITE (caller.custom_headers)
    # A web user of this gateway was dialled (gateway/runtime/web_calls.py): the Request-URI that
    # reaches her through the gateway's own SIP listener, sent there directly (no PBX, no dial policy
    # again: the driver checked it)
    route: str | None = None
    # the API key the dialect authenticated the dial with (gateway.config.users.api_key_id): its own caps
    api_key: str | None = None
    # seconds the call waits for lost media to be renewed, when the dialect has its own (the HTTP API's
    # web_auth.http_reconnect_grace); None: web_auth.reconnect_grace
    grace: float | None = None

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)
        _checks.text("sdp", self.sdp)
        if not isinstance(self.destination, str):
            raise InvalidValue(f"destination must be a string, got {self.destination!r}")
        if self.route is not None:
            _checks.text("route", self.route)
        if self.api_key is not None:
            _checks.text("api_key", self.api_key)
        if self.grace is not None and (
            not isinstance(self.grace, (int, float))
            or isinstance(self.grace, bool)
            or not 0 <= self.grace <= 3600
        ):
            raise InvalidValue(f"grace must be a number of seconds in [0, 3600], got {self.grace!r}")


@dataclass(frozen=True, slots=True)
class WebAccept:
    """A ringing session answers."""

    session_id: str

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)


@dataclass(frozen=True, slots=True)
class WebReject:
    """A ringing session turns the call down: busy (486), unavailable (480) or decline (603)."""

    session_id: str
    kind: RejectKind = RejectKind.BUSY

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)
        if not isinstance(self.kind, RejectKind):
            raise InvalidValue(f"kind must be a RejectKind, got {self.kind!r}")


@dataclass(frozen=True, slots=True)
class WebOfferWanted:
    """A ringing session needs the gateway's WebRTC offer to ring at all (a SIP library: the offer goes in
    its INVITE). Its answer (WebSdpAnswer) accepts the call; until then the others keep ringing."""

    session_id: str

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)


@dataclass(frozen=True, slots=True)
class WebSdpAnswer:
    """The answering browser's WebRTC answer to the offer the gateway sent it (inbound calls)."""

    session_id: str
    sdp: str

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class WebReoffer:
    """The browser's own new offer during a connected call (`offer {call_id, sdp}`): it adds video or
    drops it (escalation from the browser, gateway/calls/connected/escalation.py); answered once the SIP side is."""

    session_id: str
    sdp: str

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class WebHangup:
    """The browser hangs up. ``of_login``: the session is of the login a detached call waits for (the
    driver checked): a page that hung up while its socket was down tells the gateway once it is back."""

    session_id: str
    of_login: bool = False

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)


@dataclass(frozen=True, slots=True)
class WebHold:
    session_id: str

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)


@dataclass(frozen=True, slots=True)
class WebResume:
    session_id: str

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)


@dataclass(frozen=True, slots=True)
class WebMessage:
    """A text message from the browser for the SIP party, to go as SIP MESSAGE in the call's dialog
    (RFC 3428 §4): typed on the call's data channel (``session_id`` None: the web leg's media carried
    it) or sent as `message {call_id, body}` by the session carrying the call."""

    body: str
    session_id: str | None = None

    def __post_init__(self) -> None:
        _checks.optional_text("session_id", self.session_id)
        _checks.chat_text(self.body)


@dataclass(frozen=True, slots=True)
class WebInfo:
    """An INFO body from the browser for the SIP party (RFC 6086), of an allowed content type."""

    session_id: str
    content_type: str
    body: str

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)
        _checks.text("content_type", self.content_type)
        if not isinstance(self.body, str):
            raise InvalidValue(f"body must be a string, got {self.body!r}")


@dataclass(frozen=True, slots=True)
class WebDtmf:
    """Keypad digits from the browser, each sent for `duration_ms` (None: the configured default)."""

    session_id: str
    digits: str
    duration_ms: int | None = None

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)
        _checks.text("digits", self.digits)
        for digit in self.digits:
            _checks.digit(digit)
        if self.duration_ms is not None:
            _checks.duration(self.duration_ms)


@dataclass(frozen=True, slots=True)
class GatewayStopping:
    """The gateway is stopping (SIGTERM, a restart): the call ends now, its browser told `ended`
    (`shutdown`), the SIP side hung up (BYE, CANCEL or 480), as a call the gateway ends itself.
    `reason` `admin_hangup`: an administrator ends this one call the same way (the admin API)."""

    reason: EndReason = EndReason.SHUTDOWN


@dataclass(frozen=True, slots=True)
class TakenOver:
    """This instance carries on a call whose gateway instance died (runtime/continuity/takeover.py): the
    SIP leg was adopted and re-INVITEd to this instance's media, the browser's socket and web leg went
    with the dead instance. The call waits for its browser as a detached one does (reconnect.py), or,
    `session_kept` (an HTTP API session, made again here under its ids), for that session to renew its
    media, as after a lost web leg (a JSON-RPC peer's too, made again detached); unless its media is
    `media_intact` (a pass-through call's, which flows end to end and never went through the dead
    instance): then it goes on as it was."""

    from_instance: str
    session_kept: bool = False
    media_intact: bool = False

    def __post_init__(self) -> None:
        _checks.text("from_instance", self.from_instance)


@dataclass(frozen=True, slots=True)
class WebDisconnected:
    """The browser session went away (WebSocket closed); it cannot be told anything more."""

    session_id: str

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)


@dataclass(frozen=True, slots=True)
class WebDetached:
    """The carrying session's WebSocket closed, but the browser may come back within the reconnect
    grace (a reload, a network change): the call stays up without its web leg (gateway/calls/connected/reconnect.py).
    The driver sends it instead of WebDisconnected for connected calls of sessions that can come back."""

    session_id: str

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)


@dataclass(frozen=True, slots=True)
class WebReattach:
    """A browser takes the call back with a new WebRTC offer (`sdp`): a session of the same login
    after the old one went (WebDetached), or the carrying session itself renewing its media (its
    RTCPeerConnection failed: a network change). The driver has checked the session may.
    ``passthrough``: the call's media is the far end's (a pass-through route): the offer goes to it;
    without an offer (`sdp` None) the browser kept that media, which flows end to end: only the session
    is back."""

    session_id: str
    sdp: str | None
    passthrough: bool = False

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)
        if self.sdp is not None:
            _checks.text("sdp", self.sdp)


# --- from the SIP user agent --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SipIncomingInvite:
    """A new INVITE, with the identity map's answer for its Request-URI (`IdentityMap.resolve_inbound`)."""

    request_uri: str
    from_uri: str
    from_display: str | None
    # None: an offerless INVITE (late offer: our offer goes in the 200, the answer in the ACK)
    sdp: str | None
    target: InboundResult
    busy_users: frozenset[str] = frozenset()  # users already ringing max_ringing_per_user calls (registry)
    details: CallerDetails = NO_DETAILS  # asserted identity, diversions, passed headers
    passthrough: bool = False  # the caller's route passes its WebRTC media to the browser (config routes)

    def __post_init__(self) -> None:
        _checks.text("request_uri", self.request_uri)
        _checks.text("from_uri", self.from_uri)
        _checks.optional_text("sdp", self.sdp)
        if not isinstance(self.target, (Found, NotOnline, NoSuchUser)):
            raise InvalidValue(f"target must be Found, NotOnline or NoSuchUser, got {self.target!r}")


@dataclass(frozen=True, slots=True)
class SipProvisional:
    """A 1xx to our INVITE (100 too, when the UA passes it up); 18x with SDP means early media."""

    status: int
    sdp: str | None = None

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 100, 199)
        _checks.optional_text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class SipAccepted:
    """A 2xx to our INVITE (the UA ACKs it). No SDP: the early answer stands (RFC 3264 §4)."""

    sdp: str | None = None

    def __post_init__(self) -> None:
        _checks.optional_text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class SipFailed:
    """A final non-2xx to our INVITE, including the UA's own 408 when timer B fires. On an inbound call:
    the UA gave up on our 2xx, never ACKed (RFC 3261 §13.3.1.4): the SIP leg is lost."""

    status: int
    phrase: str = ""
    contacts: tuple[str, ...] = ()  # 3xx: the redirect targets, best q-value first (RFC 3261 §8.1.3.4)

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 300, 699)


@dataclass(frozen=True, slots=True)
class SipCancelled:
    """The caller CANCELled its INVITE; the UA has answered the INVITE with 487 (RFC 3261 §9.2).

    `answered_elsewhere`: its Reason said another branch answered (RFC 3326: SIP cause 200, or Q.850
    cause 26), as a forking proxy's CANCEL does: the browsers hear `answered_elsewhere`, not a missed
    call. `cause`: the Reason's cause (its SIP one first), kept for the logs."""

    answered_elsewhere: bool = False
    cause: int | None = None


@dataclass(frozen=True, slots=True)
class SipByeReceived:
    """The SIP party sent BYE (the UA answered 200); `cause` from its Reason header, if any."""

    cause: int | None = None

    def __post_init__(self) -> None:
        if self.cause is not None:
            _checks.status("cause", self.cause)


@dataclass(frozen=True, slots=True)
class SipReinviteReceived:
    """A re-INVITE from the SIP party (hold, resume, refresh); the machine must answer it."""

    sdp: str | None = None

    def __post_init__(self) -> None:
        _checks.optional_text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class SipReinviteResult:
    """The final response to our re-INVITE (a 2xx carries the answer)."""

    status: int
    sdp: str | None = None

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 200, 699)
        _checks.optional_text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class SipAckReceived:
    """The ACK to our 2xx (the INVITE's or a re-INVITE's); `sdp` is the answer it carries, if any:
    there is one when that 2xx carried our offer (an offerless INVITE, RFC 3261 §13.3.1.4, §14.2)."""

    sdp: str | None = None

    def __post_init__(self) -> None:
        _checks.optional_text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class SipLegClosed:
    """The SIP dialog is gone: our BYE was answered (or timed out), or the dialog died otherwise."""


@dataclass(frozen=True, slots=True)
class SipInfoReceived:
    """An INFO from the SIP party (not DTMF), already answered 200: its body for the browser."""

    content_type: str
    body: str

    def __post_init__(self) -> None:
        _checks.text("content_type", self.content_type)
        if not isinstance(self.body, str):
            raise InvalidValue(f"body must be a string, got {self.body!r}")


@dataclass(frozen=True, slots=True)
class SipMessageReceived:
    """A text/plain MESSAGE from the SIP party in the call's dialog (RFC 3428), already answered 200."""

    body: str

    def __post_init__(self) -> None:
        _checks.chat_text(self.body)


@dataclass(frozen=True, slots=True)
class SipMessageResult:
    """The SIP party's final answer to a MESSAGE the browser's text went out in."""

    status: int

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 200)


@dataclass(frozen=True, slots=True)
class SipInfoResult:
    """The SIP party's final answer to an INFO the browser sent."""

    status: int

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 200)


@dataclass(frozen=True, slots=True)
class _Digit:
    """One keypad digit and how long it lasts."""

    digit: str
    duration_ms: int

    def __post_init__(self) -> None:
        _checks.digit(self.digit)
        _checks.duration(self.duration_ms)


@dataclass(frozen=True, slots=True)
class RemoteDtmf(_Digit):
    """A digit from the SIP party: RFC 4733 (reported by the bridge) or SIP INFO dtmf-relay."""


# --- from the media bridge (replies to media commands, and what it observes) ---------------------


@dataclass(frozen=True, slots=True)
class MediaSipOfferReady:
    """Reply to MediaOfferToSip or MediaSipReoffer: the plain RTP offer for the SIP leg."""

    sdp: str

    def __post_init__(self) -> None:
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class MediaWebAnswerReady:
    """Reply to MediaAnswerFromSip: the WebRTC answer for the browser."""

    sdp: str

    def __post_init__(self) -> None:
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class MediaWebOfferReady:
    """Reply to MediaOfferToWeb: the WebRTC offer for the answering browser."""

    sdp: str

    def __post_init__(self) -> None:
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class MediaWebReofferReady:
    """Reply to MediaSipUpdate when the SIP party's re-offer adds or drops video (escalation): the new
    WebRTC offer for the browser of the connected call, whose answer the re-INVITE's answer waits for."""

    sdp: str

    def __post_init__(self) -> None:
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class MediaWebReofferAnswered:
    """Reply to MediaWebAnswerFromSip: the answer to the browser's own new offer (WebReoffer), made once
    the SIP side's 2xx took (or turned down) the video."""

    sdp: str

    def __post_init__(self) -> None:
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class MediaWebReofferRefused:
    """Reply to MediaSipReofferFromWeb: the browser's new offer cannot go to the SIP side (it neither adds
    nor drops video, no video codec fits, video is off); the call goes on as it was."""

    reason: str

    def __post_init__(self) -> None:
        _checks.text("reason", self.reason)


@dataclass(frozen=True, slots=True)
class MediaSipAnswerReady:
    """Reply to MediaAnswerFromWeb or MediaSipUpdate: the plain RTP answer for the SIP leg."""

    sdp: str

    def __post_init__(self) -> None:
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class MediaPickupReady:
    """Reply to MediaSipPickup: the answer for the picking-up INVITE and the browser's answer."""

    sip_sdp: str
    web_sdp: str

    def __post_init__(self) -> None:
        _checks.text("sip_sdp", self.sip_sdp)
        _checks.text("web_sdp", self.web_sdp)


@dataclass(frozen=True, slots=True)
class MediaConnected:
    """The web leg's ICE and DTLS are up."""


@dataclass(frozen=True, slots=True)
class MediaWebDtmf:
    """A digit the browser sent in its media (RFC 4733 telephone-events on the web leg), reported at its
    end. The call decides whether it goes to the SIP party as INFO (with rfc4733 the bridge forwards
    it itself)."""

    digit: str  # "!" too: a flash (event 16)
    duration_ms: int

    def __post_init__(self) -> None:
        _checks.digit(self.digit, flash=True)
        _checks.duration(self.duration_ms)


@dataclass(frozen=True, slots=True)
class MediaDtmfUnsent(_Digit):
    """Reply to MediaSendDtmf when the SIP leg has no telephone-event (RFC 4733) to send it with."""


@dataclass(frozen=True, slots=True)
class MediaWebLost:
    """The web leg failed (ICE, DTLS close_notify, no RTP) on a connected call whose browser may come
    back (the runtime sends it instead of MediaFailed then): the call waits for a reattach."""

    reason: str

    def __post_init__(self) -> None:
        _checks.text("reason", self.reason)


@dataclass(frozen=True, slots=True)
class MediaWebRenewed:
    """Reply to MediaRenewWeb: the new web leg's WebRTC answer to the browser's offer."""

    sdp: str

    def __post_init__(self) -> None:
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class MediaFailed:
    """The bridge cannot carry the call: SDP not translatable (sip_status 488), ICE/DTLS failure."""

    reason: str
    sip_status: int | None = None

    def __post_init__(self) -> None:
        _checks.text("reason", self.reason)
        if self.sip_status is not None:
            _checks.status("sip_status", self.sip_status, 400, 699)


@dataclass(frozen=True, slots=True)
class MediaInactive:
    """No RTP for `seconds` on a leg that should be sending; `held`: nothing at all (no RTP nor RTCP)
    for `seconds` from a side that was not expected to send RTP (hold): it is gone all the same."""

    seconds: float
    held: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.seconds, (int, float)) or isinstance(self.seconds, bool) or self.seconds < 0:
            raise InvalidValue(f"seconds must be a non-negative number, got {self.seconds!r}")


# --- from the timers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the call started fired. One that was cancelled or not running is ignored."""

    timer: TimerName

    def __post_init__(self) -> None:
        if not isinstance(self.timer, TimerName):
            raise InvalidValue(f"timer must be a TimerName, got {self.timer!r}")


# --- call transfer (RFC 3515 REFER, RFC 3891 Replaces; gateway/calls/connected/transfer.py) ---------------------


@dataclass(frozen=True, slots=True)
class WebTransfer:
    """The web user transfers the call: blind to `destination` (checked by her outbound policy), or
    attended to the far end of her other call `consult_call_id` (whose gateway leg it replaces)."""

    session_id: str
    user: WebUser
    destination: str | None = None
    consult_call_id: str | None = None
    route: str | None = None  # a blind transfer's Request-URI when it is not the PBX's: a room of ours

    def __post_init__(self) -> None:
        _checks.text("session_id", self.session_id)
        _checks.optional_text("destination", self.destination)
        _checks.optional_text("consult_call_id", self.consult_call_id)
        _checks.optional_text("route", self.route)
        if (self.destination is None) == (self.consult_call_id is None):
            raise InvalidValue(
                f"a transfer names a destination or a consultation call, not {self.destination!r} and "
                f"{self.consult_call_id!r}"
            )


@dataclass(frozen=True, slots=True)
class SipReferResult:
    """The final response to our REFER (202: the far end will try; else the transfer is refused)."""

    status: int
    phrase: str = ""

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 200, 699)


@dataclass(frozen=True, slots=True)
class SipTransferProgress:
    """A NOTIFY of our REFER (RFC 3515 §2.4.5): how the far end's call to the target goes."""

    status: int
    phrase: str = ""
    terminated: bool = False

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 100, 699)


@dataclass(frozen=True, slots=True)
class SipReferReceived:
    """The SIP party asks us to call `target` (a SIP URI) instead (RFC 3515). `user` is the web user
    carrying the call (whose policy decides); `replaces`: the Replaces value the REFER asks the INVITE
    to carry (RFC 3891 §5, unescaped; "" for none); `own`: that Replaces names a dialog of this gateway's
    own (an attended transfer between two of its calls, web users both: the INVITE goes to its own
    listener)."""

    target: str
    user: WebUser | None = None
    replaces: str = ""
    own: bool = False

    def __post_init__(self) -> None:
        _checks.text("target", self.target)


@dataclass(frozen=True, slots=True)
class SipReplacingInvite:
    """A new INVITE with Replaces naming this call's SIP dialog (RFC 3891 §3; the UA checked the match,
    the source and early-only): its caller takes the call over for the same web user. `sdp` its offer
    (None: offerless, our offer goes in the 200)."""

    from_uri: str
    from_display: str | None = None
    sdp: str | None = None

    def __post_init__(self) -> None:
        _checks.text("from_uri", self.from_uri)
        _checks.optional_text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class ReplacedByTransfer:
    """The web user's attended transfer that named this call (its consultation call) succeeded: the
    transferee's INVITE with Replaces takes this call's far end over (RFC 3891 §3)."""


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """How the call the web user placed for the SIP party's REFER goes (its 1xx, 2xx or failure)."""

    status: int
    phrase: str = ""

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 100, 699)


WebEvent = (
    WebDial
    | WebAccept
    | WebReject
    | WebOfferWanted
    | WebSdpAnswer
    | WebHangup
    | WebHold
    | WebResume
    | WebDtmf
    | WebInfo
    | WebMessage
    | WebDisconnected
    | WebTransfer
    | WebDetached
    | WebReattach
    | WebReoffer
)
SipEvent = (
    SipIncomingInvite
    | SipProvisional
    | SipAccepted
    | SipFailed
    | SipCancelled
    | SipByeReceived
    | SipReinviteReceived
    | SipReinviteResult
    | SipAckReceived
    | SipLegClosed
    | RemoteDtmf
    | SipInfoReceived
    | SipInfoResult
    | SipMessageReceived
    | SipMessageResult
    | SipReferResult
    | SipTransferProgress
    | SipReferReceived
    | SipReplacingInvite
    | TransferOutcome
    | ReplacedByTransfer
)
MediaEvent = (
    MediaSipOfferReady
    | MediaWebAnswerReady
    | MediaWebOfferReady
    | MediaWebReofferReady
    | MediaSipAnswerReady
    | MediaPickupReady
    | MediaConnected
    | MediaFailed
    | MediaInactive
    | MediaWebLost
    | MediaWebRenewed
    | MediaWebReofferAnswered
    | MediaWebReofferRefused
    | MediaWebDtmf
    | MediaDtmfUnsent
)
Event = WebEvent | SipEvent | MediaEvent | TimerFired | GatewayStopping | TakenOver

WEB_EVENTS: tuple[type[WebEvent], ...] = (
    WebDial,
    WebAccept,
    WebReject,
    WebOfferWanted,
    WebSdpAnswer,
    WebHangup,
    WebHold,
    WebResume,
    WebDtmf,
    WebInfo,
    WebMessage,
    WebDisconnected,
    WebTransfer,
    WebDetached,
    WebReattach,
    WebReoffer,
)
SIP_EVENTS: tuple[type[SipEvent], ...] = (
    SipIncomingInvite,
    SipProvisional,
    SipAccepted,
    SipFailed,
    SipCancelled,
    SipByeReceived,
    SipReinviteReceived,
    SipReinviteResult,
    SipAckReceived,
    SipLegClosed,
    RemoteDtmf,
    SipInfoReceived,
    SipInfoResult,
    SipMessageReceived,
    SipMessageResult,
    SipReferResult,
    SipTransferProgress,
    SipReferReceived,
    TransferOutcome,
    ReplacedByTransfer,
    SipReplacingInvite,
)
MEDIA_EVENTS: tuple[type[MediaEvent], ...] = (
    MediaSipOfferReady,
    MediaWebAnswerReady,
    MediaWebOfferReady,
    MediaSipAnswerReady,
    MediaPickupReady,
    MediaConnected,
    MediaFailed,
    MediaInactive,
    MediaWebLost,
    MediaWebRenewed,
    MediaWebReofferReady,
    MediaWebReofferAnswered,
    MediaWebReofferRefused,
    MediaWebDtmf,
    MediaDtmfUnsent,
)
EVENT_TYPES: tuple[type[Event], ...] = (
    *WEB_EVENTS, *SIP_EVENTS, *MEDIA_EVENTS, TimerFired, GatewayStopping, TakenOver,
)  # fmt: skip
