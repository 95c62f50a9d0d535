"""The media bridge's states (gateway/media/bridge.py): IDLE -> AWAITING_SIP_ANSWER or AWAITING_WEB_ANSWER
-> ACTIVE -> CLOSED, and the error an illegal call raises. WEB_OFFER_TAKEN lies between IDLE and
AWAITING_SIP_ANSWER when the browser is answered before our SIP offer is made (``take_web_offer``,
``answer_web_first``, then ``sip_offer``: the HTTP offer API's early answer). ``BridgeFields``: what the
bridge's parts (``bridge_setup``, ``bridge_midcall``) use of it, declared for the type checker.
``AudioFilter``: what hears each leg's audio as it comes and may replace it (an audio stream's tap)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Protocol

import sdp
from gateway.media.errors import MediaError

if TYPE_CHECKING:
    from gateway.media.bridge_settings import BridgeSettings
    from gateway.media.codecs.codec_choice import LegCodecs
    from gateway.media.rtp.packet import RtpPacket
    from gateway.media.rtp.sip_leg import SipLeg
    from gateway.media.text.text_bridge import TextBridge
    from gateway.media.video.video_bridge import VideoBridge
    from gateway.media.webrtc.webrtc_leg import WebRtcLeg


class BridgeError(MediaError):
    """A bridge method called in a state that does not allow it."""


class BridgeState(enum.Enum):
    IDLE = "idle"
    WEB_OFFER_TAKEN = "web-offer-taken"  # the browser's offer checked, the SIP leg's ports leased
    AWAITING_SIP_ANSWER = "awaiting-sip-answer"
    AWAITING_WEB_ANSWER = "awaiting-web-answer"
    ACTIVE = "active"
    CLOSED = "closed"


TRANSITIONS = frozenset(
    {
        (BridgeState.IDLE, BridgeState.AWAITING_SIP_ANSWER),
        (BridgeState.IDLE, BridgeState.WEB_OFFER_TAKEN),
        (BridgeState.WEB_OFFER_TAKEN, BridgeState.AWAITING_SIP_ANSWER),
        (BridgeState.IDLE, BridgeState.AWAITING_WEB_ANSWER),
        (BridgeState.AWAITING_SIP_ANSWER, BridgeState.ACTIVE),
        (BridgeState.AWAITING_WEB_ANSWER, BridgeState.ACTIVE),
        *((s, BridgeState.CLOSED) for s in BridgeState if s is not BridgeState.CLOSED),
    }
)


class AudioFilter(Protocol):
    """Hears each leg's audio as it comes, before the bridge forwards it, and returns what is forwarded
    instead (the same, or the audio mixed with another's): ``MediaBridge.audio_filter``, set by an audio
    stream (gateway/runtime/audio_streams), which also keeps the fast lane unlinked with a tap (its
    packets would never reach Python). ``codecs``: what the leg negotiated (None before it is known)."""

    def web(self, payload_type: int, payload: bytes, codecs: LegCodecs | None) -> tuple[int, bytes]: ...

    def sip(self, packet: RtpPacket, codecs: LegCodecs | None) -> RtpPacket: ...


class BridgeFields:
    """The fields and methods of ``MediaBridge`` that its bases ``SetupOffers`` and ``MidCallOffers`` use:
    declared here for the type checker only, set in ``MediaBridge.__init__`` and defined by the bridge
    or one of its bases."""

    audio_filter: AudioFilter | None = None  # the browser's and the SIP side's audio heard (see above)

    if TYPE_CHECKING:
        settings: BridgeSettings
        video: VideoBridge | None
        text: TextBridge | None
        _call: str
        _state: BridgeState
        _web: WebRtcLeg
        _sip: SipLeg
        _web_offer: sdp.SessionDescription | None
        _sip_offer_codecs: list[sdp.Codec] | None
        _sip_offer: sdp.SessionDescription | None
        _sip_family: str | None
        _web_answer: str | None
        _sip_local: sdp.SessionDescription | None
        _sip_version: int
        _reoffer: tuple[sdp.SessionDescription, bool] | None
        _web_reoffer: tuple[str, str] | None
        _browser_reoffer: tuple[sdp.SessionDescription, sdp.SessionDescription, str] | None
        _local_hold: bool
        _web_side: LegCodecs | None

        def _set_state(self, state: BridgeState) -> None: ...
        def _expect(self, method: str, *states: BridgeState) -> None: ...
        def _configure_paths(self) -> None: ...
        def _video_codecs(self) -> list[sdp.Codec]: ...
        def _sip_offer_for(
            self, codecs: list[sdp.Codec], direction: sdp.Direction
        ) -> sdp.SessionDescription: ...
        def _stamp_sip(
            self, description: sdp.SessionDescription, *, keep: bool = True
        ) -> sdp.SessionDescription: ...
        def _apply_web(
            self, offer: sdp.MediaDescription, answer: sdp.MediaDescription, *, answering: bool
        ) -> LegCodecs: ...
