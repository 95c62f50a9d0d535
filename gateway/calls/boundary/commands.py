"""Commands out of a call, to the SIP user agent, the media bridge, signaling and the timers.

Every command names its call. Commands for a browser also name the session to tell; they map
one to one onto the browser events: incoming, ringing, early_media, connected, held, resumed,
ended {reason, sip_status}, error {code, message, field} (plus the SDP carriers SendWebOffer and
SendWebAnswer, and StopRinging). The driver runs them in order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.calls.boundary import _checks
from gateway.calls.boundary.caller import NO_DETAILS, CallerDetails
from gateway.calls.errors import InvalidValue
from gateway.calls.reasons import EndReason
from gateway.calls.states import CallDirection, Side, TimerName
from gateway.identity.model import SipIdentity

# --- to the SIP user agent -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SipInvite:
    """Send INVITE to `target` (a SIP URI) from `identity` (AOR, display name, digest credentials)."""

    call_id: str
    target: str
    identity: SipIdentity
    sdp: str
    headers: tuple[tuple[str, str], ...] = ()  # P-Asserted-Identity toward a trusted PBX, custom headers
    direct: bool = False  # a followed redirect: to the target's own host (RFC 3263), not the PBX hop
    pbx: str | None = None  # several PBXs (config/pbxs.py): the one whose hop the INVITE goes to

    def __post_init__(self) -> None:
        _checks.text("target", self.target)
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class SipCancel:
    """Abandon our INVITE: CANCEL once a provisional response came (RFC 3261 §9.1), else stop it."""

    call_id: str


@dataclass(frozen=True, slots=True)
class SipRespond:
    """Answer the inbound INVITE (1xx, 2xx with the SIP answer, or a final failure). ``warning`` is a
    (warn-code, text) pair for a Warning header on a failure (RFC 3261 §20.43)."""

    call_id: str
    status: int
    phrase: str
    sdp: str | None = None
    warning: tuple[int, str] | None = None
    headers: tuple[tuple[str, str], ...] = ()  # on a 2xx: e.g. Recv-Info of a pass-through call (RFC 8840 §4)

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 101, 699)
        if self.warning is not None and (self.status < 300 or not 300 <= self.warning[0] <= 399):
            raise InvalidValue(f"a warning {self.warning!r} goes with a 3xx-6xx and a 3xx warn-code")
        if 200 <= self.status < 300 and self.sdp is None:
            raise InvalidValue(f"a {self.status} to an INVITE with an offer needs the SDP answer")


@dataclass(frozen=True, slots=True)
class SipBye:
    """End the confirmed dialog with BYE (the UA also ACKs-and-BYEs a 2xx that crossed a CANCEL)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class SipReinvite:
    """Send a re-INVITE with `sdp` (hold: a=sendonly, resume: a=sendrecv)."""

    call_id: str
    sdp: str

    def __post_init__(self) -> None:
        _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class SipRespondReinvite:
    """Answer the SIP party's re-INVITE; 500 carries Retry-After (RFC 3261 §14.2)."""

    call_id: str
    status: int
    phrase: str
    sdp: str | None = None
    retry_after: int | None = None

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 200, 699)
        if 200 <= self.status < 300 and self.sdp is None:
            raise InvalidValue(f"a {self.status} to a re-INVITE needs an SDP body")


@dataclass(frozen=True, slots=True)
class SipInfoDtmf:
    """Send one digit as SIP INFO, Content-Type application/dtmf-relay (Signal=, Duration=)."""

    call_id: str
    digit: str
    duration_ms: int

    def __post_init__(self) -> None:
        _checks.digit(self.digit, flash=True)  # a flash the browser's media sent goes on as it came
        _checks.duration(self.duration_ms)


# --- to the media bridge ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateBridge:
    call_id: str
    direction: CallDirection


@dataclass(frozen=True, slots=True)
class MediaOfferToSip:
    """Outbound: take the browser's offer, make the SIP offer (reply: MediaSipOfferReady)."""

    call_id: str
    web_sdp: str


@dataclass(frozen=True, slots=True)
class MediaAnswerFromSip:
    """Apply a SIP answer (early, final or to our re-INVITE); reply MediaWebAnswerReady."""

    call_id: str
    sip_sdp: str


@dataclass(frozen=True, slots=True)
class MediaOfferToWeb:
    """Inbound: take the SIP offer, make the WebRTC offer (reply: MediaWebOfferReady). Without one (an
    offerless INVITE) the browser is offered every codec of the web leg."""

    call_id: str
    sip_sdp: str | None


@dataclass(frozen=True, slots=True)
class MediaAnswerFromWeb:
    """Inbound: apply the browser's answer, make the SIP answer (reply: MediaSipAnswerReady); after an
    offerless INVITE, the SIP offer for the 200 instead (still MediaSipAnswerReady: the SDP of the 200)."""

    call_id: str
    web_sdp: str


@dataclass(frozen=True, slots=True)
class MediaSipReoffer:
    """Make a new SIP offer putting the SIP party on hold or taking it off (reply: MediaSipOfferReady).

    The bridge also stops (or resumes) forwarding between the legs for the local hold, once answered.
    `full`: offer every codec the SIP leg allows (the current one first), for the 2xx to an offerless
    re-INVITE (RFC 6337 §5.3); otherwise our last SDP with the new direction.
    """

    call_id: str
    hold: bool
    full: bool = False


@dataclass(frozen=True, slots=True)
class MediaDropReoffer:
    """Our re-offer will get no answer (the ACK had none): the session stays as it was."""

    call_id: str


@dataclass(frozen=True, slots=True)
class MediaSipUpdate:
    """Apply the SIP party's re-offer (hold, resume, new address); reply MediaSipAnswerReady."""

    call_id: str
    sip_sdp: str


@dataclass(frozen=True, slots=True)
class MediaWebReanswer:
    """The browser's answer to the new offer made for the SIP party's re-offer (video added or dropped,
    MediaWebReofferReady); reply MediaSipAnswerReady (the answer to that re-offer)."""

    call_id: str
    web_sdp: str


@dataclass(frozen=True, slots=True)
class MediaCancelWebReoffer:
    """The browser did not answer that new offer in time: the web leg goes back to what it was."""

    call_id: str


@dataclass(frozen=True, slots=True)
class MediaSipReofferFromWeb:
    """The browser's own new offer mid-call (WebReoffer, video added or dropped): our re-INVITE's offer
    to the SIP side -> MediaSipOfferReady, or MediaWebReofferRefused; the web leg is left as it is."""

    call_id: str
    web_sdp: str


@dataclass(frozen=True, slots=True)
class MediaWebAnswerFromSip:
    """The SIP side's 2xx answer to that re-INVITE: applied, the browser's offer taken by the web leg
    -> MediaWebReofferAnswered (its answer, the video as the SIP side took it)."""

    call_id: str
    sip_sdp: str


@dataclass(frozen=True, slots=True)
class MediaCancelSipReoffer:
    """The SIP side refused that re-INVITE (491, 488...): the new video's endpoint closes, nothing else
    changed."""

    call_id: str


@dataclass(frozen=True, slots=True)
class MediaSipPickup:
    """Call pickup (RFC 3891 §3): the offer of an INVITE with Replaces that takes over the web user's
    outbound call before its answer replaces our INVITE's offer; reply MediaPickupReady. ``sip_sdp`` None:
    an offerless INVITE, whose 200 carries our offer (MediaPickupReady.sip_sdp) and whose ACK the answer."""

    call_id: str
    sip_sdp: str | None


@dataclass(frozen=True, slots=True)
class SipInfo:
    """Send INFO (RFC 6086) in the call's dialog with the browser's body; its answer: SipInfoResult."""

    call_id: str
    content_type: str
    body: str


@dataclass(frozen=True, slots=True)
class SipMessage:
    """Send MESSAGE (RFC 3428, text/plain) in the call's dialog with the browser's text; its answer:
    SipMessageResult."""

    call_id: str
    body: str


@dataclass(frozen=True, slots=True)
class MediaSendText:
    """Send the SIP party's text to the browser on the call's data channel (if the browser opened one)."""

    call_id: str
    body: str


@dataclass(frozen=True, slots=True)
class MediaSendDtmf:
    """Send one digit to the SIP leg as RFC 4733 telephone-events."""

    call_id: str
    digit: str
    duration_ms: int

    def __post_init__(self) -> None:
        _checks.digit(self.digit)
        _checks.duration(self.duration_ms)


@dataclass(frozen=True, slots=True)
class MediaDetachWeb:
    """The browser is gone for now (WebDetached, MediaWebLost): close the web leg, keep the SIP leg
    and its RTP as they are (the SIP party hears silence) until MediaRenewWeb or CloseBridge."""

    call_id: str


@dataclass(frozen=True, slots=True)
class MediaRenewWeb:
    """A new web leg for the call, answering the browser's new offer `web_sdp` and bridged to the same
    SIP leg (the codec of the SIP leg first) -> MediaWebRenewed."""

    call_id: str
    web_sdp: str

    def __post_init__(self) -> None:
        _checks.text("web_sdp", self.web_sdp)


@dataclass(frozen=True, slots=True)
class CloseBridge:
    call_id: str


# --- to signaling (one browser session) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotifyIncoming:
    """`incoming`: ring this session."""

    session_id: str
    call_id: str
    from_uri: str
    from_display: str | None
    details: CallerDetails = NO_DETAILS


@dataclass(frozen=True, slots=True)
class StopRinging:
    """This session stops ringing: answered elsewhere, caller cancelled, no answer, rejected."""

    session_id: str
    call_id: str
    reason: str
    code: EndReason


@dataclass(frozen=True, slots=True)
class NotifyRinging:
    """`ringing`: the SIP party's phone rings."""

    session_id: str
    call_id: str


@dataclass(frozen=True, slots=True)
class NotifyRedirected:
    """`redirected`: the PBX redirected the call (3xx) and the gateway follows it to `target`."""

    session_id: str
    call_id: str
    target: str
    status: int

    def __post_init__(self) -> None:
        _checks.text("target", self.target)


@dataclass(frozen=True, slots=True)
class NotifyEarlyMedia:
    """`early_media`: audio flows before the answer (the web answer went with SendWebAnswer)."""

    session_id: str
    call_id: str


@dataclass(frozen=True, slots=True)
class SendWebAnswer:
    """Outbound: the WebRTC answer to the browser's offer."""

    session_id: str
    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class SendWebOffer:
    """Inbound: the WebRTC offer the answering browser must answer (WebSdpAnswer)."""

    session_id: str
    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class SendWebReofferAnswer:
    """The answer to the browser's own new offer mid-call (`answer {call_id, sdp}` event)."""

    session_id: str
    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class NotifyConnected:
    session_id: str
    call_id: str


@dataclass(frozen=True, slots=True)
class NotifyHeld:
    session_id: str
    call_id: str
    by: Side


@dataclass(frozen=True, slots=True)
class NotifyResumed:
    session_id: str
    call_id: str
    by: Side


@dataclass(frozen=True, slots=True)
class NotifyDtmf:
    """A digit from the SIP party."""

    session_id: str
    call_id: str
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class NotifyInfo:
    """`info`: an INFO body from the SIP party."""

    session_id: str
    call_id: str
    content_type: str
    body: str


@dataclass(frozen=True, slots=True)
class NotifyInfoResult:
    """`info_result`: the SIP party's answer to the browser's INFO."""

    session_id: str
    call_id: str
    status: int


@dataclass(frozen=True, slots=True)
class NotifyMessage:
    """`message {call_id, body}`: a text (SIP MESSAGE in the dialog) from the SIP party."""

    session_id: str
    call_id: str
    body: str


@dataclass(frozen=True, slots=True)
class NotifyMessageResult:
    """`message_result {call_id, status}`: the SIP party's answer to the MESSAGE carrying the browser's text."""

    session_id: str
    call_id: str
    status: int


@dataclass(frozen=True, slots=True)
class SendReattached:
    """`reattached {sdp, held_local, held_remote}`: the browser has the call back; `sdp` answers its offer
    (None: it kept its media, which flows end to end)."""

    session_id: str
    call_id: str
    sdp: str | None
    local_hold: bool = False
    remote_hold: bool = False

    def __post_init__(self) -> None:
        if self.sdp is not None:
            _checks.text("sdp", self.sdp)


@dataclass(frozen=True, slots=True)
class NotifyEnded:
    """`ended {reason, sip_status}`: the call is over for this session (sent once per session)."""

    session_id: str
    call_id: str
    reason: EndReason
    message: str
    sip_status: int | None = None


@dataclass(frozen=True, slots=True)
class NotifyError:
    """`error {code, message, field}`: a request of this session was refused."""

    session_id: str
    call_id: str
    code: str
    message: str
    field: str | None = None
    sip_status: int | None = None  # the SIP side's refusal behind it (renegotiation_failed), if any


# --- to the timers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)start timer `name`: after `seconds` the driver feeds TimerFired(name)."""

    call_id: str
    name: TimerName
    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise InvalidValue(f"timer {self.name} needs a positive delay, got {self.seconds!r}")


@dataclass(frozen=True, slots=True)
class CancelTimer:
    call_id: str
    name: TimerName


# --- call transfer (RFC 3515, RFC 3891) ----------------------------------------------------------------


class TransferState(enum.StrEnum):
    """The `state` of a `transfer` event to the browser."""

    REQUESTED = "requested"  # our REFER is out
    ACCEPTED = "accepted"  # the far end took it (202)
    PROGRESS = "progress"  # its call to the target rings (a 1xx sipfrag)
    SUCCEEDED = "succeeded"  # the target answered: the gateway ends its leg
    FAILED = "failed"  # refused, or the target did not answer: the call goes on


@dataclass(frozen=True, slots=True)
class SipRefer:
    """Send REFER in the call's dialog: Refer-To `target` (blind), or the far end of the consultation call
    `consult_call_id` with Replaces naming that call's dialog (attended, RFC 3891 §5)."""

    call_id: str
    target: str | None = None
    consult_call_id: str | None = None

    def __post_init__(self) -> None:
        if (self.target is None) == (self.consult_call_id is None):
            raise InvalidValue(f"REFER needs a target or a consultation call, got {self!r}")


@dataclass(frozen=True, slots=True)
class SipAnswerRefer:
    """Answer the SIP party's REFER: 202 Accepted, or a refusal (403 when the policy forbids the target)."""

    call_id: str
    status: int
    phrase: str

    def __post_init__(self) -> None:
        if not (self.status == 202 or 300 <= self.status <= 699):
            raise InvalidValue(f"a REFER is answered 202 or 3xx-6xx, not {self.status!r}")


@dataclass(frozen=True, slots=True)
class SipNotifyRefer:
    """NOTIFY the referrer how its referred call goes (message/sipfrag, RFC 3515 §2.4.4)."""

    call_id: str
    status: int
    phrase: str

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 100, 699)


@dataclass(frozen=True, slots=True)
class NotifyTransfer:
    """`transfer {call_id, state, sip_status, message}`: how the web user's transfer goes."""

    session_id: str
    call_id: str
    state: TransferState
    sip_status: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class NotifyTransferRequested:
    """`transfer_requested {call_id, to}`: the SIP party asks the web user to call `target` instead; the
    browser dials it (`call` with `transfer_of`), and the gateway reports that call to the referrer."""

    session_id: str
    call_id: str
    target: str


@dataclass(frozen=True, slots=True)
class SipTakeOver:
    """The INVITE with Replaces takes the call's SIP leg over (RFC 3891 §3). It is answered as the SIP
    party's re-INVITE would be (`SipRespondReinvite`); once its 2xx is out the old dialog gets BYE (or
    CANCEL, when it was our early dialog) and the new one carries the call. A refusal keeps the old leg."""

    call_id: str


@dataclass(frozen=True, slots=True)
class SipRefuseReplacing:
    """Refuse the INVITE with Replaces (491 while a re-INVITE is under way, 481 in a state it cannot
    replace); the call goes on as it was."""

    call_id: str
    status: int
    phrase: str

    def __post_init__(self) -> None:
        _checks.status("status", self.status, 400, 699)


@dataclass(frozen=True, slots=True)
class NotifyReplaced:
    """`replaced {call_id, from, display}`: the call's SIP party changed (an INVITE with Replaces, an
    attended transfer or pickup on the SIP side); the web user's media goes on."""

    session_id: str
    call_id: str
    from_uri: str
    from_display: str | None = None


SipCommand = (
    SipInvite | SipCancel | SipRespond | SipBye | SipReinvite | SipRespondReinvite | SipInfoDtmf | SipInfo
    | SipMessage | SipRefer | SipAnswerRefer | SipNotifyRefer | SipTakeOver | SipRefuseReplacing
)  # fmt: skip
MediaCommand = (
    CreateBridge
    | MediaOfferToSip
    | MediaAnswerFromSip
    | MediaOfferToWeb
    | MediaAnswerFromWeb
    | MediaSipReoffer
    | MediaDropReoffer
    | MediaSipUpdate
    | MediaWebReanswer
    | MediaCancelWebReoffer
    | MediaSipReofferFromWeb
    | MediaWebAnswerFromSip
    | MediaCancelSipReoffer
    | MediaSipPickup
    | MediaSendDtmf
    | MediaSendText
    | MediaDetachWeb
    | MediaRenewWeb
    | CloseBridge
)
SignalCommand = (
    NotifyIncoming
    | StopRinging
    | NotifyRinging
    | NotifyRedirected
    | NotifyEarlyMedia
    | SendWebAnswer
    | SendWebOffer
    | SendWebReofferAnswer
    | NotifyConnected
    | NotifyHeld
    | NotifyResumed
    | NotifyDtmf
    | NotifyInfo
    | NotifyInfoResult
    | NotifyMessage
    | NotifyMessageResult
    | NotifyEnded
    | NotifyError
    | NotifyTransfer
    | NotifyTransferRequested
    | NotifyReplaced
    | SendReattached
)
TimerCommand = StartTimer | CancelTimer
Command = SipCommand | MediaCommand | SignalCommand | TimerCommand
