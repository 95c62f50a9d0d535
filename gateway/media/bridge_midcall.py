"""Mid-call offers of the media bridge (gateway/media/bridge.py), either way, on an ACTIVE bridge:

- the SIP side's re-INVITE/UPDATE (hold, resume, a new address): ``update_from_sip`` answers at once;
- the web user's hold and resume (RFC 3264 §8.4): ``reoffer_to_sip`` -> ``answer_to_reoffer`` (or
  ``drop_reoffer`` when none comes); the browser's own re-offer: ``update_from_web``;
- video added or dropped mid-call (escalation, issue 19): by the SIP side, ``reoffer_web_for_sip`` ->
  ``reanswer_from_web`` (or ``cancel_web_reoffer``); by the browser, ``reoffer_sip_for_web`` ->
  ``answer_web_reoffer`` (or ``cancel_sip_reoffer``);
- the browser's re-offer that restarts ICE (issue 34): ``restart_from_web`` restarts it in place and
  answers at once, the SIP side untouched.

``MidCallOffers`` is a base of ``MediaBridge``, whose fields it uses (``bridge_state.BridgeFields``).
"""

from __future__ import annotations

import logging

import sdp
from gateway.media.bridge_state import BridgeError, BridgeFields, BridgeState
from gateway.media.codecs import codec_choice as choice
from gateway.media.errors import MediaError
from gateway.media.webrtc import offer_restart
from gateway.media.webrtc.web_sdp import audio_section, narrowband_hint, prune_offer, refused_with_transport

logger = logging.getLogger("gateway.media.bridge")


class MidCallOffers(BridgeFields):
    """The bridge's mid-call offer/answer methods (see the module note)."""

    def _for_browser(self, local: sdp.SessionDescription) -> sdp.SessionDescription:
        """A description for the browser, with Opus's playback hints when the SIP side's codec is narrower
        (``web_sdp.narrowband_hint``): every offer and answer of the call says the same, so that a
        browser's re-offer (hold, resume) does not widen its Opus again."""
        negotiated = self._sip.negotiated
        return narrowband_hint(local, [negotiated.codec]) if negotiated is not None else local

    async def update_from_sip(self, plain_offer: str) -> str:
        """A re-INVITE from the SIP side (hold, resume, new address): the answer to send back."""
        self._expect("update_from_sip", BridgeState.ACTIVE)
        offer = sdp.parse(plain_offer)
        offered = choice.offered_by_sip(
            offer.media[sdp.check_audio_offer(offer, self.settings.sip_codecs, srtp=self.settings.sip_srtp)],
            self.settings.sip_codecs,
        )
        if not offered:
            raise sdp.SdpUnacceptable(f"the SIP re-offer has none of {list(self.settings.sip_codecs)}")
        current = [self._sip.negotiated.codec] if self._sip.negotiated is not None else []
        # While the web user holds, our answer keeps the hold: sendonly at most (RFC 3264 §8.4).
        policy = sdp.Direction.SENDONLY if self._local_hold else sdp.Direction.SENDRECV
        answer = self._sip.answer(offer, choice.first_common(current, offered) or offered[0], policy)
        picture = self.video.answer_reoffer(offer, policy) if self.video is not None else None
        if picture is not None and self.video is not None and self.video.index is not None:
            where = self.video.index  # the video goes on (a session refresh, a hold, a new address)
            answer = answer.with_media([picture if i == where else m for i, m in enumerate(answer.media)])
        typed = self.text.answer_reoffer(offer, policy) if self.text is not None else None
        if typed is not None and self.text is not None and self.text.index is not None:
            where = self.text.index  # the text goes on, as the re-offer says (a hold is often the audio only)
            answer = answer.with_media([typed if i == where else m for i, m in enumerate(answer.media)])
        self._configure_paths()
        return sdp.write(self._stamp_sip(answer))

    async def reoffer_web_for_sip(self, plain_offer: str) -> str | None:
        """A SIP re-offer that adds video to the call or turns the video in use down (escalation, issue
        19): the browser's new offer (its answer goes to ``reanswer_from_web``, which answers the SIP
        side); None when the video does not change (``update_from_sip`` answers at once)."""
        self._expect("reoffer_web_for_sip", BridgeState.ACTIVE)
        video, offer = self.video, sdp.parse(plain_offer)
        change = video.change_of(offer) if video is not None and self._reoffer is None else None
        if video is None or change is None:
            return None
        if not self._web.renegotiable:
            raise sdp.SdpUnacceptable("the browser's session cannot take a new offer now")
        if change == "add":
            connection = offer.connection_for(audio_section(offer)[0])
            family = connection.address_type if connection is not None else None
            if not await video.open_for_sip_offer(offer, family):
                return None
            video.attach(self._web)
        try:
            local = await self._web.reoffer(video.offered if change == "add" else ())
        except (sdp.SdpError, MediaError):
            if change == "add":
                video.close()
            raise
        self._web_reoffer = (plain_offer, change)
        logger.info(
            "call=%s the SIP side's re-offer %ss video: the browser is offered again", self._call, change
        )
        return sdp.write(self._for_browser(local))

    async def reanswer_from_web(self, web_answer: str) -> str:
        """The browser's answer to ``reoffer_web_for_sip``: applied to the web leg; the answer to the SIP
        side's re-offer (its video as the browser took it: port 0 when it did not)."""
        self._expect("reanswer_from_web", BridgeState.ACTIVE)
        if self._web_reoffer is None or self.video is None:
            raise BridgeError(f"call={self._call} reanswer_from_web() without a re-offer to the browser")
        (plain_offer, change), self._web_reoffer = self._web_reoffer, None
        answer = sdp.parse(web_answer)
        await self._web.accept_reanswer(answer)
        if change == "add":
            self.video.answer_sip_offer(answer, sdp.Direction.SENDRECV)  # the codecs the browser took
            self.video.apply_web(answer)
            self.video.web_connected()  # both sides start from a keyframe
        return await self.update_from_sip(plain_offer)

    async def cancel_web_reoffer(self) -> None:
        """The browser did not answer ``reoffer_web_for_sip`` in time: the web leg is put back as it was
        (an answer keeping every m-line as negotiated, a new video turned down) and a new video's SIP
        endpoint closed; the SIP side is refused (the call goes on as before)."""
        pending, self._web_reoffer = self._web_reoffer, None
        if pending is None or self._state is not BridgeState.ACTIVE:
            return
        if pending[1] == "add" and self.video is not None:
            self.video.close()
        await self._web.abandon_reoffer()
        logger.info(
            "call=%s the browser did not answer the re-offer: the session stays as it was", self._call
        )

    async def reoffer_sip_for_web(self, web_offer: str) -> str:
        """The browser's own new offer mid-call adds video or drops it (escalation from the browser, issue
        19): our re-INVITE's offer to the SIP side, the last SDP we gave it with the browser's video m-line
        added (in a rejected video m-line's slot, else last, RFC 3264 §8.1, on a port of its own) or the
        video in use at port 0 (§8.2). The web leg is untouched until ``answer_web_reoffer`` (the SIP 2xx);
        ``cancel_sip_reoffer`` when the SIP side refuses. ``SdpUnacceptable`` when the offer does neither."""
        self._expect("reoffer_sip_for_web", BridgeState.ACTIVE)
        video, last = self.video, self._sip_local
        if video is None:
            raise sdp.SdpUnacceptable("video is off on this gateway (codecs.video)")
        if last is None or self._reoffer is not None or self._web_reoffer is not None:
            raise sdp.SdpUnacceptable("another offer is under way")
        offer = sdp.parse(web_offer)
        prune_offer(offer)  # an offer the web leg could take at all (audio in a DTLS profile, ICE)
        wanted = any(m.media == "video" and not m.rejected for m in offer.media)
        if wanted == video.active:
            raise sdp.SdpUnacceptable(f"the new offer {'keeps' if wanted else 'has'} no video change")
        if wanted:
            connection = last.connection_for(audio_section(last)[0])
            picture = await video.offer_section(offer, connection.address_type if connection else None)
            if picture is None:
                raise sdp.SdpUnacceptable(f"the browser offers none of {list(self.settings.video_codecs)}")
            slot = next((i for i, m in enumerate(last.media) if m.media == "video" and m.rejected), None)
            video.index = len(last.media) if slot is None else slot
            media = [*last.media[: video.index], picture, *last.media[video.index + 1 :]]
        else:
            media = [
                sdp.MediaDescription(m.media, 0, m.proto, m.formats) if i == video.index else m
                for i, m in enumerate(last.media)
            ]
        ours = self._stamp_sip(last.with_media(media), keep=False)
        self._browser_reoffer = (offer, ours, "add" if wanted else "remove")
        logger.info("call=%s the browser's new offer %ss video: the SIP side is offered it", self._call,
                    "add" if wanted else "remove")  # fmt: skip
        return sdp.write(ours)

    async def answer_web_reoffer(self, plain_answer: str) -> str:
        """The SIP side's 2xx answer to ``reoffer_sip_for_web``: applied, then the browser's offer taken by
        the web leg (same ICE/DTLS); the answer for the browser, its video as the SIP side took it (port 0
        when it turned it down or the browser dropped it)."""
        self._expect("answer_web_reoffer", BridgeState.ACTIVE)
        pending, self._browser_reoffer = self._browser_reoffer, None
        if pending is None or self.video is None or self._web_side is None:
            raise BridgeError(f"call={self._call} answer_web_reoffer() without the browser's offer out")
        offer, ours, change = pending
        answer = sdp.parse(plain_answer)
        index, section = audio_section(answer)
        self._sip.apply(section, answer, index, answer.effective_direction(index).reversed())
        self._sip.keys_from_answer(section, answer, index)
        self._sip_local = ours
        if change == "add" and self.video.apply_sip_answer(answer):
            self.video.attach(self._web)  # bundled on the audio's transport (connected leg)
        elif change == "remove":
            logger.info("call=%s the browser drops the video", self._call)
            self.video.close()
        preferences = [choice.known(self._web_side.codec.name), *choice.WEB_EVENTS]
        local = await self._web.accept_offer(offer, preferences, self._video_codecs())
        self._apply_web(audio_section(offer)[1], audio_section(local)[1], answering=True)
        self.video.apply_web(local)
        local = refused_with_transport(local, offer)
        if self.video.active:
            self.video.web_connected()  # both sides start from a keyframe
        self._web_answer = sdp.write(self._for_browser(local))
        self._configure_paths()
        return self._web_answer

    def cancel_sip_reoffer(self) -> None:
        """The SIP side refused ``reoffer_sip_for_web``'s offer: a new video's endpoint closes, the session
        stays as it was (RFC 3261 §14.1)."""
        pending, self._browser_reoffer = self._browser_reoffer, None
        if pending is not None and pending[2] == "add" and self.video is not None:
            self.video.close()
        if pending is not None:
            logger.info("call=%s the SIP side refused the browser's new offer: nothing changes", self._call)

    @property
    def local_hold(self) -> bool:
        """Whether the web user holds the call (an answered ``reoffer_to_sip(hold=True)``)."""
        return self._local_hold

    @property
    def awaiting_reanswer(self) -> bool:
        """Whether a ``reoffer_to_sip`` offer waits for its answer (``answer_to_reoffer``)."""
        return self._reoffer is not None

    async def reoffer_to_sip(self, hold: bool, *, full: bool = False) -> str:
        """Our re-INVITE's offer for the web user's hold (``a=sendonly``) or resume (``a=sendrecv``): the
        last SDP we gave the SIP side with the audio direction set and the o= version incremented
        (RFC 3264 §8, §8.4). ``full``: every codec the SIP leg allows, the current one first (the offer
        in a 2xx to an offerless re-INVITE, RFC 6337 §5.3). Nothing changes until ``answer_to_reoffer``."""
        self._expect("reoffer_to_sip", BridgeState.ACTIVE)
        last, endpoint, current = self._sip_local, self._sip.endpoint, self._sip.negotiated
        if last is None or endpoint is None:
            raise BridgeError(f"call={self._call} reoffer_to_sip() before any SIP description")
        direction = sdp.Direction.SENDONLY if hold else sdp.Direction.SENDRECV
        if full:
            first = [current.codec] if current is not None else []
            codecs = choice.sip_offer_codecs(self.settings.sip_codecs, first)
            description = self._sip_offer_for(codecs, direction)
        else:
            index, _ = audio_section(last)
            picture = self.video.index if self.video is not None and self.video.active else None
            media = [
                m.with_direction(direction) if i in (index, picture) and not m.rejected else m
                for i, m in enumerate(last.media)
            ]
            description = last.without(*(d.value for d in sdp.Direction)).with_media(media)
        offer = self._stamp_sip(description, keep=False)
        self._reoffer = (offer, hold)
        logger.info("call=%s re-offer to the SIP side: %s%s", self._call, direction.value, " (full)" * full)
        return sdp.write(offer)

    def drop_reoffer(self) -> None:
        """Forget the re-offer out: it will get no answer (an ACK without one), the session stays."""
        if self._reoffer is not None:
            logger.info("call=%s the re-offer got no answer: the session stays as it was", self._call)
            if self.video is not None and self.video.awaiting_answer:
                self.video.close()  # a late offer's video that was never answered
        self._reoffer = None

    async def answer_to_reoffer(self, plain_answer: str) -> None:
        """Apply the SIP side's answer to ``reoffer_to_sip``: the new direction, address and codecs; while
        the web user holds, no audio is forwarded either way."""
        self._expect("answer_to_reoffer", BridgeState.ACTIVE)
        if self._reoffer is None:
            raise BridgeError(f"call={self._call} answer_to_reoffer() without a re-offer out")
        offer, hold = self._reoffer
        answer = sdp.parse(plain_answer)
        index, section = audio_section(answer)
        self._sip.apply(section, answer, index, answer.effective_direction(index).reversed())
        self._sip.keys_from_answer(section, answer, index)
        video = self.video
        if video is not None and video.awaiting_answer and video.apply_sip_answer(answer):
            video.web_connected()  # a late offer's video (our 200's, the ACK's answer): from a keyframe
        self._reoffer = None
        self._sip_local = offer
        if hold != self._local_hold:
            logger.info("call=%s local hold %s -> %s", self._call, self._local_hold, hold)
        self._local_hold = hold
        self._configure_paths()

    async def update_from_web(self, web_offer: str) -> str:
        """A re-offer from the browser (hold, resume): the answer to send back."""
        self._expect("update_from_web", BridgeState.ACTIVE)
        assert self._web_side is not None
        offer = sdp.parse(web_offer)
        preferences = [choice.known(self._web_side.codec.name), *choice.WEB_EVENTS]
        local = await self._web.accept_offer(offer, preferences, self._video_codecs())
        self._apply_web(audio_section(offer)[1], audio_section(local)[1], answering=True)
        if self.video is not None:
            self.video.apply_web(local)
        self._web_answer = sdp.write(self._for_browser(local))
        self._configure_paths()
        return self._web_answer

    async def restart_from_web(self, web_offer: str) -> str | None:
        """The browser's new offer on the same RTCPeerConnection restarts ICE (a new ice-ufrag: a SIP
        library's re-INVITE, a `/ws` or JSON-RPC `offer` for the call, an HTTP offer for the session):
        ICE restarts in place (``WebRtcLeg.restart_ice``: DTLS and SRTP go on, the media too, on the new
        pair once the browser nominated one), the offer's candidates join the new session, and the answer
        is the last SDP we gave the browser with our new credentials (``offer_restart``). None when the
        offer keeps the ICE session (hold, resume, a refresh); ``SdpUnacceptable`` when it changes the
        DTLS fingerprint, ``MediaError`` when the web leg cannot restart now (not connected)."""
        self._expect("restart_from_web", BridgeState.ACTIVE)
        ufrag, dtls = self._web.remote_session()
        restart = offer_restart.restart_offered(web_offer, ufrag, dtls.fingerprints if dtls else ())
        if restart is None:
            return None
        fragment = self._web.restart_ice(restart.ice)
        for init in restart.inits():
            await self._web.add_candidate(init)
        assert fragment.ice is not None
        ours = self._web_answer
        if ours is None:  # we offered the call: our offer, with the DTLS role the browser's answer settled
            local = self._web.local
            assert local is not None  # as the browser had it: Opus's fmtp and red before Opus (sdp/opus.py)
            role = "passive" if dtls is not None and dtls.setup is sdp.Setup.ACTIVE else "active"
            given = self._for_browser(self._web.given_to_browser(local))
            ours = sdp.write(given).replace("a=setup:actpass", f"a=setup:{role}")
        self._web_answer = offer_restart.with_credentials(ours, fragment.ice)
        logger.info("call=%s the browser's re-offer restarts ICE: restarted in place", self._call)
        return self._web_answer
