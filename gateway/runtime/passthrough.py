"""`PassthroughMedia`: a web user's call whose route says `media: passthrough` (gateway/config/routes.py).

The SIP side is a WebRTC endpoint itself, so the gateway carries no media: the browser's offer goes into
the INVITE unchanged and the SIP side's answer back to the browser unchanged; ICE and DTLS-SRTP run
browser <-> peer. No RTP port, no aiortc leg, no fast lane. It stands where the `MediaBridge` stands in
`CallRuntime`: both are the runtime's `CallMedia` (gateway/runtime/call_media.py), so the call machine
is the one of every other call. The browser's own new offer mid-call (`offer {call_id, sdp}`: an ICE
restart after its network changed, or its camera added or dropped) goes to the SIP side as it is in a
re-INVITE, and the SIP side's answer back to the browser as it is (issue 34: the ICE restart in place of
a pass-through call is the two ends' own). What needs a media leg of the gateway's (a new web leg, an
ICE restart answered by the gateway, a tap) is refused here with `PassthroughError`. A re-offer
of the SIP side's that changes the ICE session or the DTLS association (a WebRTC far end restarting ICE;
in a peer-to-peer web-to-web call, the other page's ICE restart or new connection) goes to the browser
as it is (`reoffer_web_for_sip`), its answer into the 200, and so does one that holds or resumes the call
(a=sendonly/inactive, then sendrecv: the browser answers recvonly and stops sending, RFC 3264 §8.4); any
other (a refresh) is answered at once with the browser's description, in the direction the offer allows
(`update_from_sip`). When the
instance dies the media flows end to end and outlives it: a survivor takes the signaling over
(`handover`, `resume_sip`: runtime/continuity/takeover.py).

Trickle ICE (RFC 8840, the trickle-ice Info Package of RFC 6086): the INVITE says `Recv-Info:
trickle-ice` and `Supported: trickle-ice` (§4); the browser's trickled candidates (JSON `ice`) go to the
SIP side as INFO with `Info-Package: trickle-ice` and an `application/trickle-ice-sdpfrag` body (§5, §9)
once the SIP side answered: in the early dialog when an 18x carried its answer and named the package in
Recv-Info (§4.1), else once the dialog is established (the runtime holds them until then); the SIP
side's INFO fragments, early ones too, become `ice` events for the browser (`browser_candidates`).

Calls *to* web users are passed through the same way when the caller's route says so and its offer
is WebRTC's (driver.passthrough): the INVITE's offer goes to the browser unchanged, the browser's answer
into the 200 (with `Recv-Info`/`Supported: trickle-ice`, and in the 180 already, so the caller may
trickle in the early dialog: the runtime keeps those candidates until the browser has the offer), and
the browser's trickled candidates go as INFO once the ACK confirmed the dialog (held until then).

This module owns the pass-through kind of `CallMedia`; it imports `sdp` and the media package's errors
and types only.

A pickup (an INVITE with Replaces naming the web user's ringing call, RFC 3891 §3) brings the media
back, as FreeSWITCH's `bypass_media` and Asterisk's `direct_media` do: the call's runtime hands the
browser's still unanswered offer (`offer_for_pickup`) to a `MediaBridge` of its own, which answers the
picking phone and the browser (runtime/media_side.py). Once a far end's 18x answered the browser (early
media) the browser's session is that far end's and the pickup is refused 488.

Not yet: the web user's own hold muting anything: our hold or resume re-INVITE carries the browser's
description with the direction changed, but the browser's media flows to the far end whatever the
gateway says.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import sdp
from gateway.media.bridge_settings import BridgeStats
from gateway.media.bridge_state import AudioFilter
from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.errors import DtmfError, MediaError
from gateway.media.rtp.packet import RtpPacket

logger = logging.getLogger(__name__)

TRICKLE_PACKAGE = "trickle-ice"
INVITE_HEADERS = (("Recv-Info", TRICKLE_PACKAGE), ("Supported", TRICKLE_PACKAGE))  # RFC 8840 §4.1
INFO_HEADERS = (("Info-Package", TRICKLE_PACKAGE),)  # RFC 6086 §4.2.1, RFC 8840 §5.3

InfoSender = Callable[[str, str, Sequence[tuple[str, str]]], None]  # content type, body, headers
_SETUP = re.compile(r"^a=setup:actpass(?=\r?$)", re.MULTILINE)
_DIRECTION = re.compile(r"^a=(sendrecv|sendonly|recvonly|inactive)\r?$", re.MULTILINE)
_ORIGIN = re.compile(r"^o=[^\r\n]*", re.MULTILINE)


Transport = tuple[str | None, str | None, frozenset[str]]  # ICE ufrag, pwd; DTLS fingerprints


def _holds(description: sdp.SessionDescription) -> bool:
    """Whether an offer puts its receiver on hold: no active stream of it receives (RFC 3264 §8.4)."""
    active = [i for i, media in enumerate(description.media) if media.port != 0]
    return bool(active) and not any(description.effective_direction(i).receives for i in active)


def _answering(description: str, offered: sdp.Direction | None, held: bool) -> str:
    """``description`` (the browser's) as an answer to an offer of direction ``offered`` (None: as it
    is): each direction line kept to what that offer allows (RFC 3264 §6.1: sendonly is answered
    recvonly or inactive), and receiving nothing while the web user holds (§8.4: sendrecv -> sendonly,
    recvonly -> inactive)."""

    def direction(match: re.Match[str]) -> str:
        value = sdp.Direction(match[1])
        if offered is not None:
            value = value.limited_to(offered.reversed())
        return f"a={value.on_hold().value if held else value.value}"

    return _DIRECTION.sub(direction, description)


def _transport(description: sdp.SessionDescription) -> Transport | None:
    """The ICE session and DTLS association a description's first m-line speaks for (None: no media); the
    fingerprints as a set, their case made one (a far end may write them otherwise from one offer to the
    next: that changes nothing)."""
    if not description.media:
        return None
    ice, dtls = description.ice_for(0), description.dtls_for(0)
    fingerprints = (
        frozenset(f"{f.algorithm.lower()} {f.value.upper()}" for f in dtls.fingerprints)
        if dtls
        else frozenset()
    )
    return (ice.ufrag if ice else None, ice.pwd if ice else None, fingerprints)


class PassthroughError(MediaError):
    """What a pass-through call cannot do (the call machine hears `MediaFailed`, with `sip_status` when
    the SIP side is to be told one)."""

    def __init__(self, message: str, sip_status: int | None = None) -> None:
        super().__init__(message)
        self.sip_status = sip_status


NO_WEB_LEG = "a pass-through call cannot change its web leg"
HANDOVER_KIND = "passthrough"  # the `kind` of a pass-through call's media in a handover


class PassthroughMedia:
    passes_through: ClassVar[bool] = True
    invite_headers: ClassVar[tuple[tuple[str, str], ...]] = INVITE_HEADERS  # RFC 8840 §4.1
    video: ClassVar[None] = None  # the browser's video is the far end's: no picture_fast_update of ours
    audio_up: ClassVar[bool] = False  # no audio of the call's goes through the gateway to hear
    audio_filter: AudioFilter | None = None  # (never called)

    def __init__(self, call_id: str, send_info: InfoSender) -> None:
        self.call_id = call_id
        self._send_info = send_info
        self._web_offer: str | None = None
        self._web_answered = False  # the browser has an answer (the SIP side's, passed on)
        self._web_ice: sdp.IceParameters | None = None
        self._web_mids: tuple[str, ...] = ()
        self._sip_mids: tuple[str, ...] = ()
        self._browser_setup = "passive"  # the browser's DTLS role once the SIP side answered (RFC 5763 §5)
        self._reoffer: str | None = None
        self._held = False  # our last re-INVITE that the SIP side took held it (reoffer_to_sip)
        self._hold_asked: bool | None = None  # what the re-INVITE out asks for
        self._sip_held = False  # the SIP side's last offer held us: no stream of it receives (§8.4)
        # RFC 3264 §8: every description we send the SIP side keeps the first one's o= line (username,
        # session id, address) with its version raised at each offer: a browser's new RTCPeerConnection
        # (a reattach) has an o= of its own
        self._origin: sdp.Origin | None = None
        # while the browser's own new offer is at the SIP side: its description before (a refusal)
        self._before_reoffer: tuple[str | None, sdp.IceParameters | None, tuple[str, ...]] | None = None
        self._origin_before: sdp.Origin | None = None
        # ...and the trickle INFOs sent meanwhile: sent again once the SIP side took the offer (a 491's
        # retry: the far end rolled the first attempt back, and with it the candidates of its ufrag)
        self._trickled_meanwhile: list[str] = []
        # the SIP side's ICE session and DTLS association (`_transport`) as last negotiated, and its
        # re-offer that changes them while the browser is asked (reoffer_web_for_sip)
        self._sip_transport: Transport | None = None
        self._sip_reoffer: tuple[str, Transport] | None = None
        self.closed = False
        self.candidates_sent = 0
        self.candidates_received = 0

    def __repr__(self) -> str:
        return f"<PassthroughMedia {self.call_id}>"

    # --- descriptions ------------------------------------------------------------------------------
    async def offer_to_sip(self, web_offer: str) -> str:
        """The browser's offer, as it is, for the INVITE (parsed only to learn its ICE credentials and
        mids for the sdpfrag bodies; an unreadable one is refused like any other)."""
        self._origin = self._take_web_offer(web_offer).origin
        logger.info("call=%s media pass-through: the browser's offer goes to the SIP side", self.call_id)
        return web_offer

    async def answer_from_sip(self, sip_answer: str) -> str:
        self._take_sip_answer(sip_answer)
        self._web_answered = True
        return sip_answer

    def _take_web_offer(self, web_offer: str) -> sdp.SessionDescription:
        description = sdp.parse(web_offer)
        self._web_offer = web_offer
        self._web_ice = description.ice_for(0)
        self._web_mids = tuple(m.mid or str(i) for i, m in enumerate(description.media))
        return description

    def _stamped(self, description: str, *, offer: bool) -> str:
        """``description`` with the o= line of the SIP side's session, its version raised for an offer."""
        if self._origin is None:
            return description
        if offer:
            self._origin = self._origin.next_version()
        origin = f"o={self._origin}"
        return _ORIGIN.sub(lambda _: origin, description, count=1)

    def _take_sip_answer(self, sip_answer: str) -> None:
        description = sdp.parse(sip_answer)
        self._sip_mids = tuple(m.mid or str(i) for i, m in enumerate(description.media))
        self._sip_transport = _transport(description)
        setup = description.media[0].setup if description.media else None
        self._browser_setup = "active" if setup is sdp.Setup.PASSIVE else "passive"

    @property
    def awaiting_reanswer(self) -> bool:
        return self._reoffer is not None

    async def reoffer_to_sip(self, hold: bool, *, full: bool = False) -> str:
        """A hold/resume re-INVITE: the browser's description with a=sendonly or a=sendrecv."""
        if self._web_offer is None:
            raise PassthroughError("no browser description to offer again")
        direction = "a=sendonly" if hold else "a=sendrecv"
        offer = self._stamped(_DIRECTION.sub(direction, self._web_offer), offer=True)
        self._reoffer, self._hold_asked = offer, hold
        return offer

    async def answer_to_reoffer(self, sip_answer: str) -> None:
        self._reoffer = None
        with contextlib.suppress(sdp.SdpError):  # (what it says of the transport only: the hold stands)
            self._sip_transport = _transport(sdp.parse(sip_answer))
        if self._hold_asked is not None:
            self._held, self._hold_asked = self._hold_asked, None

    def drop_reoffer(self) -> None:
        self._reoffer, self._hold_asked = None, None

    async def update_from_sip(self, sip_offer: str) -> str:
        """A re-INVITE or UPDATE from the SIP side that the browser is not asked about (a session
        refresh; an early UPDATE; any re-offer to an HTTP API client, which only ever offers): the
        browser's description again as an answer, with the DTLS role it took (a=setup:active/passive,
        never actpass in an answer, RFC 5763 §5) and the direction that offer allows (a hold is answered
        recvonly, RFC 3264 §6.1, though only the browser could stop its media); a change of media the
        browser never saw is not negotiated with it."""
        if self._web_offer is None:
            raise PassthroughError("no browser description to answer with")
        offered: sdp.Direction | None = None
        with contextlib.suppress(sdp.SdpError):
            description = sdp.parse(sip_offer)
            self._sip_transport, self._sip_held = _transport(description), _holds(description)
            active = [i for i, media in enumerate(description.media) if media.port != 0]
            offered = description.effective_direction(active[0]) if active else None
        answer = _SETUP.sub(f"a=setup:{self._browser_setup}", self._web_offer)
        return self._stamped(_answering(answer, offered, self._held), offer=False)

    async def offer_to_web(self, sip_offer: str | None, family: str | None = None) -> str:
        """A call to the web user: the SIP side's WebRTC offer goes to the browser as it is (the driver
        chose pass-through only for an offer with ICE and DTLS-SRTP; a late offer cannot be passed)."""
        if sip_offer is None:
            raise PassthroughError("an INVITE without an offer cannot be passed through")
        description = sdp.parse(sip_offer)
        self._sip_mids = tuple(m.mid or str(i) for i, m in enumerate(description.media))
        self._sip_transport, self._sip_held = _transport(description), _holds(description)
        logger.info("call=%s media pass-through: the SIP side's offer goes to the browser", self.call_id)
        return sip_offer

    async def answer_from_web(self, web_answer: str) -> str:
        """The browser's answer, as it is, for the 200 (its ICE credentials and mids kept for the sdpfrag
        bodies of its trickled candidates; its a=setup:active/passive is its DTLS role from now on)."""
        self._origin = self._take_web_answer(web_answer).origin
        return web_answer

    def _take_web_answer(self, web_answer: str) -> sdp.SessionDescription:
        description = self._take_web_offer(web_answer)
        setup = description.media[0].setup if description.media else None
        self._browser_setup = "passive" if setup is sdp.Setup.PASSIVE else "active"
        return description

    def offer_for_pickup(self) -> str:
        """The browser's offer of the web user's ringing call, for the media leg of the gateway's that a
        pickup brings in (RFC 3891 §3; runtime/media_side.py): it is still unanswered, so that leg may
        answer it. ``PassthroughError`` (488) once a far end's 18x answered it: the browser's session is
        that far end's (early media), and the picking phone hears 488 while the call rings on."""
        if self._web_offer is None:
            raise PassthroughError("no browser offer to pick up", 488)
        if self._web_answered:
            raise PassthroughError("the browser's offer was answered by the far end's early media", 488)
        return self._web_offer

    async def pickup_from_sip(self, plain_offer: str | None) -> tuple[str, str]:
        """Never answered here: a pickup brings the media back into a bridge (``offer_for_pickup``)."""
        raise PassthroughError("a pass-through call is picked up by a media leg of the gateway's", 488)

    # --- what needs a media leg of the gateway's -------------------------------------------------------
    def take_web_offer(self, web_offer: str) -> bool:
        raise PassthroughError("a pass-through call has no answer before the SIP side's")

    async def sip_offer(self) -> str:
        raise PassthroughError("a pass-through call has no SIP offer of its own")

    async def answer_web_first(self) -> str:
        raise PassthroughError("a pass-through call has no answer before the SIP side's")

    async def reoffer_web_for_sip(self, plain_offer: str) -> str | None:
        """The SIP side's re-offer, for the browser as it is when it changes the ICE session or the DTLS
        association (new ICE credentials: an ICE restart, RFC 8839 §4.4.1.1.1; a new fingerprint: a new
        association, RFC 8842 §5), or holds or resumes the call (a=sendonly/inactive, then a=sendrecv:
        RFC 3264 §8.4): the media is the browser's with the far end, and only the browser can take that
        (a peer-to-peer call's other page renewing its connection, a WebRTC far end restarting ICE or
        putting the call on hold: the browser's answer says recvonly and it stops sending). None for any
        other re-offer (a session refresh): answered at once (update_from_sip)."""
        description = sdp.parse(plain_offer)
        seen, holds = _transport(description), _holds(description)
        if self._web_offer is None or seen is None:
            return None
        if self._sip_transport in (None, seen) and holds == self._sip_held:
            return None
        self._sip_reoffer = (plain_offer, seen)
        what = "new ICE or DTLS" if self._sip_transport not in (None, seen) else "hold" if holds else "resume"
        logger.info("call=%s media pass-through: the SIP side's %s goes to the browser", self.call_id, what)
        return plain_offer

    async def reanswer_from_web(self, web_answer: str) -> str | None:
        """The browser's answer to that re-offer, for the 200: its o= version raised, the hold kept."""
        if self._sip_reoffer is None:
            return None  # no re-offer of the SIP side's went to the browser
        offer, seen = self._sip_reoffer
        self._sip_reoffer = None
        self._take_web_answer(web_answer)
        description = sdp.parse(offer)
        self._sip_transport, self._sip_held = seen, _holds(description)
        self._sip_mids = tuple(m.mid or str(i) for i, m in enumerate(description.media))
        return self._stamped(_answering(web_answer, None, self._held), offer=True)

    async def cancel_web_reoffer(self) -> None:
        self._sip_reoffer = None

    async def reoffer_sip_for_web(self, web_offer: str) -> str:
        """The browser's own new offer mid-call (an ICE restart after its network changed: new ICE
        credentials, RFC 8839 §4.4.1.1.1; its camera added or dropped) goes to the SIP side as it is, in
        our re-INVITE: the ICE session and the media are the far end's. Its candidates trickled from now
        on carry the new credentials (RFC 8840 §9), so they are taken at once; the previous description
        is kept to answer with if the SIP side refuses (``cancel_sip_reoffer``)."""
        previous = (self._web_offer, self._web_ice, self._web_mids)
        self._take_web_offer(web_offer)
        self._before_reoffer = previous
        self._trickled_meanwhile = []
        self._origin_before = self._origin
        logger.info("call=%s media pass-through: the browser's new offer goes to the SIP side", self.call_id)
        held = _DIRECTION.sub("a=sendonly", web_offer) if self._held else web_offer  # the hold stays
        return self._stamped(held, offer=True)

    async def answer_web_reoffer(self, plain_answer: str) -> str | None:
        """The SIP side's 2xx answer to the browser's new offer, as it is, for the browser (its
        a=setup:active/passive is the DTLS role from now on)."""
        self._before_reoffer = None
        self._take_sip_answer(plain_answer)
        again, self._trickled_meanwhile = self._trickled_meanwhile, []
        for body in again:  # (a duplicate candidate is no harm: RFC 8838 §11.4)
            self._send_info(sdp.TRICKLE_MEDIA_TYPE, body, INFO_HEADERS)
        return plain_answer

    def cancel_sip_reoffer(self) -> None:
        """The SIP side refused the browser's new offer: the session stays as it was (RFC 3261 §14.1)."""
        self._trickled_meanwhile = []
        if self._before_reoffer is not None:
            self._web_offer, self._web_ice, self._web_mids = self._before_reoffer
            self._before_reoffer = None
            self._origin = self._origin_before

    def restart_web_ice(self, remote: sdp.IceParameters) -> sdp.TrickleFragment:
        raise PassthroughError("a pass-through call has no ICE session of the gateway's")

    async def restart_from_web(self, web_offer: str) -> str | None:
        return None  # the ICE session is the far end's: the re-offer goes its usual way

    async def detach_web(self) -> None:
        """The browser's session went (reconnect grace): nothing of ours to close, the media (if the
        browser still has it) flows end to end; its `reattach` offer goes to the far end (re-INVITE)."""
        logger.info("call=%s media pass-through: the browser went, its media is the far end's", self.call_id)

    async def renew_web(self, web_offer: str) -> str:
        raise PassthroughError(NO_WEB_LEG)

    def handover(self) -> dict[str, Any] | None:
        """What a survivor needs to carry the call's signaling on when this instance dies (issue 34): the
        browser's description (which the media still flows by, end to end: it outlives this instance),
        the mids of both sides, the DTLS role the browser took, the holds (ours and the SIP side's), and
        the o= line of the session we speak to the SIP side in. None while a change is under way (a re-INVITE out)."""
        if self._web_offer is None or self._reoffer is not None or self._before_reoffer is not None:
            return None
        if self._sip_reoffer is not None:
            return None
        return {
            "kind": HANDOVER_KIND,
            "web": self._web_offer,
            "web_mids": list(self._web_mids),
            "sip_mids": list(self._sip_mids),
            "browser_setup": self._browser_setup,
            "held": self._held,
            "sip_held": self._sip_held,
            "origin": None if self._origin is None else str(self._origin),
        }

    async def resume_sip(self, data: Mapping[str, Any]) -> str:
        """Carry on here the call another instance handed over (`handover`): the description for the
        survivor's re-INVITE to the SIP side, which moves the dialog here (a target refresh) and changes
        nothing else: the browser's description as before, its settled DTLS role instead of actpass
        (RFC 8842 §5.5: the association goes on), the o= version raised only when that changed the
        text (RFC 3264 §8). ``PassthroughError`` for a handover that cannot be read."""
        try:
            web, setup = str(data["web"]), str(data["browser_setup"])
            web_mids = tuple(str(m) for m in data["web_mids"])
            sip_mids = tuple(str(m) for m in data["sip_mids"])
            origin = sdp.Origin.parse(str(data["origin"])) if data.get("origin") else None
            held, sip_held = bool(data["held"]), bool(data.get("sip_held", False))  # (older: none)
            description = sdp.parse(web)
        except (KeyError, TypeError, ValueError, sdp.SdpError) as exc:
            raise PassthroughError(f"the pass-through handover cannot be read: {exc}") from None
        if setup not in ("active", "passive"):
            raise PassthroughError(f"the pass-through handover's browser_setup: {setup!r}")
        self._web_offer, self._web_ice, self._web_mids = web, description.ice_for(0), web_mids
        self._sip_mids, self._browser_setup, self._held, self._origin = sip_mids, setup, held, origin
        self._sip_held = sip_held
        offer = _SETUP.sub(f"a=setup:{setup}", web)
        offer = _DIRECTION.sub("a=sendonly", offer) if held else offer
        logger.info("call=%s media pass-through: taken over, the SIP side asked to send here", self.call_id)
        # the browser's offer said actpass where this says its role: a changed description (RFC 3264 §8);
        # its answer (a call to the browser) said the role already: the same session, the same version
        return self._stamped(offer, offer=_SETUP.search(web) is not None)

    def send_text(self, text: str) -> bool:
        return False  # no data channel of the gateway's: the text goes to the session only

    def send_dtmf(self, digits: str, to: object, *, duration_ms: int = 100) -> None:
        raise DtmfError("no media bridge in a pass-through call: DTMF goes as SIP INFO")

    @property
    def sip_audio(self) -> LegCodecs | None:
        return None

    def add_tap(self, key: str, tap: Callable[[RtpPacket], None], closed: Callable[[], None]) -> None:
        raise PassthroughError("a pass-through call's media does not go through the gateway")

    def remove_tap(self, key: str) -> None:
        pass

    def stats(self) -> BridgeStats | None:
        return None  # no media figures: the gateway carried none

    @property
    def web_present(self) -> bool:
        return True  # (the browser's media is the far end's business)

    def orphan(self) -> None:
        pass  # (no media of ours to carry on)

    def quality(self) -> dict[str, dict[str, object]] | None:
        return None

    # --- trickle ICE -------------------------------------------------------------------------------
    async def add_web_candidate(self, candidate: sdp.IceCandidateInit) -> None:
        """A browser candidate (None candidate: end of candidates) to the SIP side in an INFO."""
        mid = candidate.sdp_mid
        if mid is None:
            index = candidate.sdp_mline_index or 0
            mid = self._web_mids[index] if index < len(self._web_mids) else str(index)
        ice = self._web_ice
        if candidate.username_fragment is not None and (
            ice is None or ice.ufrag != candidate.username_fragment
        ):
            ice = None  # RFC 8840 §9: credentials only when we know the password that goes with them
        end = candidate.candidate is None
        media = sdp.TrickleMedia(mid, () if end else (candidate.candidate,), end)  # type: ignore[arg-type]
        body = sdp.encode_sdpfrag(sdp.TrickleFragment(ice, (media,)))
        self.candidates_sent += 0 if end else 1
        self._send_info(sdp.TRICKLE_MEDIA_TYPE, body, INFO_HEADERS)
        if self._before_reoffer is not None:  # the browser's new offer is still at the SIP side
            self._trickled_meanwhile.append(body)

    def sip_trickle(self, body: str) -> list[sdp.IceCandidateInit] | None:
        """CallMedia: the SIP side's trickle INFO is this media's (`browser_candidates`)."""
        return self.browser_candidates(body)

    def browser_candidates(self, body: str) -> list[sdp.IceCandidateInit]:
        """An INFO fragment from the SIP side as the browser's candidates (end: a None candidate).
        A malformed fragment raises `sdp.SdpParseError` (the INFO was already answered 200)."""
        fragment = sdp.decode_sdpfrag(body)
        ufrag = fragment.ice.ufrag if fragment.ice is not None else None
        result: list[sdp.IceCandidateInit] = []
        for media in fragment.media:
            index = self._sip_mids.index(media.mid) if media.mid in self._sip_mids else None
            for candidate in media.candidates:
                result.append(sdp.IceCandidateInit(candidate, media.mid, index, ufrag))
            if media.end_of_candidates or fragment.end_of_candidates:
                result.append(sdp.IceCandidateInit(None, media.mid, index, ufrag))
        self.candidates_received += sum(1 for c in result if c.candidate is not None)
        return result

    async def close(self) -> None:
        self.closed = True
