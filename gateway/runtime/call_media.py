"""`CallMedia`: what the runtime asks of a call's media, whoever carries it.

Two kinds implement it: `BridgedMedia` (below: the gateway's own `MediaBridge`, both legs terminated
here) and `PassthroughMedia` (gateway/runtime/passthrough.py: the browser's and the SIP side's
descriptions pass unchanged, ICE and DTLS-SRTP run between the two ends). The runtime calls these
methods and never asks which kind it holds: what a pass-through call cannot do is refused by the
pass-through media itself (`PassthroughError`, the call machine hears `MediaFailed`), and what it does
not need is a no-op there. This module owns the interface and the bridge's side of it; it imports the
media package (below the runtime) and nothing of the runtime, so every runtime module may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import sdp
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeStats
from gateway.media.bridge_state import AudioFilter, BridgeState
from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.events import Leg
from gateway.media.rtp.packet import RtpPacket

__all__ = ["BridgedMedia", "CallMedia", "PictureUpdates"]

Headers = tuple[tuple[str, str], ...]


class PictureUpdates(Protocol):
    """The browser's video as the SIP side's picture_fast_update INFO reaches it (RFC 5168)."""

    def keyframe_from_info(self) -> object: ...


class CallMedia(Protocol):
    """One call's media as `CallRuntime` drives it (the method names are the bridge's: docs/runtime.md)."""

    # --- what kind of media this is ------------------------------------------------------------------
    @property
    def passes_through(self) -> bool:
        """True: the gateway carries none of the call's media (no web leg of its own to detach, renew,
        restart ICE on, answer before the SIP side, or tap; the browser is connected once answered)."""
        ...

    @property
    def invite_headers(self) -> Headers:
        """Headers our INVITE and our 2xx to an INVITE carry for this media (RFC 8840 §4.1)."""
        ...

    def sip_trickle(self, body: str) -> list[sdp.IceCandidateInit] | None:
        """A trickle-ice INFO fragment from the SIP side as the browser's candidates (RFC 8840 §5);
        None: this media takes no trickle INFO (the call machine hears the INFO as any other)."""
        ...

    @property
    def video(self) -> PictureUpdates | None: ...

    # --- the browser calls the SIP side --------------------------------------------------------------
    async def offer_to_sip(self, web_offer: str) -> str: ...

    def take_web_offer(self, web_offer: str) -> bool: ...

    async def sip_offer(self) -> str: ...

    async def answer_web_first(self) -> str: ...

    async def answer_from_sip(self, plain_answer: str) -> str: ...

    # --- the SIP side calls the browser --------------------------------------------------------------
    async def offer_to_web(self, plain_offer: str | None, family: str | None = None) -> str: ...

    async def answer_from_web(self, web_answer: str) -> str: ...

    def offer_for_pickup(self) -> str | None:
        """A pickup of the ringing call (RFC 3891 §3): None when this media answers it itself
        (``pickup_from_sip``); else the browser's unanswered offer, for a bridge of the gateway's that
        takes the call's media over (runtime/media_side.py); `MediaError` (488) when neither can be."""
        ...

    async def pickup_from_sip(self, plain_offer: str | None) -> tuple[str, str]: ...

    # --- offers mid-call -----------------------------------------------------------------------------
    @property
    def awaiting_reanswer(self) -> bool: ...

    async def reoffer_to_sip(self, hold: bool, *, full: bool = False) -> str: ...

    async def answer_to_reoffer(self, plain_answer: str) -> None: ...

    def drop_reoffer(self) -> None: ...

    async def update_from_sip(self, plain_offer: str) -> str: ...

    async def reoffer_web_for_sip(self, plain_offer: str) -> str | None: ...

    async def reanswer_from_web(self, web_answer: str) -> str | None:
        """The SIP answer once the browser answered our re-offer; None: there was none to answer."""
        ...

    async def cancel_web_reoffer(self) -> None: ...

    async def reoffer_sip_for_web(self, web_offer: str) -> str: ...

    async def answer_web_reoffer(self, plain_answer: str) -> str | None:
        """The browser's answer to its own re-offer; None: there was none out."""
        ...

    def cancel_sip_reoffer(self) -> None: ...

    # --- the web leg ---------------------------------------------------------------------------------
    async def add_web_candidate(self, candidate: sdp.IceCandidateInit) -> None: ...

    def restart_web_ice(self, remote: sdp.IceParameters) -> sdp.TrickleFragment: ...

    async def restart_from_web(self, web_offer: str) -> str | None:
        """The answer when the browser's re-offer restarts ICE (done in place); None: it does not."""
        ...

    async def detach_web(self) -> None: ...

    async def renew_web(self, web_offer: str) -> str: ...

    def send_text(self, text: str) -> bool: ...

    def send_dtmf(self, digits: str, to: Leg | str, *, duration_ms: int = 100) -> object: ...

    # --- the SIP leg's audio (WHEP players) ----------------------------------------------------------
    @property
    def sip_audio(self) -> LegCodecs | None: ...

    def add_tap(self, key: str, tap: Callable[[RtpPacket], None], closed: Callable[[], None]) -> None: ...

    def remove_tap(self, key: str) -> None: ...

    # --- the call's audio heard, and mixed into (audio streams: gateway/runtime/audio_streams/) -------
    audio_filter: AudioFilter | None

    @property
    def audio_up(self) -> bool:
        """Whether both legs' audio goes through the gateway now (never for pass-through media; for the
        bridge once it is active): then ``audio_filter`` hears it and a tap keeps it on the Python path."""
        ...

    # --- a call taken over when its instance dies (issue 34; gateway/media/bridge_handover.py) ---------
    def handover(self) -> dict[str, Any] | None:
        """Plain JSON another instance resumes the media from; None: nothing to hand over."""
        ...

    async def resume_sip(self, data: Mapping[str, Any]) -> str:
        """On a fresh media: the SIP leg ``handover()`` described, taken over; our re-INVITE's offer."""
        ...

    @property
    def web_present(self) -> bool:
        """Whether the browser's audio reaches this media (a pass-through's always does: it is not ours)."""
        ...

    def orphan(self) -> None:
        """Its call goes on at another instance while this media carries on for a moment (a drain's
        hand-off, made before it breaks): its events reach no call any more."""
        ...

    # --- figures and the end -------------------------------------------------------------------------
    def stats(self) -> BridgeStats | None:
        """The call's media figures (None: the gateway carried no media)."""
        ...

    def quality(self) -> dict[str, dict[str, object]] | None: ...

    async def close(self) -> None: ...


class BridgedMedia(MediaBridge):
    """A `MediaBridge` as the runtime's `CallMedia`: the gateway terminates both legs, so no header or
    INFO of the pass-through kind is involved. Only the answers to `CallMedia`'s questions are added;
    everything else is the bridge's own."""

    passes_through: ClassVar[bool] = False
    invite_headers: ClassVar[Headers] = ()

    @property
    def audio_up(self) -> bool:
        return self.state is BridgeState.ACTIVE

    def sip_trickle(self, body: str) -> list[sdp.IceCandidateInit] | None:
        return None

    def offer_for_pickup(self) -> str | None:
        return None  # the bridge answers a pickup itself
