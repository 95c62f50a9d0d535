"""Events the media bridge reports to the call (frozen values), and the two leg names."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.media.errors import MediaError


class Leg(enum.StrEnum):
    WEB = "web"
    SIP = "sip"

    @property
    def other(self) -> Leg:
        return Leg.SIP if self is Leg.WEB else Leg.WEB


@dataclass(frozen=True, slots=True)
class MediaConnected:
    """The web leg's ICE and DTLS are up: SRTP flows."""


@dataclass(frozen=True, slots=True)
class MediaInactive:
    """No RTP arrived on ``leg`` for ``seconds`` while that side should send: the call can end.
    ``held``: nothing at all (no RTP nor RTCP) while none was expected (hold, silence suppression): the
    far end is gone even though the call is on hold."""

    leg: Leg
    seconds: float
    held: bool = False


class LossCause(enum.StrEnum):
    """How the browser's audio went missing (``WebMediaLost``)."""

    SILENCE = "silence"  # no RTP for media.loss_detect seconds while it should send
    DETACHED = "detached"  # its web leg was closed to wait for a reconnect (socket closed, ICE/DTLS lost)
    # it sends no audio on purpose (hold) and answered none of our ICE consent checks (RFC 7675) for
    # media.loss_detect seconds plus one check's interval
    UNANSWERED = "unanswered"


@dataclass(frozen=True, slots=True)
class WebMediaLost:
    """The browser's audio went missing (once per loss, until its audio comes back): reported (event,
    metric) and, from now on, the SIP side hears the reconnecting fill instead of dead air."""

    cause: LossCause
    seconds: float = 0.0  # how long nothing came (SILENCE, UNANSWERED)


@dataclass(frozen=True, slots=True)
class IceFailed:
    """The web leg's ICE negotiation failed, timed out, or consent was lost (RFC 7675)."""

    reason: str


@dataclass(frozen=True, slots=True)
class DtlsFailed:
    """ICE worked but the DTLS handshake failed (RFC 5763/5764): no keys for SRTP. ``leg``: the web leg's
    DTLS, or the SIP leg's (DTLS-SRTP toward a SIP peer); ``closed_by_peer``: the browser closed DTLS
    itself (close_notify: its RTCPeerConnection was closed, not lost)."""

    reason: str
    leg: Leg = Leg.WEB
    closed_by_peer: bool = False


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A DTMF digit heard as RFC 4733 telephone-events from ``leg`` (reported once, at its end)."""

    leg: Leg
    digit: str
    duration_ms: int

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in "0123456789*#ABCD!":
            raise MediaError(f"not a DTMF digit: {self.digit!r}")


@dataclass(frozen=True, slots=True)
class CodecChosen:
    """The codecs in use on each leg; ``transcoding`` is False when payloads are forwarded as they are."""

    web: str
    sip: str
    transcoding: bool


@dataclass(frozen=True, slots=True)
class KeyframeWanted:
    """The far receiver needs a keyframe from ``leg``, whose video negotiated no RTCP feedback to ask
    with: the call sends it a SIP INFO ``application/media_control+xml`` picture_fast_update (RFC 5168)."""

    leg: Leg


@dataclass(frozen=True, slots=True)
class TextReceived:
    """A text message the browser sent on one of the call's data channels (for SIP MESSAGE, RFC 3428)."""

    text: str


@dataclass(frozen=True, slots=True)
class IcePathChanged:
    """The web leg's ICE has another nominated pair: an ICE restart's (RFC 8445 §9), or one the browser
    nominated later, restart or not (§8.1.1: Chromium switches its selected pair, maybe to another of our
    sockets). The browser's media now comes from and goes to ``remote`` ("address:port") on that pair;
    DTLS and SRTP go on as they were."""

    remote: str


MediaEvent = (
    MediaConnected
    | MediaInactive
    | IceFailed
    | DtlsFailed
    | DtmfReceived
    | CodecChosen
    | KeyframeWanted
    | TextReceived
    | IcePathChanged
    | WebMediaLost
)
