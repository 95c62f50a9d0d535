"""`PassthroughMedia`: a web user's call whose route says `media: passthrough` (gateway/config/routes.py).

The SIP side is a WebRTC endpoint itself, so the gateway carries no media: the browser's offer goes into
the INVITE unchanged and the SIP side's answer back to the browser unchanged; ICE and DTLS-SRTP run
browser <-> peer. No RTP port, no aiortc leg, no fast lane. It stands where the `MediaBridge` stands in
`CallRuntime` (the same methods, the same results), so the call machine is the one of every other call.

Trickle ICE (RFC 8840, the trickle-ice Info Package of RFC 6086): the INVITE says `Recv-Info:
trickle-ice` and `Supported: trickle-ice` (§4); the browser's trickled candidates (JSON `ice`) go to the
SIP side as INFO with `Info-Package: trickle-ice` and an `application/trickle-ice-sdpfrag` body (§5, §9)
once the dialog is established (the runtime holds them until the answer came); the SIP side's INFO
fragments become `ice` events for the browser (`browser_candidates`).

Calls *to* web users are passed through the same way when the caller's route says so and its offer
is WebRTC's (driver.passthrough): the INVITE's offer goes to the browser unchanged, the browser's answer
into the 200 (with `Recv-Info`/`Supported: trickle-ice`), and the browser's trickled candidates go as
INFO once the ACK confirmed the dialog (the runtime holds them until then).

Not yet: a hold that mutes anything: a hold or resume re-INVITE carries the browser's description with
the direction changed, but the media itself flows between the two ends whatever the gateway says.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

import sdp
from gateway.media.errors import DtmfError, MediaError

logger = logging.getLogger(__name__)

TRICKLE_PACKAGE = "trickle-ice"
INVITE_HEADERS = (("Recv-Info", TRICKLE_PACKAGE), ("Supported", TRICKLE_PACKAGE))  # RFC 8840 §4.1
INFO_HEADERS = (("Info-Package", TRICKLE_PACKAGE),)  # RFC 6086 §4.2.1, RFC 8840 §5.3

InfoSender = Callable[[str, str, Sequence[tuple[str, str]]], None]  # content type, body, headers
_SETUP = re.compile(r"^a=setup:actpass(?=\r?$)", re.MULTILINE)
_DIRECTION = re.compile(r"^a=(sendrecv|sendonly|recvonly|inactive)\r?$", re.MULTILINE)


class PassthroughError(MediaError):
    """What a pass-through call cannot do (the call machine hears `MediaFailed`)."""


class PassthroughMedia:
    def __init__(self, call_id: str, send_info: InfoSender) -> None:
        self.call_id = call_id
        self._send_info = send_info
        self._web_offer: str | None = None
        self._web_ice: sdp.IceParameters | None = None
        self._web_mids: tuple[str, ...] = ()
        self._sip_mids: tuple[str, ...] = ()
        self._browser_setup = "passive"  # the browser's DTLS role once the SIP side answered (RFC 5763 §5)
        self._reoffer: str | None = None
        self.closed = False
        self.candidates_sent = 0
        self.candidates_received = 0

    def __repr__(self) -> str:
        return f"<PassthroughMedia {self.call_id}>"

    # --- descriptions ------------------------------------------------------------------------------
    async def offer_to_sip(self, web_offer: str) -> str:
        """The browser's offer, as it is, for the INVITE (parsed only to learn its ICE credentials and
        mids for the sdpfrag bodies; an unreadable one is refused like any other)."""
        description = sdp.parse(web_offer)
        self._web_offer = web_offer
        self._web_ice = description.ice_for(0)
        self._web_mids = tuple(m.mid or str(i) for i, m in enumerate(description.media))
        logger.info("call=%s media pass-through: the browser's offer goes to the SIP side", self.call_id)
        return web_offer

    async def answer_from_sip(self, sip_answer: str) -> str:
        description = sdp.parse(sip_answer)
        self._sip_mids = tuple(m.mid or str(i) for i, m in enumerate(description.media))
        setup = description.media[0].setup if description.media else None
        self._browser_setup = "active" if setup is sdp.Setup.PASSIVE else "passive"
        return sip_answer

    @property
    def awaiting_reanswer(self) -> bool:
        return self._reoffer is not None

    async def reoffer_to_sip(self, hold: bool, *, full: bool = False) -> str:
        """A hold/resume re-INVITE: the browser's description with a=sendonly or a=sendrecv."""
        if self._web_offer is None:
            raise PassthroughError("no browser description to offer again")
        direction = "a=sendonly" if hold else "a=sendrecv"
        offer = _DIRECTION.sub(direction, self._web_offer)
        self._reoffer = offer
        return offer

    async def answer_to_reoffer(self, sip_answer: str) -> None:
        self._reoffer = None

    def drop_reoffer(self) -> None:
        self._reoffer = None

    async def update_from_sip(self, sip_offer: str) -> str:
        """A re-INVITE or UPDATE from the SIP side (a session refresh): the browser's description again
        as an answer, with the DTLS role it took (a=setup:active/passive, never actpass in an answer,
        RFC 5763 §5); a change of media the browser never saw is not negotiated with it (not yet)."""
        if self._web_offer is None:
            raise PassthroughError("no browser description to answer with")
        return _SETUP.sub(f"a=setup:{self._browser_setup}", self._web_offer)

    async def offer_to_web(self, sip_offer: str | None, family: str | None = None) -> str:
        """A call to the web user: the SIP side's WebRTC offer goes to the browser as it is (the driver
        chose pass-through only for an offer with ICE and DTLS-SRTP; a late offer cannot be passed)."""
        if sip_offer is None:
            raise PassthroughError("an INVITE without an offer cannot be passed through")
        description = sdp.parse(sip_offer)
        self._sip_mids = tuple(m.mid or str(i) for i, m in enumerate(description.media))
        logger.info("call=%s media pass-through: the SIP side's offer goes to the browser", self.call_id)
        return sip_offer

    async def answer_from_web(self, web_answer: str) -> str:
        """The browser's answer, as it is, for the 200 (its ICE credentials and mids kept for the sdpfrag
        bodies of its trickled candidates; its a=setup:active/passive is its DTLS role from now on)."""
        description = sdp.parse(web_answer)
        self._web_offer = web_answer
        self._web_ice = description.ice_for(0)
        self._web_mids = tuple(m.mid or str(i) for i, m in enumerate(description.media))
        setup = description.media[0].setup if description.media else None
        self._browser_setup = "passive" if setup is sdp.Setup.PASSIVE else "active"
        return web_answer

    def send_dtmf(self, digits: str, to: object, *, duration_ms: int = 100) -> None:
        raise DtmfError("no media bridge in a pass-through call: DTMF goes as SIP INFO")

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
