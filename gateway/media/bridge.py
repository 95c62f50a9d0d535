"""The media bridge of one call: the web leg (aiortc) and the SIP leg (plain RTP), SDP in, SDP out.

Browser calls the PBX::

    plain_offer = await bridge.offer_to_sip(web_offer)      # to the INVITE
    web_answer = await bridge.answer_from_sip(plain_answer)  # 183 early media, again on the 200

The browser answered before the SIP side (the HTTP offer API, ``early_answer``): ``take_web_offer`` (its
offer checked, the SIP leg's ports leased), ``answer_web_first``, then ``sip_offer`` for the INVITE once
the answer is out (``offer_to_sip`` is the two halves at once).

PBX calls a browser::

    web_offer = await bridge.offer_to_web(plain_offer)
    plain_answer = await bridge.answer_from_web(web_answer)

Re-offers (hold, resume, a moved peer): ``update_from_sip`` / ``update_from_web`` return the answer.
The web user's hold and resume (RFC 3264 §8.4)::

    plain_offer = await bridge.reoffer_to_sip(hold=True)    # our last SIP SDP, sendonly, o= version + 1
    await bridge.answer_to_reoffer(plain_answer)             # the 2xx's answer: forwarding stops

A late offer (an INVITE without SDP): ``offer_to_web(None)``, then ``answer_from_web`` returns our offer
for the 200 and ``answer_to_reoffer`` applies the answer from the ACK. An offerless re-INVITE:
``reoffer_to_sip(hold, full=True)`` is the offer for the 200, answered in the ACK the same way.

While the web user holds, neither direction is forwarded (the held party hears silence, the browser
nothing of the held party); the answer to ``reoffer_to_sip(hold=False)`` restores both. A re-offer that
is never answered (the re-INVITE failed) changes nothing. States: IDLE -> AWAITING_SIP_ANSWER or
AWAITING_WEB_ANSWER -> ACTIVE -> CLOSED; an illegal call raises ``BridgeError`` naming both. The legs are
``WebRtcLeg`` and ``SipLeg``, the two directions ``MediaPath`` (pass-through or transcoding, DTMF), codec
choice ``codec_choice``, events ``events``; bases: ``bridge_setup``, ``_midcall``, ``_handover``, ``_mix``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import sdp
from gateway.media import arrival, fastlane
from gateway.media.bridge_handover import HandoverOffers
from gateway.media.bridge_midcall import MidCallOffers
from gateway.media.bridge_mix import MixPorts
from gateway.media.bridge_settings import BridgeSettings, BridgeStats, LatencyMeter, web_certificate
from gateway.media.bridge_setup import SetupOffers
from gateway.media.bridge_state import TRANSITIONS as TRANSITIONS
from gateway.media.bridge_state import BridgeError as BridgeError
from gateway.media.bridge_state import BridgeState as BridgeState
from gateway.media.codecs import codec_choice as choice
from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.codecs.comfort_fill import ComfortFill
from gateway.media.codecs.dtmf import DTMF_RELAY, format_dtmf_relay, parse_info_body
from gateway.media.codecs.dtmf_player import DtmfPlayer
from gateway.media.conceal_steer import ConcealSteer, with_opus
from gateway.media.errors import DtmfError, MediaError
from gateway.media.events import (
    CodecChosen,
    DtlsFailed,
    DtmfReceived,
    Leg,
    LossCause,
    MediaConnected,
    MediaEvent,
    MediaInactive,
    TextReceived,
    WebMediaLost,
)
from gateway.media.fastlane.controller import FastLaneController
from gateway.media.forward import MediaPath, same_codec
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.sip_leg import SipLeg
from gateway.media.text.text_bridge import TextBridge
from gateway.media.video.video_bridge import VideoBridge
from gateway.media.watchdog import Watchdog
from gateway.media.webrtc import ice_consent
from gateway.media.webrtc.web_leg_state import WebLegState
from gateway.media.webrtc.web_sdp import audio_section, prune_offer
from gateway.media.webrtc.webrtc_leg import WebLegOptions, WebRtcLeg

logger = logging.getLogger(__name__)


class MediaBridge(SetupOffers, MidCallOffers, MixPorts, HandoverOffers):
    """One call's media. ``on_event`` receives ``MediaEvent`` values in the event loop thread."""

    def __init__(self, settings: BridgeSettings, on_event: Callable[[MediaEvent], None]) -> None:
        self.settings = settings
        self._call = settings.call_id
        self._clock = settings.clock
        self._on_event = on_event
        self._state = BridgeState.IDLE
        options = WebLegOptions(
            ice_servers=settings.ice_servers,
            include_loopback=settings.include_loopback,
            host_addresses=settings.host_addresses,
            ice_timeout=settings.ice_timeout,
            rtcp_interval=settings.web_rtcp_interval,
            data_channel=settings.data_channel,
            certificate=web_certificate(settings.dtls_certificates),
            opus_usedtx=settings.opus_usedtx,
            opus_red=settings.opus_red,
            ports=settings.web_allocator or settings.allocator,  # issue 36: ICE sockets in the range too
            peers=settings.peer_pool,  # made ahead of the call (issue 64)
        )
        self._web_options = options
        self._web = self._new_web_leg()
        self._sip = SipLeg(
            settings,
            on_rtp=self._from_sip,
            on_inactive=self._sip_inactive,
            on_failed=self._sip_failed,
            on_secure=self._sip_secure,
        )
        self._to_sip = MediaPath("web->sip", call_id=self._call, on_skip=self._sip.forget_numbering)
        self._to_web = MediaPath("sip->web", call_id=self._call, on_skip=self._web_renumber)
        self._sip.forwarded_lost = lambda: self._to_sip.lost - self._to_sip.recovered  # gaps the phone sees
        # a G.711 phone's audio to a browser that has Opus too: passed through, or ours concealed and
        # transcoded, per call (codecs.g711_to_web; gateway/media/conceal_steer.py)
        self._conceal = ConcealSteer(
            settings.g711_to_web, call_id=self._call, clock=self._clock, counters=self._phone_counters,
            changed=self._configure_paths,
        )  # fmt: skip
        self._web_offer: sdp.SessionDescription | None = None  # the browser's, when it called
        self._sip_offer_codecs: list[sdp.Codec] | None = None  # our first SIP offer's, of the browser's
        self._sip_offer: sdp.SessionDescription | None = None  # the SIP side's, when it called
        self._sip_family: str | None = None  # a late offer's address family (None: the default)
        self._web_answer: str | None = None
        self._sip_local: sdp.SessionDescription | None = None  # the last SDP we gave the SIP side
        self._sip_version = 0  # the highest o= version we used with the SIP side
        self._reoffer: tuple[sdp.SessionDescription, bool] | None = None  # ours, unanswered; hold?
        self._web_reoffer: tuple[str, str] | None = None  # (the SIP re-offer, add/remove) the browser has
        # the browser's own new offer (video added or dropped), our SIP re-offer of it, add/remove
        self._browser_reoffer: tuple[sdp.SessionDescription, sdp.SessionDescription, str] | None = None
        self._local_hold = False
        self._web_side: LegCodecs | None = None
        # the telephone-event beside what the browser is sent now (its Opus while we conceal: conceal_steer)
        self._to_web_event: sdp.Codec | None = None
        self._chosen: CodecChosen | None = None
        self._sip_dtmf = DtmfPlayer(
            self._sip.send, lambda rate: self._to_sip.now_timestamp(self._clock(), rate)
        )
        self._web_dtmf = DtmfPlayer(
            self._send_web_event, lambda rate: self._to_web.now_timestamp(self._clock(), rate)
        )
        self._latency = LatencyMeter(enabled=settings.measure_latency, clock=settings.clock)
        # Video passed through (issue 19), when codecs.video allows some and the browser offers video.
        self.video: VideoBridge | None = VideoBridge(settings, on_event) if settings.video_codecs else None
        # Real-time text (RFC 4103 <-> RFC 8865, issue 68), carried by the web leg's data channel.
        texting = settings.realtime_text != "off" and settings.data_channel
        self.text = TextBridge(settings) if texting else None
        self._web_watchdog = Watchdog(
            settings.inactivity_timeout, self._web_inactive, clock=settings.clock,
            quiet_after=settings.loss_detect, on_quiet=self._web_quiet, on_back=self._web_back,
        )  # fmt: skip
        # While the browser sends no audio on purpose (the web user holds, or our direction to it is
        # sendonly): its answers to our ICE consent checks (one a second then) and any RTP say it is there.
        self._web_presence = Watchdog(
            None, lambda _: None, clock=settings.clock, on_quiet=self._web_unanswered, on_back=self._web_back,
            quiet_after=settings.loss_detect + ice_consent.answer_interval() if settings.loss_detect else None,
        )  # fmt: skip
        # what the SIP side hears while the browser's audio is missing (instead of dead air)
        self._web_gone = False  # its loss was reported (WebMediaLost) and its audio is not back yet
        self._fill = ComfortFill(
            self._sip.send, lambda: self._to_sip.now_timestamp(self._clock()), self._fill_codec,
            call_id=self._call,
        )  # fmt: skip
        # Steady media forwarded by the native engines (gateway/media/fastlane), with the monotonic
        # clock only (the engine's packet times are CLOCK_MONOTONIC).
        self.fast_lane: FastLaneController | None = None
        # Listeners to the SIP side's RTP (WHEP players of the call: gateway/runtime/playback.py): the
        # packets must come through Python while there is one, so the fast lane stays unlinked.
        self._taps: dict[str, tuple[Callable[[RtpPacket], None], Callable[[], None]]] = {}
        if settings.fast_lane is not None and fastlane.available() and self._clock is time.monotonic:
            self.fast_lane = FastLaneController(
                settings.fast_lane, call_id=self._call, web=self._web, sip=self._sip, to_sip=self._to_sip,
                to_web=self._to_web, web_watchdog=self._web_watchdog, latency=self._latency,
                active=lambda: self._state is BridgeState.ACTIVE and not self._taps,
                fill=self._fill, web_back=self._web_back,
            )  # fmt: skip
            self.fast_lane.video = self.video

    @property
    def state(self) -> BridgeState:
        return self._state

    def _set_state(self, state: BridgeState) -> None:
        if (self._state, state) not in TRANSITIONS:
            raise BridgeError(f"call={self._call} bridge cannot go from {self._state.value} to {state.value}")
        logger.debug("call=%s bridge %s -> %s", self._call, self._state.value, state.value)
        self._state = state

    def _expect(self, method: str, *states: BridgeState) -> None:
        if self._state not in states:
            wanted = " or ".join(s.value for s in states)
            raise BridgeError(f"call={self._call} {method}() in state {self._state.value}, not {wanted}")

    # ----------------------------------------------------------------------------- the web leg's ICE

    async def add_web_candidate(self, candidate: object) -> None:
        """A trickled browser candidate: JSON text, a JSON object, or an ``sdp.IceCandidateInit``."""
        if isinstance(candidate, str):
            candidate = json.loads(candidate)
        if not isinstance(candidate, sdp.IceCandidateInit):
            candidate = sdp.candidate_from_json(candidate)
        await self._web.add_candidate(candidate)

    def restart_web_ice(self, remote: sdp.IceParameters) -> sdp.TrickleFragment:
        """The browser restarted ICE (WHIP's PATCH): our new credentials and candidates to answer with;
        the media keeps flowing, on the new path once the browser nominated it (``IcePathChanged``)."""
        return self._web.restart_ice(remote)

    def web_media_address(self) -> tuple[Any, ...] | None:
        """Where the browser's media goes: the fast lane's while it is linked, else the ICE pair's remote."""
        if self.fast_lane is not None and self.fast_lane.link is not None:
            return tuple(self.fast_lane.remote)
        parts = self._web.direct_sender.fast_lane_parts()
        return parts[1] if parts is not None else None

    # ----------------------------------------------------------------- reconnects (a new web leg)

    def _new_web_leg(self) -> WebRtcLeg:
        """A web leg whose events count only while it is the bridge's (a replaced one's late failure
        must not end the call)."""
        leg: WebRtcLeg | None = None

        def on_event(event: MediaEvent) -> None:
            if leg is self._web:
                self._web_event(event)
            else:
                logger.debug("call=%s event of a replaced web leg dropped: %r", self._call, event)

        leg = WebRtcLeg(
            self._web_options, on_rtp=self._from_web, on_event=on_event, call_id=self._call, clock=self._clock
        )
        leg.on_answer = lambda: self._web_presence.alive(self._clock()) if leg is self._web else None
        leg.direct_sender.upstream_lost = lambda: self._sip.cumulative_lost()  # (self._sip comes after)
        return leg

    def _web_renumber(self) -> None:  # input not sent (a hold ended): no gap in our numbering to the browser
        self._web.direct_sender.sequence_map.forget()

    async def detach_web(self) -> None:
        """The browser went (or its media failed) but may come back: close the web leg; the SIP leg
        and its RTP stay as they are (nothing is forwarded to it: the SIP party hears silence)."""
        self._expect("detach_web", BridgeState.ACTIVE)
        self._web_watchdog.set_expected(False)
        self._web_presence.set_expected(False)
        if self.fast_lane is not None:
            self.fast_lane.unlink()
        await self._web.close()
        logger.info("call=%s web leg closed: waiting for the browser to come back", self._call)
        self._web_missing(LossCause.DETACHED)  # the SIP party hears the fill meanwhile, not dead air

    # --------------------------------------------------------- the browser's audio missing (item 14)

    def _web_quiet(self, seconds: float) -> None:
        """No RTP from the browser for ``loss_detect`` seconds while it should send."""
        if self._state is BridgeState.ACTIVE:
            self._web_missing(LossCause.SILENCE, seconds)

    def _web_unanswered(self, seconds: float) -> None:
        """Nothing from a browser that sends no audio on purpose, not even consent answers."""
        if self._state is BridgeState.ACTIVE:
            self._web_missing(LossCause.UNANSWERED, seconds)

    def _watch_web(self) -> None:
        """What says the connected browser is there: its RTP while it should send (the web user does not
        hold the call), else any packet or answer to a consent check (RFC 7675)."""
        web = self._web_side if self._web.state is WebLegState.CONNECTED else None
        sip = self._sip.negotiated
        # ...and only while its audio goes anywhere: a SIP party that holds us wants none, and a SIP library
        # held by it stops sending (gateway/websip/hold.py), which is no loss (consent checks still tell)
        forwarded = sip is None or sip.direction.sends
        audio = web is not None and web.direction.receives and not self._local_hold and forwarded
        self._web_watchdog.set_expected(audio)
        self._web_presence.set_expected(web is not None and not audio)

    def _web_missing(self, cause: LossCause, seconds: float = 0.0) -> None:
        """Report the loss (once until the browser's audio is back) and play the fill to the SIP side."""
        if self._web_gone:
            return
        self._web_gone = True
        logger.info("call=%s browser audio lost (%s, %.1f s)", self._call, cause.value, seconds)
        self._on_event(WebMediaLost(cause, seconds))
        self._start_fill()

    def _start_fill(self) -> None:
        """Python's fill while the browser is away (none on hold): the fast lane disarms that direction only."""
        if not self._web_gone or not self._to_sip.enabled or self._fill.active or self._mixing is not None:
            return
        self._fill.start()
        if self.fast_lane is not None and self.fast_lane.link is not None:
            self.fast_lane.fast_rearm()  # (unlinked, e.g. a detached leg: nothing to disarm, no link to try)

    def _web_back(self) -> None:
        """The browser's audio is back (a watchdog or the Python path saw it): no fill, the lane to the SIP
        side armed again."""
        if not self._web_gone:
            return
        self._web_gone = False
        if self._fill.active:
            self._fill.cancel()
            asyncio.get_running_loop().call_soon(self._relink)

    def _relink(self) -> None:
        if self.fast_lane is not None and self._state is BridgeState.ACTIVE:
            self.fast_lane.update()

    def _phone_counters(self) -> tuple[int, int, int]:
        """The phone leg's packets received, lost and loss events so far (the fast lane's accounted)."""
        if self.fast_lane is not None:
            self.fast_lane.account()
        path = self._to_web
        return path.received, path.lost, path.gaps

    def _fill_codec(self) -> tuple[str, int] | None:
        sip = self._sip.negotiated
        return (sip.codec.name, sip.codec.payload_type) if sip is not None else None

    async def renew_web(self, web_offer: str) -> str:
        """A new web leg for the browser's new offer (a reload, a new RTCPeerConnection), bridged to the
        same SIP leg: the SIP leg's codec first (pass-through where the browser offers it). The answer."""
        self._expect("renew_web", BridgeState.ACTIVE)
        offer = sdp.parse(web_offer)
        section = audio_section(offer)[1]
        web_usable = choice.offered(prune_offer(offer).description.media[0], self.settings.web_codecs)
        if not web_usable:
            raise sdp.SdpUnacceptable(f"the browser offers none of {list(self.settings.web_codecs)}")
        await self.detach_web()
        self._web = self._new_web_leg()
        if self.video is not None and self.video.active:
            self.video.attach(self._web)
        if self.fast_lane is not None:
            self.fast_lane.replace_web(self._web)
        if not self._fill.active:  # no fill to hear the first packet end it: the browser is back
            self._web_gone = False
        text_ours = False
        if self.text is not None and self.text.active:  # the call's real-time text on the new leg too
            text_ours = self.text.renew_web(offer)
            self._web.open_t140(self.text.adopt, ours=False)  # the browser's own T.140 channel
        sip = self._sip.negotiated
        web = choice.first_common([sip.codec] if sip is not None else [], web_usable) or web_usable[0]
        local = await self._web.accept_offer(
            offer, [*with_opus(web, web_usable, self._conceal.mode), *choice.WEB_EVENTS], self._video_codecs()
        )
        self._conceal.restart()
        if text_ours and self.text is not None:
            self._web.open_t140(self.text.adopt)  # on the data channel line just answered
        self._web_answer = sdp.write(self._for_browser(local))
        self._apply_web(section, audio_section(local)[1], answering=True)
        if self.video is not None:
            self.video.apply_web(local)
        self._configure_paths()
        logger.info("call=%s new web leg: %s", self._call, web.name)
        self._mix_web_renewed()  # a three-way call's carrier: the web user in the mix again
        return self._web_answer

    # ------------------------------------------------------------------------------- negotiation

    def _apply_web(
        self, offer: sdp.MediaDescription, answer: sdp.MediaDescription, *, answering: bool
    ) -> LegCodecs:
        """The web leg's codecs and our direction once ``answer`` (ours when ``answering``) is known."""
        codecs = [c for c in answer.codecs if not c.is_telephone_event and c.name.lower() != "red"]
        red = [c for c in answer.codecs if c.name.lower() == "red"]  # RFC 2198: wraps the others
        if not answering:  # aiortc sends the first codec of its offer that the answer has
            first = choice.first_common(offer.codecs, codecs)
            codecs = [first, *(c for c in codecs if c != first)] if first is not None else codecs
        direction = answer.direction or sdp.Direction.SENDRECV
        web = LegCodecs.of(
            codecs, choice.events(answer), direction if answering else direction.reversed(), redundancy=red
        )
        self._web_side = web
        return web

    def _configure_paths(self) -> None:
        web, sip = self._web_side, self._sip.negotiated
        if web is None or sip is None:
            return
        sip_event = sip.event if self.settings.forward_web_dtmf else None  # dtmf_mode info: INFO only
        self._to_sip.configure(web.incoming, sip.codec, sip_event, sip.packet_ms)
        to_web = self._conceal.out_codec(web, sip, steerable=self._mixing is None)
        self._to_web_event = web.event_for(to_web)  # at the clock of what the browser is sent (RFC 4733 §2.1)
        self._to_web.configure(sip.incoming, to_web, self._to_web_event)
        own = to_web is web.codec  # (else the browser's Opus while we conceal a G.711 phone's losses)
        self._web.direct_sender.select(
            None if own else to_web.payload_type, to_web.clock_rate, opus=to_web.name.lower() == "opus"
        )
        held = self._local_hold  # the web user holds: nothing either way (the held party hears silence)
        self._to_sip.enabled = not held and web.direction.receives and sip.direction.sends
        if not self._to_sip.enabled:
            self._fill.cancel()
        else:
            self._start_fill()  # a hold ended while the browser is away
        self._to_web.enabled = not held and sip.direction.receives and web.direction.sends
        if self.video is not None:
            self.video.to_sip.enabled = self.video.to_web.enabled = not held
        self._watch_web()
        transcoding = not same_codec(web.codec, sip.codec) or not same_codec(to_web, sip.codec)
        chosen = CodecChosen(web=_name(to_web), sip=_name(sip.codec), transcoding=transcoding)
        if chosen != self._chosen:
            self._chosen = chosen
            logger.info("call=%s codecs web %s, sip %s, transcoding %s", self._call, chosen.web,
                        chosen.sip, transcoding)  # fmt: skip
            self._on_event(chosen)
        if self.fast_lane is not None:
            self.fast_lane.update()

    # -------------------------------------------------------------------------------------- media

    # Both run synchronously in the socket callbacks, once per packet: pass-through audio takes
    # ``forward_audio`` (no allocation), everything else ``feed``.

    def _from_web(
        self, ssrc: int, seq: int, timestamp: int, payload_type: int, marker: bool, payload: bytes
    ) -> None:
        now = arrival.at or self._clock()  # its arrival, when the fast lane's engine queued it
        if self.audio_filter is not None:  # an audio stream hears it, and may mix into it (bridge_state)
            payload_type, payload = self.audio_filter.web(payload_type, payload, self._web_side)
        self._web_watchdog.alive(now)
        self._web_presence.alive(now)
        if self._web_gone:
            self._web_back()
        if self._mixing is not None and self._to_mix(Leg.WEB, payload_type, payload):
            return  # a three-way call's: gateway/media/bridge_mix.py
        path, sip = self._to_sip, self._sip.negotiated
        mapped = path.forward_audio(ssrc, seq, timestamp, payload_type, now)
        if mapped >= 0:
            if sip is not None:
                self._sip.send(sip.codec.payload_type, payload, mapped, marker, (ssrc, seq))
                if self._latency.enabled:
                    self._latency.measure(now)
            return
        out, digits = path.feed(ssrc, seq, timestamp, payload_type, marker, payload, now)
        if sip is not None:
            for item in out:
                pt = sip.codec.payload_type if item.payload_type is None else item.payload_type
                source = (ssrc, item.seq) if item.seq >= 0 else None  # numbered as forwarded (RED's)
                self._sip.send(pt, item.payload, item.timestamp, item.marker, source)
                self._latency.measure(now)
        for digit in digits:
            self._on_event(DtmfReceived(Leg.WEB, digit.digit, digit.duration_ms))

    def _from_sip(self, packet: RtpPacket) -> None:
        now = arrival.at or self._clock()
        if self.audio_filter is not None:
            packet = self.audio_filter.sip(packet, self._sip.negotiated)
        if self._taps:
            for tap, _ in tuple(self._taps.values()):
                tap(packet)
        if self._mixing is not None and self._to_mix(Leg.SIP, packet.payload_type, packet.payload):
            return
        path = self._to_web
        mapped = path.forward_audio(
            packet.ssrc, packet.sequence_number, packet.timestamp, packet.payload_type, now
        )
        if mapped >= 0:
            source = (packet.ssrc, packet.sequence_number)
            if (
                self._web.send(packet.payload, mapped, None, packet.marker, now, source)
                and self._latency.enabled
            ):
                self._latency.measure(now)
            return
        out, digits = path.feed(
            packet.ssrc, packet.sequence_number, packet.timestamp, packet.payload_type,
            packet.marker, packet.payload, now,
        )  # fmt: skip
        for item in out:
            if self._web.send(item.payload, item.timestamp, item.payload_type, item.marker, now):
                self._latency.measure(now)
        for digit in digits:
            self._on_event(DtmfReceived(Leg.SIP, digit.digit, digit.duration_ms))

    def _web_event(self, event: MediaEvent) -> None:
        if isinstance(event, TextReceived):  # chat on the data channel: nothing to do with media
            self._on_event(event)
            return
        if isinstance(event, MediaConnected) and self.video is not None:
            self.video.web_connected()
        if self._web.state is WebLegState.CONNECTED:
            self._watch_web()
        if self.fast_lane is not None:
            self.fast_lane.update()
        self._on_event(event)

    def _web_inactive(self, seconds: float) -> None:
        self._on_event(MediaInactive(Leg.WEB, seconds))

    def _sip_failed(self, reason: str) -> None:
        """The SIP leg's DTLS-SRTP failed (handshake, fingerprint mismatch, timeout): the call ends."""
        self._on_event(DtlsFailed(reason, Leg.SIP))

    def _sip_secure(self) -> None:
        """The SIP leg's DTLS-SRTP keys are there: media flows from now on."""
        if self.fast_lane is not None:
            self.fast_lane.update()

    def _sip_inactive(self) -> None:
        endpoint = self._sip.endpoint
        held = endpoint is not None and endpoint.inactive_held
        seconds = self.settings.hold_timeout if held else self.settings.inactivity_timeout
        self._on_event(MediaInactive(Leg.SIP, seconds or 0.0, held=held))

    # ---------------------------------------------------------------------------------------- DTMF

    def send_dtmf(self, digits: str, to: Leg | str, *, duration_ms: int = 100) -> asyncio.Task[None]:
        """Send RFC 4733 events on leg ``to`` (paced, in the background; digits queue up in order).
        ``DtmfError`` when a digit is unknown or the leg negotiated no telephone-event (use INFO then)."""
        leg = Leg(to)
        side = self._sip.negotiated if leg is Leg.SIP else self._web_side
        event = side.event if side is not None else None
        if leg is Leg.WEB and event is not None and self._to_web_event is not None:
            event = self._to_web_event  # the browser may be sent Opus, not its own codec (conceal_steer.py)
        if event is None:
            raise DtmfError(f"call={self._call} no telephone-event negotiated on the {leg.value} leg")
        player = self._sip_dtmf if leg is Leg.SIP else self._web_dtmf
        return player.play(digits, event, duration_ms)

    def dtmf_from_info(self, content_type: str, body: str | bytes) -> asyncio.Task[None]:
        """A SIP INFO DTMF body (application/dtmf-relay or application/dtmf) played to the browser."""
        digit = parse_info_body(content_type, body)
        return self.send_dtmf(digit.digit, Leg.WEB, duration_ms=max(40, min(digit.duration_ms, 8000)))

    @staticmethod
    def info_body(event: DtmfReceived) -> tuple[str, str]:
        """The (Content-Type, body) of a SIP INFO carrying a digit heard on the web leg."""
        return DTMF_RELAY, format_dtmf_relay(event.digit, max(1, event.duration_ms))

    def send_text(self, text: str) -> bool:
        """Chat text to the browser on its data channel (gateway/media/webrtc/data_channel.py); False: none open."""
        return self._web.send_text(text)

    def _send_web_event(self, payload_type: int, payload: bytes, timestamp: int, marker: bool) -> None:
        self._web.send(payload, timestamp, payload_type, marker)

    # ----------------------------------------------------------------------------------- teardown

    def quality(self) -> dict[str, dict[str, object]]:
        """Per leg (call records, metrics, ops/quality.py): codec, packets sent, received, lost, recovered (RFC
        2198), jitter, RTT (s), `remote_loss` (the far end's RTCP fraction lost) and `own_loss` (own_loss.py)."""
        stats, chosen, endpoint = self.stats(), self._chosen, self._sip.endpoint
        web_gaps, sip_gaps = (p.passthrough and self._mixing is None for p in (self._to_web, self._to_sip))
        received, far = (endpoint.statistics, endpoint.far_end) if endpoint is not None else (None, None)
        sip_jitter = (
            received.jitter / received.clock_rate if received is not None and received.received else None
        )
        return {
            "web": {
                "codec": chosen.web if chosen is not None else None,
                "packets_received": stats.web_to_sip.received,
                "packets_sent": stats.sip_to_web.forwarded,
                "packets_lost": stats.web_to_sip.lost,
                "packets_recovered": stats.web_to_sip.recovered,
                "jitter": self._web.direct_receiver.jitter_seconds(),
                "rtt": self._web.direct_sender.rtt_seconds(),
                "remote_loss": _ratio(self._web.direct_sender.reported_loss),
                "own_loss": self._web.direct_sender.own_loss.loss(gaps=web_gaps),
            },
            "sip": {
                "codec": chosen.sip if chosen is not None else None,
                "packets_received": stats.sip_to_web.received,
                "packets_sent": stats.web_to_sip.forwarded,
                "packets_lost": stats.sip_to_web.lost,
                "packets_recovered": stats.sip_to_web.recovered,
                "jitter": sip_jitter,
                "rtt": far.rtt if far is not None else None,
                "remote_loss": _ratio(far.fraction_lost) if far is not None and far.reports else None,
                "own_loss": far.own.loss(gaps=sip_gaps) if far is not None else None,
            },
        }

    def stats(self) -> BridgeStats:
        if self.fast_lane is not None:
            self.fast_lane.account()  # what the engine forwarded since its last sync
        return BridgeStats(
            web_to_sip=self._to_sip.stats(),
            sip_to_web=self._to_web.stats(),
            transcoding=bool(self._chosen and self._chosen.transcoding),
            latency=self._latency.summary(),
            web_dropped=self._web.dropped + (self.fast_lane.dropped() if self.fast_lane is not None else 0),
            fast_lane_packets=self.fast_lane.packets if self.fast_lane is not None else 0,
        )

    @property
    def sip_audio(self) -> LegCodecs | None:
        """What the SIP side negotiated (its ``incoming`` says what its RTP's payload types carry)."""
        return self._sip.negotiated

    def add_tap(self, key: str, tap: Callable[[RtpPacket], None], closed: Callable[[], None]) -> None:
        """``tap`` gets every RTP packet from the SIP side (before the bridge handles it) until
        ``remove_tap(key)``; ``closed`` is called when the bridge closes first. The fast lane gives the
        sockets back meanwhile (its packets would never reach Python)."""
        if self._state is BridgeState.CLOSED:
            raise MediaError(f"call={self._call} the bridge is closed")
        self._taps[key] = (tap, closed)
        if self.fast_lane is not None:
            self.fast_lane.unlink()

    def remove_tap(self, key: str) -> None:
        """Stop ``key``'s tap (idempotent); the fast lane may link again when none is left."""
        removed = self._taps.pop(key, None) is not None
        if removed and self.fast_lane is not None and not self._taps and self._state is BridgeState.ACTIVE:
            self.fast_lane.update()

    async def close(self) -> None:
        """Stop DTMF, the web leg and the SIP endpoint; give the port back. Idempotent."""
        if self._state is BridgeState.CLOSED:
            return
        self._set_state(BridgeState.CLOSED)
        taps, self._taps = self._taps, {}
        for _, closed in taps.values():
            closed()
        self._web_watchdog.stop()
        self._web_presence.stop()
        self._conceal.stop()
        await self._fill.stop()
        await self._sip_dtmf.close()
        await self._web_dtmf.close()
        if self.fast_lane is not None:
            self.fast_lane.unlink()
        self._sip.close()
        if self.video is not None:
            self.video.close()
        if self.text is not None:
            self.text.close()
        await self._web.close()


def _ratio(fraction_lost: int | None) -> float | None:  # a report block's fraction lost (RFC 3550 §6.4.1)
    return None if fraction_lost is None else round(fraction_lost / 256, 4)


def _name(codec: sdp.Codec) -> str:
    return f"{codec.name}/{codec.clock_rate}"
