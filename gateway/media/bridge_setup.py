"""The media bridge's first offer and answer (gateway/media/bridge.py), either way, up to ACTIVE:

- the browser calls the PBX: ``offer_to_sip`` (``take_web_offer`` then ``sip_offer``), ``answer_from_sip``;
  the browser answered before the SIP side: ``answer_web_first``; a call pickup on the SIP side
  (RFC 3891): ``pickup_from_sip``;
- the PBX calls a browser: ``offer_to_web`` (``None``: a late offer), ``answer_from_web``;
- what every SDP we give the SIP side goes through (``_sip_offer_for``, ``_stamp_sip``), mid-call
  offers included.

``SetupOffers`` is a base of ``MediaBridge``, whose fields it uses (``bridge_state.BridgeFields``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import sdp
from gateway.media.bridge_state import BridgeError, BridgeFields, BridgeState
from gateway.media.codecs import codec_choice as choice
from gateway.media.conceal_steer import with_opus
from gateway.media.webrtc.web_sdp import audio_section, narrowband_hint, prune_offer

logger = logging.getLogger("gateway.media.bridge")


class SetupOffers(BridgeFields):
    """The bridge's offer/answer methods up to ACTIVE (see the module note)."""

    # ------------------------------------------------------------------------- browser calls PBX

    async def offer_to_sip(self, web_offer: str) -> str:
        """The plain RTP offer for the INVITE, from the browser's offer (kept for the answer)."""
        self.take_web_offer(web_offer)
        return await self.sip_offer()

    def take_web_offer(self, web_offer: str) -> bool:
        """The first half of ``offer_to_sip``: the browser's offer checked (SdpUnacceptable, 488, when it
        has nothing we take) and kept, the SIP leg's ports leased (a gateway out of ports fails here);
        ``sip_offer`` makes our SIP offer. In between ``answer_web_first`` may answer the browser (the HTTP
        offer API's early answer: the SIP leg's sockets and offer are then off its critical path). False
        when the browser's answer must wait for ``sip_offer``: its video codec is our SIP offer's first."""
        self._expect("take_web_offer", BridgeState.IDLE)
        offer = sdp.parse(web_offer)
        # pruned as the offer's check and the web leg prune it: one prune of the call's offer (issue 64)
        section = prune_offer(offer, data_channel=self.settings.data_channel).audio
        web_usable = choice.offered(section, self.settings.web_codecs)
        if not web_usable:
            raise sdp.SdpUnacceptable(f"the browser offers none of {list(self.settings.web_codecs)}")
        codecs = choice.sip_offer_codecs(self.settings.sip_codecs)
        self._sip.reserve()
        self._web.ice_sockets.reserve()  # the web leg's ICE pairs too: no room, no INVITE (issue 36)
        self._web_offer = offer
        self._sip_offer_codecs = codecs
        if self.text is not None:  # a T.140 channel the browser opens goes to the text, or is closed
            if self.settings.offer_webrtc or not self.text.wanted(offer):
                self.text.close()
            self._web.open_t140(self.text.adopt, ours=False)
        self._set_state(BridgeState.WEB_OFFER_TAKEN)
        video = self.video is not None and not self.settings.offer_webrtc
        return not (video and any(m.media == "video" for m in offer.media))

    async def sip_offer(self) -> str:
        """Our SIP offer of the browser's offer ``take_web_offer`` kept: the SIP leg's sockets opened."""
        self._expect("sip_offer", BridgeState.WEB_OFFER_TAKEN)
        offer, codecs = self._web_offer, self._sip_offer_codecs
        if offer is None or codecs is None:
            raise BridgeError(f"call={self._call} sip_offer() without the browser's offer")
        await self._sip.open(codecs)
        self._set_state(BridgeState.AWAITING_SIP_ANSWER)
        description = self._sip_offer_for(codecs, sdp.Direction.SENDRECV)
        picture = None
        if self.video is not None and not self.settings.offer_webrtc:
            picture = await self.video.offer_section(offer, None)
        if picture is not None and self.video is not None:  # the web leg's transceiver once it is taken
            self.video.index = len(description.media)
            description = description.with_media([*description.media, picture])
        if self.text is not None and not self.text.ended:
            typed = await self.text.offer_section(None)  # RFC 4103 text, bridged to a T.140 channel
            self.text.index = len(description.media)
            description = description.with_media([*description.media, typed])
        return sdp.write(self._stamp_sip(description))

    async def answer_from_sip(self, plain_answer: str) -> str:
        """Apply the SIP answer (183 or 200; may come twice with different SDP); the browser's answer."""
        self._expect("answer_from_sip", BridgeState.AWAITING_SIP_ANSWER, BridgeState.ACTIVE)
        if self._web_offer is None:
            raise BridgeError(f"call={self._call} answer_from_sip() on a call from the SIP side")
        answer = sdp.parse(plain_answer)
        index, section = audio_section(answer)
        sip = self._sip.apply(section, answer, index, answer.effective_direction(index).reversed())
        self._sip.keys_from_answer(section, answer, index)
        if self.video is not None and self._web_answer is None:
            self.video.apply_sip_answer(answer)
        elif self.video is not None and self.video.tentative and not self.video.active:
            self.video.apply_sip_answer(answer)  # the browser was answered first: its codec must be taken
            self.video.apply_web(sdp.parse(self._web_answer or ""))
        web_answer = self._web_answer or await self._answer_web([sip.codec])
        if self.text is not None and self.text.index is not None and not self.text.active:
            self._text_answered(answer)
        if self._state is BridgeState.AWAITING_SIP_ANSWER:
            self._set_state(BridgeState.ACTIVE)
        self._configure_paths()
        return web_answer

    def _text_answered(self, answer: sdp.SessionDescription) -> None:
        """The SIP side's answer to our ``m=text``: taken, the T.140 channel is ours to open unless the
        browser opens its own; turned down, the text ends (the browser's channel, if any, is closed)."""
        assert self.text is not None
        if self.text.apply_sip_answer(answer) and not self.text.browser_opens:
            self._web.open_t140(self.text.adopt)
        elif not self.text.active:
            self.text.index = None

    async def answer_web_first(self) -> str:
        """The browser's answer before the SIP side answered (an API client that wants it at once): the
        web leg takes the first codec of our SIP offer that the browser offered, so that a PBX that picks
        our first choice needs no transcoding; ``answer_from_sip`` then only sets up the paths (and
        transcodes if the SIP side chose another codec). Media flows once the SIP side answers (183/200)."""
        self._expect("answer_web_first", BridgeState.WEB_OFFER_TAKEN, BridgeState.AWAITING_SIP_ANSWER)
        if self._web_answer is not None:
            return self._web_answer
        if self._web_offer is None:
            raise BridgeError(f"call={self._call} answer_web_first() on a call from the SIP side")
        ours = choice.sip_offer_codecs(self.settings.sip_codecs)
        if self.video is not None:
            self.video.answer_first()  # the browser gets the first video codec of our SIP offer
        return await self._answer_web(ours)

    async def _answer_web(self, preferred: list[sdp.Codec]) -> str:
        """Accept the browser's offer with the first of ``preferred`` it offered (else its first usable).
        ``preferred`` is what the SIP side answered with, or may (one of our SIP offer's): when none is
        Opus the browser's Opus is transcoded, and the answer carries Opus's playback hints."""
        if self._web_offer is None:
            raise BridgeError(f"call={self._call} no browser offer to answer")
        web_section = audio_section(self._web_offer)[1]
        web_usable = choice.offered(web_section, self.settings.web_codecs)
        web = choice.first_common(preferred, web_usable) or web_usable[0]
        if self.video is not None and (self.video.active or self.video.tentative):  # the browser too
            self.video.attach(self._web)
        elif self.video is not None:
            self.video.close()  # answered before the SIP side (answer_web_first), or refused there
        audio = with_opus(web, web_usable, self.settings.g711_to_web)  # Opus: ours to send (conceal_steer)
        local = await self._web.accept_offer(
            self._web_offer, [*audio, *choice.WEB_EVENTS], self._video_codecs()
        )
        self._web_answer = sdp.write(narrowband_hint(local, preferred))
        self._apply_web(web_section, audio_section(local)[1], answering=True)
        if self.video is not None:
            self.video.apply_web(local)
        return self._web_answer

    def _video_codecs(self) -> list[sdp.Codec]:
        """The video codecs the browser may be answered with: those the SIP side took (issue 19)."""
        return (self.video.sip_codecs or self.video.tentative) if self.video is not None else []

    # ------------------------------------------------------------------------- PBX calls browser

    async def offer_to_web(self, plain_offer: str | None, family: str | None = None) -> str:
        """The offer for the browser, from the SIP side's INVITE offer (the SIP leg's RTP in the offer's
        address family); ``None`` for an INVITE without one (a late offer): the browser is offered the
        SIP leg's codecs first, then the web leg's, and our SIP offer will be in ``family`` (that of the
        INVITE's source; None: the default family)."""
        self._expect("offer_to_web", BridgeState.IDLE)
        if plain_offer is None:
            sip_codecs = [choice.known(name) for name in self.settings.sip_codecs]
            self._sip_family = family
            if self.video is not None and not self.settings.offer_webrtc and self.video.offer_late():
                self.video.attach(self._web)  # the browser's video answer makes our SIP offer's video
        else:
            offer = sdp.parse(plain_offer)
            index = sdp.check_audio_offer(offer, self.settings.sip_codecs, srtp=self.settings.sip_srtp)
            sip_codecs = choice.offered_by_sip(offer.media[index], self.settings.sip_codecs)
            if not sip_codecs:
                raise sdp.SdpUnacceptable(f"the SIP offer has none of {list(self.settings.sip_codecs)}")
            connection = offer.connection_for(index)
            family = connection.address_type if connection is not None else None
            await self._sip.open(sip_codecs, family)
            self._sip.set_remote(offer, index)
            self._sip_offer = offer
            if self.video is not None and await self.video.open_for_sip_offer(offer, family):
                self.video.attach(self._web)  # the browser is offered the phone's video too
            if self.text is not None and await self.text.open_for_sip_offer(offer, family):
                self._web.open_t140(self.text.adopt)  # the phone's text on a T.140 data channel
        self._set_state(BridgeState.AWAITING_WEB_ANSWER)
        local = await self._web.create_offer(
            choice.web_preferences(sip_codecs, self.settings.web_codecs),
            self.video.offered if self.video is not None else (),
        )
        # the phone's codecs are all the browser's Opus can become (a late offer: ours, maybe Opus)
        return sdp.write(narrowband_hint(local, sip_codecs))

    async def answer_from_web(self, web_answer: str) -> str:
        """Apply the browser's answer; the plain RTP answer for the SIP side. After a late offer, our
        offer for the 200 instead (the browser's codec first), answered by ``answer_to_reoffer``."""
        self._expect("answer_from_web", BridgeState.AWAITING_WEB_ANSWER)
        offer, local = self._sip_offer, self._web.local
        assert local is not None
        answer = sdp.parse(web_answer)
        await self._web.accept_answer(answer)
        web = self._apply_web(audio_section(local)[1], audio_section(answer)[1], answering=False)
        if offer is None:
            codecs = choice.sip_offer_codecs(self.settings.sip_codecs, [web.codec])
            address, port = await self._sip.open(codecs, self._sip_family)
            description = choice.plain_offer(
                codecs,
                address=address,
                port=port,
                telephone_event=self.settings.telephone_event,
                **self._sdes(),
            )
            picture = await self.video.offer_section(answer, self._sip_family) if self.video else None
            if picture is not None and self.video is not None:  # the browser's video, to the phone
                self.video.index = len(description.media)
                description = description.with_media([*description.media, picture])
                self.video.apply_web(answer)
            plain = self._stamp_sip(description)
            self._reoffer = (plain, False)
            logger.info("call=%s late offer: our offer goes in the 200", self._call)
        else:
            sip_offered = choice.offered_by_sip(
                offer.media[
                    sdp.check_audio_offer(offer, self.settings.sip_codecs, srtp=self.settings.sip_srtp)
                ],
                self.settings.sip_codecs,
            )
            plain = self._sip.answer(offer, choice.first_common([web.codec], sip_offered) or sip_offered[0])
            picture = self.video.answer_sip_offer(answer, sdp.Direction.SENDRECV) if self.video else None
            if picture is not None and self.video is not None and self.video.index is not None:
                where = self.video.index  # the phone's video m-line: our answer mirrors its offer
                plain = plain.with_media([picture if i == where else m for i, m in enumerate(plain.media)])
                self.video.apply_web(answer)
            typed = self.text.answer_sip_offer(sdp.Direction.SENDRECV) if self.text is not None else None
            if typed is not None and self.text is not None and self.text.index is not None:
                where = self.text.index  # the phone's m=text: our answer mirrors its offer
                plain = plain.with_media([typed if i == where else m for i, m in enumerate(plain.media)])
            plain = self._stamp_sip(plain)
        self._set_state(BridgeState.ACTIVE)
        self._configure_paths()
        return sdp.write(plain)

    async def pickup_from_sip(self, plain_offer: str | None) -> tuple[str, str]:
        """Call pickup (RFC 3891 §3): a new SIP party's INVITE with Replaces takes over our outbound call
        before its answer. Its offer replaces the one we sent (never answered, or answered only in an
        early 18x): the SIP leg answers it, and the browser's offer is answered now if no early media
        answered it yet. Returns (the SIP answer, the browser's answer)."""
        self._expect("pickup_from_sip", BridgeState.AWAITING_SIP_ANSWER, BridgeState.ACTIVE)
        if self._web_offer is None:
            raise BridgeError(f"call={self._call} pickup_from_sip() on a call from the SIP side")
        if plain_offer is None:  # an offerless INVITE: our INVITE's offer again, in its 200
            return await self._pickup_offer()
        offer = sdp.parse(plain_offer)
        index = sdp.check_audio_offer(offer, self.settings.sip_codecs, srtp=self.settings.sip_srtp)
        offered = choice.offered_by_sip(offer.media[index], self.settings.sip_codecs)
        if not offered:
            raise sdp.SdpUnacceptable(f"the pickup offer has none of {list(self.settings.sip_codecs)}")
        if self._web_answer is None:
            web_section = audio_section(self._web_offer)[1]
            web_usable = choice.offered(web_section, self.settings.web_codecs)
            web = choice.first_common(offered, web_usable) or web_usable[0]
            local = await self._web.accept_offer(
                self._web_offer, [choice.known(web.name), *choice.WEB_EVENTS]
            )
            self._web_answer = sdp.write(narrowband_hint(local, offered))  # the pickup's codecs
            self._apply_web(web_section, audio_section(local)[1], answering=True)
            self._set_state(BridgeState.ACTIVE)
        assert self._web_side is not None
        codec = choice.first_common([self._web_side.codec], offered) or offered[0]
        answer = self._sip.answer(offer, codec)
        self._configure_paths()
        logger.info("call=%s picked up on the SIP side: %s", self._call, codec.name)
        return sdp.write(self._stamp_sip(answer)), self._web_answer

    async def _pickup_offer(self) -> tuple[str, str]:
        """An offerless pickup (RFC 3261 §13.2.1): the offer of our INVITE again (its next version) for the
        200, and the browser's answer with that offer's first codec, unless early media answered it; the
        ACK's answer then comes through ``answer_from_sip`` as any answer to our offer does."""
        last = self._sip_local
        if last is None:
            raise BridgeError(f"call={self._call} offerless pickup before any SIP offer")
        web_answer = self._web_answer or await self.answer_web_first()
        logger.info("call=%s picked up on the SIP side without an offer: ours goes in the 200", self._call)
        return sdp.write(self._stamp_sip(last)), web_answer

    # ----------------------------------------------------------------------------------- re-offers

    def _sip_offer_for(self, codecs: list[sdp.Codec], direction: sdp.Direction) -> sdp.SessionDescription:
        """Our offer to the SIP side with ``codecs``: plain RTP (SDES when configured), or WebRTC media
        (DTLS-SRTP, ICE-lite) to a SIP side that takes nothing else (BridgeSettings.offer_webrtc)."""
        endpoint = self._sip.endpoint
        assert endpoint is not None
        address, port = self._sip.sdp_address, endpoint.local_rtp_address[1]
        if self.settings.offer_webrtc:
            dtls, ice, candidate = self._sip.webrtc_offer_parameters()
            return choice.webrtc_offer(
                codecs, address=address, port=port, telephone_event=self.settings.telephone_event,
                dtls=dtls, ice=ice, candidate=candidate, direction=direction,
            )  # fmt: skip
        return choice.plain_offer(
            codecs, address=address, port=port, telephone_event=self.settings.telephone_event,
            direction=direction, **self._sdes(),
        )  # fmt: skip

    def _sdes(self) -> dict[str, Any]:
        """plain_offer's SDES arguments: our key when our offers carry one (RTP/SAVP when required)."""
        return {"crypto": self._sip.offer_crypto(), "secure": self.settings.sip_srtp == "required"}

    def _stamp_sip(self, description: sdp.SessionDescription, *, keep: bool = True) -> sdp.SessionDescription:
        """``description`` as the next SDP we give the SIP side: the o= line of our first one, its version
        one above the highest we used (RFC 3264 §8: answers included); kept as the last unless ``keep``
        is False (a re-offer, kept once answered)."""
        last = self._sip_local
        if last is None:
            self._sip_version = description.origin.session_version
        else:
            self._sip_version = (self._sip_version + 1) % 2**64
            origin = replace(last.origin, session_version=self._sip_version)
            description = replace(description, origin=origin)
        if keep or last is None:
            self._sip_local = description
        return description
