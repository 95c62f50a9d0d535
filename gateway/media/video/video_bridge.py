"""The video of one call (issue 19): passed through between the web leg and a second SIP-side RTP
endpoint, never decoded; keyframe requests mapped both ways.

The ``MediaBridge`` owns one when ``BridgeSettings.video_codecs`` is set and the browser offers video:

* **SDP**: our SIP offer gets the browser's video m-line on its own port (``sdp.to_plain``: the
  browser's payload types and fmtp, codecs aiortc can also answer the browser with, no rtx/red/ulpfec,
  the RTCP feedback a SIP phone takes); the SIP answer's video codecs must fit that offer
  (``sdp.video.answered``), else the video is dropped (port 0 to the browser) and the audio goes on.
* **Media**: ``VideoPath`` per direction (payload types mapped, repair dropped, numbers rewritten);
  the SIP side's ``RtpEndpoint`` (symmetric latching, RTCP reports at 90 kHz, no inactivity rule:
  a camera may pause), the web leg's ``WebVideo``.
* **Keyframes**: the browser's PLI/FIR (or a new source on the SIP side) asks the SIP side, as its video
  negotiated (``SipRequestKind``): RTCP PLI, RTCP FIR (RFC 5104), or a ``KeyframeWanted`` event for a
  SIP INFO picture_fast_update (RFC 5168); the SIP side's PLI/FIR, its INFO (``keyframe_from_info``),
  or a new browser source asks the browser (a PLI). Each side is asked at most twice a second. A leg
  that (re)connects asks the other side for one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import sdp
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.codecs import codec_choice as choice
from gateway.media.errors import PacketError
from gateway.media.events import KeyframeWanted, Leg, MediaEvent
from gateway.media.rtp.endpoint_state import RtpEndpointConfig
from gateway.media.rtp.latch import RELATCH_PACKETS
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.rtcp import RtcpPacket
from gateway.media.rtp.rtp_endpoint import RtpEndpoint
from gateway.media.video.bandwidth import (
    MIN_USEFUL_BITRATE,
    HintRelay,
    Tmmbn,
    Tmmbr,
    TmmbrEntry,
    bandwidth_hints,
    negotiated_tmmbr,
)
from gateway.media.video.forward import VIDEO_RATE, VideoPath, VideoStats
from gateway.media.video.keyframe import (
    FullIntraRequest,
    KeyframeRequests,
    PictureLoss,
    SipRequestKind,
    keyframe_requests,
)
from gateway.media.webrtc.web_sdp import prune_offer
from gateway.media.webrtc.web_video import WebVideo, carried_codecs, video_capabilities
from gateway.media.webrtc.webrtc_leg import WebRtcLeg
from sdp import video, video_sdes
from sdp.codecs import codec_specs

__all__ = ["VideoBridge", "VideoBridgeStats"]

logger = logging.getLogger(__name__)

# The RTCP feedback the gateway does itself toward the SIP side whatever the browser took: keyframe
# requests (PLI, FIR) and, mapped to and from the browser's REMB, TMMBR (RFC 5104 §7.1)
OWN_FEEDBACK = (*video.WEB_FEEDBACK, "ccm tmmbr")


@dataclass(frozen=True, slots=True)
class VideoBridgeStats:
    web_to_sip: VideoStats
    sip_to_web: VideoStats
    keyframes_asked_web: int  # PLIs sent to the browser
    keyframes_asked_sip: int  # PLI, FIR or INFO toward the SIP side
    sip_request: str  # how the SIP side is asked: pli, fir, info
    requests_from_web: int  # the browser's PLI/FIR of our stream
    requests_from_sip: int  # the SIP side's PLI/FIR or INFO picture_fast_update
    # bandwidth hints (RFC 5104, REMB): the last limit each side asked for (bit/s), and how many were passed on
    bitrate_from_web: int | None = None  # the browser's REMB for the SIP side's stream
    bitrate_from_sip: int | None = None  # the SIP side's TMMBR for our stream
    tmmbr_sent: int = 0
    remb_sent: int = 0


class VideoBridge:
    def __init__(self, settings: BridgeSettings, on_event: Callable[[MediaEvent], None]) -> None:
        self._settings = settings
        self._call = settings.call_id
        self._clock = settings.clock
        self._on_event = on_event
        self.to_sip = VideoPath("video web->sip", call_id=self._call)
        self.to_web = VideoPath("video sip->web", call_id=self._call)
        self.endpoint: RtpEndpoint | None = None
        self._web: WebVideo | None = None
        self._offer: sdp.MediaDescription | None = None  # our video m-line to the SIP side
        self._ask_sip = KeyframeRequests()
        self._ask_web = KeyframeRequests()
        self.sip_request = SipRequestKind.INFO
        self.sip_codecs: list[sdp.Codec] = []  # what the SIP side's answer took
        self._sip_ssrc: int | None = None
        self.index: int | None = None  # of our video m-line in the SIP offer (the bridge sets it)
        self.offered: list[sdp.Codec] = []  # a SIP offer's video codecs the browser may be offered
        self._theirs: sdp.Crypto | None = None  # the SIP offer's video key we took (RFC 4568)
        self._address = ""  # ours in the SIP side's SDP
        self._web_section: sdp.MediaDescription | None = None  # the browser's video m-line (its answer)
        self.requests_from_web = self.requests_from_sip = 0
        # the browser answered before the SIP side (answer_web_first): the codec it was given
        self.tentative: list[sdp.Codec] = []
        self.crypto: sdp.Crypto | None = None  # our SDES key on the video m-line (RFC 4568), if any
        self._tmmbr = HintRelay()  # limits passed to the SIP side (TMMBR)
        self._remb = HintRelay()  # limits passed to the browser (REMB)
        self.bitrate_from_web: int | None = None
        self.bitrate_from_sip: int | None = None

    @property
    def web(self) -> WebVideo | None:
        """The web leg's video transceiver (the fast lane reads its sender and receiver)."""
        return self._web

    @property
    def active(self) -> bool:
        """Video negotiated with the SIP side (its answer took one of our codecs)."""
        return bool(self.sip_codecs)

    def attach(self, web: WebRtcLeg) -> None:
        """Give (a new) web leg its video transceiver; a new leg gets a keyframe once connected."""
        self._web = web.enable_video(self._from_web, self._browser_wants_keyframe)
        self._web.on_bitrate_limit = self._browser_limits

    # ------------------------------------------------------------------------------------------ SDP

    async def offer_section(
        self, web_offer: sdp.SessionDescription, family: str | None
    ) -> sdp.MediaDescription | None:
        """Our video m-line for the SIP offer from the browser's offer, on a port of its own; None when
        the browser offers no video aiortc and the SIP side could share (or video is off)."""
        sdes = self._settings.offer_sdes and self._settings.sip_srtp != "off"
        if self._settings.sip_srtp == "required" and not sdes:  # no key to offer: plain RTP is refused
            return None
        index = _web_video_index(web_offer)
        codecs = self._usable(web_offer.media[index]) if index is not None else []
        if index is None or not codecs:
            return None
        section = web_offer.media[index]
        address, port = await self._open(codecs, family)
        narrowed = web_offer.with_media([video.only(section, [c.payload_type for c in codecs])])
        try:
            plain = sdp.to_plain(
                narrowed, address=address, port=port, codecs=["PCMU"], media=(), video_port=port,
                video_codecs=codec_specs(self._settings.video_codecs),
            )  # fmt: skip
        except sdp.SdpUnacceptable:
            self.close()
            return None
        self._offer = video.with_feedback(plain.media[0], ["ccm tmmbr"])  # RFC 5104 §7.1: we answer it
        if sdes:  # a key of its own (sdp.video_sdes); RTP/SAVP when required, else best effort as the audio
            self.crypto = sdp.Crypto.new()
            secure = self._settings.sip_srtp == "required"
            self._offer = video_sdes.with_crypto(self._offer, self.crypto, secure=secure)
        return self._offer

    def offer_late(self) -> list[sdp.Codec]:
        """An INVITE without an offer (a late offer, RFC 3261 §13.2.1): the browser is offered every video
        codec codecs.video allows and the web leg carries, in codecs.video's order (the browser sends the
        first it takes); our SIP offer in the 200 is then made of the browser's answer (``offer_section``)
        and the ACK's answer applied (``apply_sip_answer``)."""
        # H.264 Constrained Baseline before Baseline: the browser sends the first it takes, and CB
        # (RFC 6184 §8.1, 42e0xx) is the profile browsers and phones share most
        carried = sorted(carried_codecs(), key=lambda c: not _constrained_baseline(c))
        specs = codec_specs(self._settings.video_codecs)
        self.offered = list(dict.fromkeys(c for s in specs for c in carried if s.accepts(c)))
        return self.offered

    @property
    def awaiting_answer(self) -> bool:
        """Our video m-line went to the SIP side (at ``index``) and its answer is not known yet."""
        return (
            self._offer is not None
            and self.endpoint is not None
            and self.index is not None
            and not self.active
        )

    def _usable(self, section: sdp.MediaDescription) -> list[sdp.Codec]:
        """The codecs of a video m-line that codecs.video allows and aiortc can answer the browser with."""
        specs = codec_specs(self._settings.video_codecs)
        return [
            c
            for c in video.feedback(section)
            if not video.is_repair(c) and any(s.accepts(c) for s in specs) and video_capabilities([c])
        ]

    async def _open(self, codecs: list[sdp.Codec], family: str | None) -> tuple[str, int]:
        """The SIP side's video endpoint on a port of its own; the (address, port) for our SDP."""
        rtp = self._settings.rtp_address(family)
        endpoint = RtpEndpoint(
            self._settings.allocator,
            RtpEndpointConfig(
                payload_types=frozenset(c.payload_type for c in codecs), host=rtp.bind_host,
                clock_rate=VIDEO_RATE, inactivity_timeout=None, hold_timeout=None,
                relatch_after=RELATCH_PACKETS,  # as the audio: a stray first packet must not keep the stream
                retransmits=True,  # the browser's answers to the phone's NACKs (RFC 4585) go out again
            ),
            on_rtp=self._from_sip, on_rtcp=self._sip_rtcp, call_id=self._call,
        )  # fmt: skip
        await endpoint.open()
        endpoint.set_direction(sdp.Direction.INACTIVE)  # until an answer is known
        self.endpoint = endpoint
        self._address = rtp.public or endpoint.local_rtp_address[0]
        return self._address, endpoint.local_rtp_address[1]

    # a SIP video phone calls the browser: its offer, the browser's answer, our answer to the phone

    async def open_for_sip_offer(self, offer: sdp.SessionDescription, family: str | None) -> list[sdp.Codec]:
        """The SIP offer's first video m-line (plain RTP/AVP(F)): the codecs the browser may be offered
        (none: no video, the m-line gets port 0 in our answer); its endpoint opened, sending to the phone."""
        srtp = self._settings.sip_srtp
        index = next((i for i, m in enumerate(offer.media) if m.media == "video" and not m.rejected), None)
        keys = video_sdes.offered_keys(offer.media[index], srtp) if index is not None else None
        codecs = self._usable(offer.media[index]) if index is not None else []
        if index is None or keys is None or not codecs:
            return []
        if not keys.usable:
            logger.info(
                "call=%s the SIP side's video (%s) is refused: no usable SRTP key for media.sip_srtp %s",
                self._call, offer.media[index].proto, srtp,
            )  # fmt: skip
            return []
        await self._open(codecs, family)
        assert self.endpoint is not None
        self.endpoint.set_remote(*choice.remote_rtp(offer, index))
        self._offer, self.index, self.offered = offer.media[index], index, codecs
        self._theirs = keys.theirs
        return codecs

    def change_of(self, offer: sdp.SessionDescription) -> str | None:
        """What a SIP re-offer does to the video (escalation, issue 19): "add" (an audio call's re-offer
        with a video m-line the browser could take), "remove" (the video in use turned down, port 0 or
        gone), or None (the video stays as it is: a hold, a refresh, a new address)."""
        if self.active:
            index = self.index
            section = offer.media[index] if index is not None and index < len(offer.media) else None
            gone = section is None or section.rejected or section.media != "video"
            return "remove" if gone else None
        wanted = any(
            m.media == "video"
            and not m.rejected
            and m.proto.upper() in ("RTP/AVP", "RTP/AVPF")
            and self._usable(m)
            for m in offer.media
        )
        return "add" if wanted and self._settings.sip_srtp != "required" else None

    def answer_sip_offer(
        self, web_answer: sdp.SessionDescription, direction: sdp.Direction
    ) -> sdp.MediaDescription | None:
        """Our answer to the phone's video m-line from the browser's answer (the codecs it took, in the
        phone's payload types; port 0 when none fits); None without a video offer."""
        offer, endpoint = self._offer, self.endpoint
        if offer is None or endpoint is None:
            return None
        section = next((m for m in web_answer.media if m.media == "video" and not m.rejected), None)
        accepted = [c for c in section.codecs if not video.is_repair(c)] if section is not None else []
        answer = video.answer_section(
            offer, accepted, port=endpoint.local_rtp_address[1], address=self._address, direction=direction,
            own_feedback=OWN_FEEDBACK,
        )  # fmt: skip
        if answer.rejected:
            self.close()
            return answer
        theirs = self._theirs
        if theirs is not None:  # RFC 4568 §7.1.2: the offered tag and suite, a key of ours
            self.crypto = sdp.Crypto.new(theirs.tag, theirs.suite)
            answer = video_sdes.with_crypto(answer, self.crypto, secure=False)
        endpoint.set_srtp(self.crypto, theirs)
        codecs = list(answer.codecs)
        endpoint.reconfigure(frozenset(c.payload_type for c in codecs), frozenset(), VIDEO_RATE)
        endpoint.set_direction(direction)
        self.sip_request = SipRequestKind.of(codecs[0].rtcp_fb)
        self.sip_codecs = codecs
        return answer

    def answer_first(self) -> list[sdp.Codec]:
        """The browser is answered before the SIP side (an HTTP API client): it gets the first codec of
        our video offer, and the SIP side's answer must take that one (``apply_sip_answer``)."""
        offer = self._offer
        first = [c for c in video.feedback(offer) if not video.is_repair(c)][:1] if offer is not None else []
        self.tentative = first
        return first

    def apply_sip_answer(self, answer: sdp.SessionDescription) -> list[sdp.Codec]:
        """The SIP side's answer to our video m-line (at ``index``): the codecs it took that fit our offer
        (the browser's payload types); none: video off (the endpoint closed), the audio goes on."""
        offer, endpoint, index = self._offer, self.endpoint, self.index
        if offer is None or endpoint is None or index is None or index >= len(answer.media):
            return []
        section = answer.media[index]
        codecs = [] if section.rejected or section.media != "video" else video.answered(offer, section)
        if self.tentative:  # the browser was answered first, with this codec only
            codecs = [c for c in codecs if any(video.compatible(c, t) for t in self.tentative)]
        keys = video_sdes.answered_keys(section, self.crypto, self._settings.sip_srtp)
        if codecs and not keys.usable:
            logger.info("call=%s the SIP side's video answer has no SRTP key of our offer", self._call)
            codecs = []
        if not codecs:
            logger.info("call=%s the SIP side took no video: audio only", self._call)
            self.close()
            return []
        endpoint.set_srtp(self.crypto if keys.theirs is not None else None, keys.theirs)
        endpoint.set_remote(*choice.remote_rtp(answer, index))
        endpoint.reconfigure(frozenset(c.payload_type for c in codecs), frozenset(), VIDEO_RATE)
        endpoint.set_direction(answer.effective_direction(index).reversed())
        self.sip_request = SipRequestKind.of(codecs[0].rtcp_fb)
        self.sip_codecs = codecs
        self._map()  # the browser's codecs known already (a late offer's answer): the paths map them now
        logger.info(
            "call=%s video %s, keyframes asked of the SIP side by %s",
            self._call, ", ".join(f"{c.name}/{c.payload_type}" for c in codecs), self.sip_request.value,
        )  # fmt: skip
        return codecs

    def apply_web(self, web_answer: sdp.SessionDescription) -> None:
        """The browser's video codecs once its answer is known: each direction's payload type mapping."""
        section = next((m for m in web_answer.media if m.media == "video" and not m.rejected), None)
        self._web_section = section
        self._map()

    def _map(self) -> None:
        section = self._web_section
        if section is None or not self.sip_codecs:
            self.to_sip.configure({}, {})
            self.to_web.configure({}, {})
            return
        web = [c for c in section.codecs if not video.is_repair(c)]
        pairs = [(w, s) for w in web for s in self.sip_codecs if video.compatible(w, s)]
        repair = frozenset(c.payload_type for c in section.codecs if video.is_repair(c))
        self.to_sip.configure(
            {w.payload_type: s.payload_type for w, s in pairs},
            {w.payload_type: w.name for w, _ in pairs},
            repair,
        )
        self.to_web.configure(
            {s.payload_type: w.payload_type for w, s in pairs}, {s.payload_type: s.name for _, s in pairs}
        )

    def answer_reoffer(
        self, offer: sdp.SessionDescription, policy: sdp.Direction
    ) -> sdp.MediaDescription | None:
        """The SIP side's re-INVITE (a session refresh, hold, a new address) still offering our video
        m-line: the answer to it (the codecs in use, the offer's numbers; the direction limited by
        ``policy``); None when the video is not active or the re-offer turned it down (then closed)."""
        index, endpoint = self.index, self.endpoint
        if not self.active or index is None or endpoint is None:
            return None
        section = offer.media[index] if index < len(offer.media) else None
        if section is None or section.rejected or section.media != "video":
            logger.info("call=%s the SIP side's re-offer drops the video", self._call)
            self.close()
            self._map()
            return None
        keys = video_sdes.offered_keys(section, self._settings.sip_srtp)
        if not keys.usable:
            logger.info("call=%s the SIP side's re-offer has no usable SRTP key for the video", self._call)
            self.close()
            self._map()
            return None
        direction = offer.effective_direction(index).reversed().limited_to(policy)
        answer = video.answer_section(
            section,
            self.sip_codecs,
            port=endpoint.local_rtp_address[1],
            address=self._address,
            direction=direction,
            own_feedback=OWN_FEEDBACK,
        )
        if answer.rejected:
            self.close()
        else:
            answer = self._rekey(answer, keys.theirs)
            endpoint.set_remote(*choice.remote_rtp(offer, index))
            endpoint.reconfigure(frozenset(c.payload_type for c in answer.codecs), frozenset(), VIDEO_RATE)
            endpoint.set_direction(direction)
            self.sip_codecs = list(answer.codecs)
        self._map()
        return answer

    def _rekey(self, answer: sdp.MediaDescription, theirs: sdp.Crypto | None) -> sdp.MediaDescription:
        """Our answer to a re-offer's video key: the key we use already when the tag and suite are the
        same (the sessions and their rollover counters go on, RFC 4568 §7.1.4), else a new one."""
        assert self.endpoint is not None
        ours = self.crypto
        if theirs is not None and (ours is None or (ours.tag, ours.suite) != (theirs.tag, theirs.suite)):
            ours = sdp.Crypto.new(theirs.tag, theirs.suite)
        self.crypto = ours if theirs is not None else None
        self._theirs = theirs
        self.endpoint.set_srtp(self.crypto, theirs)
        return answer if self.crypto is None else video_sdes.with_crypto(answer, self.crypto, secure=False)

    # ---------------------------------------------------------------------------------------- media

    def _from_web(
        self, ssrc: int, seq: int, timestamp: int, payload_type: int, marker: bool, payload: bytes
    ) -> None:
        now = self._clock()
        out = self.to_sip.feed(ssrc, seq, timestamp, payload_type, marker, payload, now)
        endpoint = self.endpoint
        if out is not None and endpoint is not None and self.active:
            endpoint.next_sequence = out.sequence
            endpoint.send_rtp(out.payload_type, out.payload, out.timestamp, marker=out.marker)
        if self.to_sip.keyframe_wanted and self.to_sip.take_keyframe_request():
            self.ask_web(now)

    def _from_sip(self, packet: RtpPacket) -> None:
        now = self._clock()
        self._sip_ssrc = packet.ssrc
        out = self.to_web.feed(
            packet.ssrc, packet.sequence_number, packet.timestamp, packet.payload_type, packet.marker,
            packet.payload, now,
        )  # fmt: skip
        if out is not None and self._web is not None:
            self._web.send(out, now)
        if self.to_web.keyframe_wanted and self.to_web.take_keyframe_request():
            self.ask_sip(now)

    # ------------------------------------------------------------------------------------ keyframes

    def ask_web(self, now: float | None = None) -> bool:
        """Ask the browser for a keyframe (a PLI), unless one was asked just now."""
        web = self._web
        if web is None or not web.connected or not self._ask_web.want(self._clock() if now is None else now):
            return False
        return web.request_keyframe()

    def ask_sip(self, now: float | None = None) -> bool:
        """Ask the SIP side for a keyframe as its video negotiated, unless one was asked just now."""
        endpoint = self.endpoint
        if (
            endpoint is None
            or not self.active
            or not self._ask_sip.want(self._clock() if now is None else now)
        ):
            return False
        media = self._sip_ssrc
        if self.sip_request is SipRequestKind.INFO or media is None:
            self._on_event(KeyframeWanted(Leg.SIP))
            return True
        packet = (
            PictureLoss(endpoint.ssrc, media).to_rtcp()
            if self.sip_request is SipRequestKind.PLI
            else FullIntraRequest(endpoint.ssrc, media, self._ask_sip.next_fir()).to_rtcp()
        )
        return endpoint.send_feedback((packet,))

    def _browser_wants_keyframe(self) -> None:
        self.requests_from_web += 1
        self.ask_sip()

    def _sip_rtcp(self, packets: tuple[RtcpPacket, ...]) -> None:
        try:
            wanted = keyframe_requests(packets)
            hints = bandwidth_hints(packets)
        except PacketError as exc:
            logger.debug("call=%s malformed RTCP feedback from the SIP side: %s", self._call, exc)
            return
        if wanted:
            self.requests_from_sip += 1
            self.ask_web()
        for hint in hints:
            if type(hint) is Tmmbr:
                self._sip_limits(hint)

    # ------------------------------------------------------------------------------- bandwidth hints

    @property
    def tmmbr(self) -> bool:
        """Whether the SIP side's video negotiated ``ccm tmmbr`` (RFC 5104 §7.1)."""
        return self.active and negotiated_tmmbr(self.sip_codecs[0].rtcp_fb)

    def _browser_limits(self, bitrate: int) -> None:
        """The browser's REMB for our stream, which carries the SIP side's video: a TMMBR for the SIP side's
        stream (RFC 5104 §4.2.1) where it negotiated one; nothing otherwise."""
        self.bitrate_from_web = bitrate
        endpoint, media = self.endpoint, self._sip_ssrc
        if (
            endpoint is None
            or media is None
            or not self.tmmbr
            or bitrate < MIN_USEFUL_BITRATE  # Chromium's estimator at its floor: no estimate
            or not self._tmmbr.want(bitrate, self._clock())
        ):
            return
        endpoint.send_feedback((Tmmbr(endpoint.ssrc, (TmmbrEntry(media, bitrate),)).to_rtcp(),))
        logger.debug("call=%s TMMBR %d bit/s to the SIP side (the browser's REMB)", self._call, bitrate)

    def _sip_limits(self, request: Tmmbr) -> None:
        """The SIP side's TMMBR: its entry for our stream becomes a REMB for the browser's stream, and is
        acknowledged by a TMMBN with that limit, owned by the requester (RFC 5104 §4.2.2.1: the bounding set
        we now keep to)."""
        endpoint = self.endpoint
        if endpoint is None or not self.tmmbr:
            return
        entries = tuple(e for e in request.entries if e.ssrc == endpoint.ssrc)
        if not entries:
            return
        bitrate = min(e.bitrate for e in entries)
        self.bitrate_from_sip = bitrate
        # §4.2.2.1: each tuple of the bounding set under the SSRC of its owner, the requester
        owned = tuple(TmmbrEntry(request.sender, e.bitrate, e.overhead) for e in entries)
        endpoint.send_feedback((Tmmbn(endpoint.ssrc, owned).to_rtcp(),))
        web = self._web
        ready = web is not None and web.connected and web.remote_ssrc is not None
        if web is not None and ready and self._remb.want(bitrate, self._clock()):
            web.limit_bitrate(bitrate)

    def keyframe_from_info(self) -> bool:
        """The SIP side's INFO picture_fast_update (RFC 5168): the browser is asked for a keyframe."""
        self.requests_from_sip += 1
        return self.ask_web()

    def web_connected(self) -> None:
        """The web leg's ICE and DTLS are up (first time or again): both sides start from a keyframe."""
        self.to_web.restart()
        self.to_sip.restart()

    # ------------------------------------------------------------------------------------- teardown

    def stats(self) -> VideoBridgeStats:
        return VideoBridgeStats(
            self.to_sip.stats(),
            self.to_web.stats(),
            self._ask_web.sent,
            self._ask_sip.sent,
            self.sip_request.value,
            self.requests_from_web,
            self.requests_from_sip,
            self.bitrate_from_web,
            self.bitrate_from_sip,
            self._tmmbr.sent,
            self._remb.sent,
        )

    def close(self) -> None:
        """Close the SIP side's video endpoint (the web leg's video closes with the leg). Idempotent."""
        self.sip_codecs = []
        self.tentative = []
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None


def _constrained_baseline(codec: sdp.Codec) -> bool:
    if codec.name.lower() != "h264":
        return False
    profile = video.H264Profile.parse(codec.parameters.get("profile-level-id"))
    return profile is not None and profile.name == "constrained-baseline"


def _web_video_index(offer: sdp.SessionDescription) -> int | None:
    """The browser's video m-line the web leg can carry: the one ``web_sdp.prune_offer`` gives aiortc
    (bundled with the audio). Another (Bria 4's, not bundled) is not offered to the SIP side: aiortc
    would get a video transceiver without an m-line and fail the answer (issue 33)."""
    try:
        return prune_offer(offer, video=True).video_index
    except sdp.SdpError:
        return None
