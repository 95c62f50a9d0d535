"""The web leg: one aiortc RTCPeerConnection, audio only, with raw RTP in and out (no decoding).

How it works:

* Always built with the configured ICE servers (``RTCConfiguration(iceServers=[...])``, even empty):
  aiortc's default is a public STUN server that stalls gathering where it is unreachable.
* One audio transceiver exists before any description is applied, so codec preferences take effect
  (they must be set before ``setRemoteDescription``). RTP goes around aiortc's queues, tasks, encoder
  and decoder (``aiortc_hooks``): ``send()`` writes SRTP to the socket at once (``DirectSender``), and
  decrypted packets come to ``on_rtp`` straight from the socket callback (``DirectReceiver``; the few
  that arrive before it starts come through the receiver tap). Payloads are never decoded or encoded.
* A browser's first audio offer is answered, and our first offer to a browser given, before aiortc's
  own steps (``web_answer``, ``web_offer``: on the sockets the ICE socket pool bound); those run after
  in a task the leg's other methods wait for, and must write the same, else the leg fails.
* Browser offers are pruned to their audio m-line for aiortc and the answer restored (``web_sdp``); with
  ``data_channel`` the offer's data channel m-line bundled with the audio is kept too, and the channels
  the browser opens carry chat text (``data_channel.ChatChannels``: ``TextReceived`` events, ``send_text``).
* Remote mDNS candidates are resolved in background tasks, bounded by ``mdns_timeout``: a name nobody
  answers never blocks signaling. End-of-candidates before any candidate is ignored (aioice would fail
  at once; a late candidate can still connect, and ``ice_timeout`` ends the wait otherwise).
* States: NEW -> NEGOTIATING (descriptions exchanged) -> CONNECTED -> CLOSED, or FAILED on ICE or DTLS
  failure or when ICE does not connect within ``ice_timeout``. Failures are reported once, as events.
  The states, their transitions and ``WebLegError`` are in ``web_leg_state``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCIceCandidate, RTCIceServer, RTCSessionDescription
from aiortc.rtcdtlstransport import RTCCertificate
from aiortc.rtcicetransport import candidate_from_aioice
from aiortc.rtp import RtpPacket as AiortcRtpPacket
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

import sdp
from gateway.media import slim_waiters
from gateway.media.errors import PortAllocationError
from gateway.media.events import (
    DtlsFailed,
    IceFailed,
    IcePathChanged,
    MediaConnected,
    MediaEvent,
    TextReceived,
)
from gateway.media.webrtc import (
    aiortc_direct,
    aiortc_dtls,
    aiortc_hooks,
    aiortc_receive,
    aiortc_rtcp,
    ice_completion,
    ice_consent,
    ice_ports,
    ice_urls,
    offer_restart,
    web_codecs,
    web_sdp,
)
from gateway.media.webrtc.ahead import peer_pool, web_answer, web_offer
from gateway.media.webrtc.data_channel import T140, ChatChannels
from gateway.media.webrtc.ice_restart import InPlaceRestart, check_internals, take_control_in_conflicts
from gateway.media.webrtc.web_codecs import capabilities as capabilities
from gateway.media.webrtc.web_leg_state import TRANSITIONS, IceSocketsError, WebLegError, WebLegState
from gateway.media.webrtc.web_video import WebVideo

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebLegOptions:
    """``host_addresses`` replaces the gathered host addresses (``ice.host_addresses``: the addresses
    browsers can reach; None: every interface) and ``include_loopback`` adds 127.0.0.1 (aioice leaves
    it out; for a gateway on loopback). ``certificate``: the process's DTLS certificate (None: aiortc
    makes one per peer connection, ~1 ms of the event loop)."""

    ice_servers: tuple[RTCIceServer, ...] = ()
    include_loopback: bool = False
    host_addresses: tuple[str, ...] | None = None
    certificate: RTCCertificate | None = None
    ice_timeout: float = 20.0
    mdns_timeout: float = 2.0
    data_channel: bool = False  # accept the browser's data channel m-line (chat: data_channel.py)
    rtcp_interval: float = 5.0  # our RTCP reports to the browser (aiortc_rtcp: RFC 3550 §6.2, as the SIP leg)
    opus_usedtx: bool = False  # usedtx=1 beside useinbandfec=1 in our Opus fmtp (media.opus_usedtx)
    opus_red: str = "off"  # RFC 2198 redundancy with the browser (media.opus_red; web_codecs.RED_MODES)
    ports: ice_ports.PortSource | None = None  # the range ICE sockets are leased from; None: the OS's
    peers: peer_pool.PeerPool | None = None  # peer connections made ahead (peer_pool); None: here

    def __post_init__(self) -> None:
        if self.rtcp_interval <= 0 or self.opus_red not in web_codecs.RED_MODES:
            raise ValueError(f"bad rtcp_interval {self.rtcp_interval!r} or opus_red {self.opus_red!r}")


class WebRtcLeg:
    """One browser's media: SDP in and out, tapped RTP in (``on_rtp``), payloads out (``send``)."""

    def __init__(
        self,
        options: WebLegOptions,
        *,
        on_rtp: aiortc_receive.RawRtpHandler,
        on_event: Callable[[MediaEvent], None],
        call_id: str = "-",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_rtp(ssrc, sequence, timestamp, payload_type, marker, payload)`` gets each decrypted packet
        while connected; ``clock`` is the one ``send()``'s ``now`` comes from (for sender reports)."""
        aiortc_hooks.register_telephone_event()
        ice_urls.accept_ipv6_literals()  # ice.gateway's turn:[2001:db8::1] (RFC 7065 §3.1)
        if options.opus_red != "off":
            aiortc_hooks.register_red()
        self._options, self._on_rtp, self._on_event, self._call = options, on_rtp, on_event, call_id
        self._state = WebLegState.NEW
        pool = options.peers
        made = pool.take if pool is not None else peer_pool.make
        self._pc, self._transceiver = made(options.ice_servers, options.certificate)
        self._sender = aiortc_direct.attach_direct_sender(self._transceiver.sender, clock=clock)
        self._sender.red_mode = options.opus_red
        self._receiver = aiortc_receive.attach_direct_receiver(self._transceiver.receiver, self._direct)
        self.rtcp = aiortc_rtcp.attach_direct_rtcp(
            self._sender, self._receiver, interval=options.rtcp_interval
        )
        aiortc_hooks.tap_receiver(self._transceiver.receiver, self._tapped)
        self.ice_sockets = ice_ports.IceSockets.of(self._pc, options, call_id)  # ICE sockets in the range
        self._pruned: web_sdp.PrunedOffer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._remote_candidates = 0
        self._ice_timer: asyncio.TimerHandle | None = None
        self._pc.on("connectionstatechange", self._connection_state_changed)
        self._ice_lost = False  # aioice's consent expired (RFC 7675): the browser stopped answering
        self.on_answer: Callable[[], None] | None = None  # the browser answered a consent check: it is there
        ice_consent.on_consent_expired(
            self._pc, self._consent_expired, media_count=self._receiver.media_progress,
            answered=lambda: self.on_answer() if self.on_answer is not None else None,
        )  # fmt: skip
        ice_completion.prompt_ice_completion(self._pc)  # connected when the checks are, not 20 ms later
        self.remote: sdp.SessionDescription | None = None
        self._clock = clock
        self.video: WebVideo | None = None  # enable_video()
        self._chat = ChatChannels(self._text, call_id)
        self._chat_offered = False  # our offer opened a channel (create_offer with data_channel)
        self._pc.on("datachannel", self._chat.adopt)
        check_internals(aiortc_hooks.ice_connection(self._pc))  # HookError now, not once connected
        self._restart: InPlaceRestart | None = None  # made once connected: reports each new pair, restarts
        self._applying: asyncio.Task[None] | None = None  # aiortc applying an offer answered ahead
        self._offered: str | None = None  # our first offer, given before aiortc made it (web_offer)

    # ------------------------------------------------------------------------------------- state

    @property
    def state(self) -> WebLegState:
        return self._state

    def _set_state(self, state: WebLegState) -> None:
        if state is self._state:
            return
        if (self._state, state) not in TRANSITIONS:
            raise WebLegError(
                f"call={self._call} web leg cannot go from {self._state.value} to {state.value}"
            )
        logger.debug("call=%s web leg %s -> %s", self._call, self._state.value, state.value)
        self._state = state

    def _negotiating(self) -> None:
        if self._state is WebLegState.NEW:
            self._set_state(WebLegState.NEGOTIATING)
            loop = asyncio.get_running_loop()
            self._ice_timer = loop.call_later(self._options.ice_timeout, self._ice_timed_out)

    def _ice_timed_out(self) -> None:
        self._ice_timer = None
        if self._state is WebLegState.NEGOTIATING:
            self._fail(IceFailed(f"not connected after {self._options.ice_timeout:g} s"))

    def _fail(self, event: IceFailed | DtlsFailed) -> None:
        if self._state in (WebLegState.FAILED, WebLegState.CLOSED):
            return
        level = logging.INFO if "close_notify" in event.reason else logging.WARNING
        logger.log(level, "call=%s web leg failed: %s", self._call, event)
        self._set_state(WebLegState.FAILED)
        if self.video is not None:
            self.video.connected = False
        self._on_event(event)

    def _connection_state_changed(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and self._state is WebLegState.NEGOTIATING:
            if self._ice_timer is not None:
                self._ice_timer.cancel()
                self._ice_timer = None
            self._set_state(WebLegState.CONNECTED)
            self._restart = InPlaceRestart(
                aiortc_hooks.ice_connection(self._pc), self._ice_selected, label=f"call={self._call}",
                ice_transport=self._transceiver.receiver.transport.transport,
            )  # fmt: skip
            if self.video is not None:
                self.video.connected = True
            dtls = self._transceiver.receiver.transport
            if dtls is not None:  # its ~90 KiB of OpenSSL state go once no handshake reply can be needed
                aiortc_dtls.release_when_done(dtls, self._receiver.packets_received, call_id=self._call)
            self._on_event(MediaConnected())
        elif state == "failed":
            if self._pc.iceConnectionState in ("failed", "closed"):
                self._fail(IceFailed("ICE connectivity checks failed or consent expired"))
            else:
                self._fail(DtlsFailed("DTLS handshake failed"))
        elif state == "closed" and self._state is not WebLegState.CLOSED:
            if self._ice_lost:
                self._fail(IceFailed("ICE consent expired: the browser stopped answering"))
            else:
                self._fail(DtlsFailed("the browser closed DTLS (close_notify)", closed_by_peer=True))

    def _consent_expired(self) -> None:
        logger.info("call=%s ICE consent expired: the browser stopped answering", self._call)
        self._ice_lost = True

    def _direct(
        self, ssrc: int, sequence: int, timestamp: int, payload_type: int, marker: bool, payload: bytes
    ) -> None:
        if self._state is WebLegState.CONNECTED:
            self._on_rtp(ssrc, sequence, timestamp, payload_type, marker, payload)

    def _tapped(self, packet: AiortcRtpPacket) -> bool:
        """The packets aiortc queued before the direct path started: same handling, never decoded."""
        if self._state is WebLegState.CONNECTED:
            self._on_rtp(
                packet.ssrc, packet.sequence_number, packet.timestamp, packet.payload_type,
                bool(packet.marker), packet.payload,
            )  # fmt: skip
        return True

    def _text(self, text: str) -> None:
        if self._state is WebLegState.CONNECTED:
            self._on_event(TextReceived(text))

    def open_t140(self, adopt: Callable[[RTCDataChannel], None], *, ours: bool = True) -> None:
        """Open our T.140 data channel (RFC 8865 §4.1: label and subprotocol ``t140``, DCEP) and give it,
        and any the browser opens with that subprotocol, to ``adopt`` (gateway/media/text); ``ours``
        False: only the browser's (it asked for text in its offer and opens the channel itself)."""
        self._chat.t140 = adopt
        if ours:
            adopt(self._pc.createDataChannel(T140, protocol=T140))

    def send_text(self, text: str) -> bool:
        """Write ``text`` on the browser's open data channels (or keep it for one still connecting);
        False when there is none."""
        return self._state in (WebLegState.NEGOTIATING, WebLegState.CONNECTED) and self._chat.send(text)

    # --------------------------------------------------------------------------------------- SDP

    def enable_video(
        self, on_rtp: aiortc_receive.RawRtpHandler, on_keyframe_request: Callable[[], None]
    ) -> WebVideo:
        """The video transceiver (issue 19), added once, before the first description is applied."""
        if self.video is None:
            self.video = WebVideo(
                self._pc, self._receiver, on_rtp=on_rtp, on_keyframe_request=on_keyframe_request,
                call_id=self._call, clock=self._clock,
            )  # fmt: skip
            if self._pc.localDescription is not None:  # added mid-call: on the audio's transport (BUNDLE)
                aiortc_hooks.bundle_with_first(self._pc, self.video.transceiver)
        return self.video

    @property
    def renegotiable(self) -> bool:
        """Whether the gateway can offer the browser again (``reoffer``): connected, stable, and aiortc
        runs every m-line the browser has (none was left out of the first negotiation, ``web_sdp``)."""
        pruned, local = self._pruned, self._pc.localDescription
        return (
            self._state is WebLegState.CONNECTED
            and self._pc.signalingState == "stable"
            and pruned is not None
            and local is not None
            and len(pruned.original.media) == len(sdp.parse(local.sdp).media)
        )

    async def reoffer(self, video_codecs: Sequence[sdp.Codec] = ()) -> sdp.SessionDescription:
        """A subsequent offer to the connected browser (RFC 8829 §5.2.2: its m-lines in order, no ICE
        restart), video added or removed mid-call (issue 19). Existing m-lines keep the codecs and payload
        types in use (aiortc would renumber them). With ``video_codecs`` the video transceiver
        (``enable_video``) sends and receives; without, its m-line goes to the browser rejected (port 0,
        out of the BUNDLE group, RFC 8843 §7.3.3) and stays inactive in aiortc. ``accept_reanswer`` next."""
        self._check_open()
        await self._settled()
        if not self.renegotiable:
            raise sdp.SdpUnacceptable("the browser's session cannot be renegotiated by the gateway now")
        previous = self.local
        assert previous is not None
        video = self.video
        if video is not None:
            taken = bool(video_codecs) and video.prefer(video_codecs)
            video.transceiver.direction = "sendrecv" if taken else "inactive"
        created = sdp.parse((await self._pc.createOffer()).sdp)
        kept = {m.mid: m for m in previous.media if m.mid is not None}
        media = [web_sdp.keep_codecs(m, kept[m.mid]) if m.mid in kept else m for m in created.media]
        offer = created.with_media(media)
        await self._gather(RTCSessionDescription(sdp.write(offer), "offer"))
        result = web_sdp.without_empty_end(offer)
        if video is not None and video.transceiver.direction == "inactive":
            result = web_sdp.reject_mid(result, video.transceiver.mid)
        return self.given_to_browser(result)

    async def accept_reanswer(self, answer: sdp.SessionDescription) -> None:
        """The browser's answer to ``reoffer``: an m-line it turned down reaches aiortc inactive; its
        candidates are left out (the ICE session goes on)."""
        self._check_open()
        await self._settled()
        local = self.local
        if local is None or self._pc.signalingState != "have-local-offer":
            raise WebLegError(f"call={self._call} an answer without an offer of ours out")
        if len(answer.media) != len(local.media):
            raise sdp.SdpUnacceptable(
                f"the answer has {len(answer.media)} m-lines for an offer of {len(local.media)}"
            )
        bundled = web_sdp.audio_section(answer)[1]
        media = [
            web_sdp.refused_for_aiortc(m, bundled, local.media[i]) if m.rejected else m.without("candidate")
            for i, m in enumerate(answer.media)
        ]
        description = answer.with_media(media).without("end-of-candidates")
        await self._set_remote(description, "answer")
        self.remote = answer
        self._pruned = dataclasses.replace(self._pruned or web_sdp.prune_offer(answer), original=answer)
        if self.video is not None:
            self.video.connected = (
                self._state is WebLegState.CONNECTED and self.video.transceiver.direction != "inactive"
            )

    async def accept_offer(
        self,
        offer: sdp.SessionDescription,
        codecs: Sequence[sdp.Codec],
        video_codecs: Sequence[sdp.Codec] = (),
    ) -> sdp.SessionDescription:
        """Answer a browser offer (first or re-offer) with ``codecs`` preferred, in order; its video too
        when ``enable_video`` was called and aiortc has one of ``video_codecs`` (else rejected; a video
        transceiver is only added, ``enable_video``, for a video that is taken: aiortc cannot answer
        while one stays out of the negotiation)."""
        self._check_open()
        await self._settled()
        with_video = self.video is not None and bool(video_codecs) and self.video.prefer(video_codecs)
        pruned = web_sdp.prune_offer(offer, video=with_video, data_channel=self._options.data_channel)
        first = self._pruned is None
        if first:
            red = web_codecs.negotiated_red(pruned.description, self._options.opus_red) is not None
            self._transceiver.setCodecPreferences(web_codecs.preferences(codecs, red=red))
        self._pruned = pruned
        self.remote = offer
        if self.video is not None:  # a video the offer turns down (port 0, pruned out) goes inactive: else
            # aiortc's connect task looks its m-line up in a description without it (an IndexError
            # logged at ERROR with a traceback, issue 39); one it brings back is sent and received again
            self.video.transceiver.direction = "sendrecv" if pruned.video_index is not None else "inactive"
        if first:  # we answer, controlled; a browser controlled in the session it keeps: ice_restart.py
            take_control_in_conflicts(aiortc_hooks.ice_connection(self._pc), self._spawn)
        written = self._answer_ahead(pruned) if first else None
        if written is not None:  # given now; aiortc applies the offer after (web_answer)
            local = sdp.parse(written)
            self._applying = self._spawn(self._apply_answered(pruned, written))
        else:
            await self._set_remote(pruned.description, "offer")
            answer = await self._pc.createAnswer()
            await self._gather(answer)
            slim_waiters.slim_soon(self._pc)  # its ICE sockets exist now
            local = sdp.parse(self._pc.localDescription.sdp)
        self._negotiating()
        if written is None:
            self._start_mdns(pruned)
        if self.video is not None and self._state is WebLegState.CONNECTED:
            self.video.connected = with_video  # the browser's new offer added or dropped its video
        ours = self.given_to_browser(web_sdp.restore_answer(pruned, local))
        self._sender.red_payload_type = web_codecs.negotiated_red(ours, self._options.opus_red)
        return ours

    def _answer_ahead(self, pruned: web_sdp.PrunedOffer) -> str | None:
        """Our answer to a first audio-only offer, written before aiortc applies it, on the sockets the
        ICE socket pool bound (web_answer); None: aiortc answers first, as for everything else."""
        options = self._options
        if self.video is not None or len(pruned.description.media) != 1 or pruned.data_index is not None:
            return None
        if options.ice_servers or options.ports is None or options.certificate is None:
            return None
        try:
            self.ice_sockets.reserve()
        except PortAllocationError:
            return None  # the range is full: the gathering says so, as before (IceSocketsError, 503)
        hosts = self.ice_sockets.reserved()
        return web_answer.write_answer(self._pc, self._transceiver, sdp.write(pruned.description), hosts)

    async def _apply_answered(self, pruned: web_sdp.PrunedOffer, written: str) -> None:
        """aiortc's steps for an offer we answered ahead; the leg fails if they fail or if aiortc's
        answer is not the one the browser has. They start once the answer has gone (issue 64 item 2):
        this task's first step runs in the loop iteration after ``accept_offer``, as does whoever the
        answer was handed to meanwhile (an HTTP request's handler, a WebSocket's send); yielding once
        puts aiortc's parse and transports behind them, off the request's path."""
        await asyncio.sleep(0)
        try:
            await self._set_remote(pruned.description, "offer")
            await self._gather(await self._pc.createAnswer())
        except Exception as exc:  # aiortc raises what its code happens to raise (offer_check.py)
            self._fail(IceFailed(f"the offer answered could not be applied: {exc!r}"))
            return
        slim_waiters.slim_soon(self._pc)
        self._start_mdns(pruned)
        theirs = self._pc.localDescription.sdp
        if not web_answer.agrees(written, theirs):
            logger.warning("call=%s our answer %r is not aiortc's %r", self._call, written, theirs)
            self._fail(IceFailed("the answer given is not the one aiortc applied"))

    async def _settled(self) -> None:
        """Wait until aiortc has applied an offer answered ahead (its descriptions are read next)."""
        task = self._applying
        if task is not None and not task.done():
            await asyncio.wait((task,))

    async def create_offer(
        self, codecs: Sequence[sdp.Codec], video_codecs: Sequence[sdp.Codec] = ()
    ) -> sdp.SessionDescription:
        """The offer to a browser, with ``codecs`` in this order of preference; a video m-line too with
        ``video_codecs`` when ``enable_video`` was called."""
        self._check_open()
        await self._settled()
        red = self._options.opus_red != "off"
        self._transceiver.setCodecPreferences(web_codecs.preferences(codecs, red=red))
        if self.video is not None:
            self.video.prefer(video_codecs)
        if self._options.data_channel and self.remote is None and not self._chat_offered:
            # Our first offer carries a data channel (RFC 8831 §6.4: the offerer may open it; aiortc
            # puts its m=application after the audio and video, as JSEP §5.2.1 wants): chat on calls
            # the browser receives, as on those it places (issue 17).
            self._chat_offered = True
            self._chat.adopt(self._pc.createDataChannel("chat"), by="the gateway")
        written = self._offer_ahead()
        if written is not None:  # given now; aiortc makes and gathers it after (web_offer)
            logger.debug("call=%s our offer to the browser is given before aiortc makes it", self._call)
            self._offered = written
            self._applying = self._spawn(self._make_offered(written))
            return self.given_to_browser(web_sdp.without_empty_end(sdp.parse(written)))
        offer = await self._pc.createOffer()
        await self._gather(offer)
        return self.given_to_browser(web_sdp.without_empty_end(sdp.parse(self._pc.localDescription.sdp)))

    def _offer_ahead(self) -> str | None:
        """Our first offer (audio, and the data channel's m-line when one was opened), written before
        aiortc makes it, on sockets the ICE socket pool bound (web_offer); None: aiortc offers first."""
        options = self._options
        if (
            self.video is not None
            or options.ice_servers
            or options.ports is None
            or options.certificate is None
        ):
            return None
        transports = web_offer.transports(self._pc)
        if transports is None:
            return None
        try:
            hosts = [self.ice_sockets.reserve_for(aiortc_hooks.dtls_connection(t)) for t in transports]
        except PortAllocationError:
            return None  # the range is full: the gathering says so, as before (IceSocketsError, 503)
        return web_offer.write_offer(self._pc, hosts)

    async def _make_offered(self, written: str) -> None:
        """aiortc's steps for an offer we gave ahead; the leg fails if they fail or if aiortc's offer is
        not the one the browser has (it could not reach us on other sockets)."""
        try:
            await self._gather(await self._pc.createOffer())
        except Exception as exc:  # aiortc raises what its code happens to raise
            self._negotiating()
            self._fail(IceFailed(f"the offer given could not be made: {exc!r}"))
            return
        theirs = self._pc.localDescription.sdp
        if not web_answer.agrees(written, theirs):
            logger.warning("call=%s our offer %r is not aiortc's %r", self._call, written, theirs)
            self._negotiating()
            self._fail(IceFailed("the offer given is not the one aiortc made"))

    async def _gather(self, description: RTCSessionDescription) -> None:
        """setLocalDescription, which opens the ICE sockets: no descriptor left (EMFILE), no free port pair
        or no address is this call's failure (a WebLegError the call layer answers), never a traceback."""
        self.ice_sockets.cover()
        try:
            await self._pc.setLocalDescription(description)
        except OSError as exc:
            why = exc.strerror or exc
            raise IceSocketsError(f"call={self._call} cannot open ICE sockets: {why}") from exc

    async def accept_answer(self, answer: sdp.SessionDescription) -> None:
        """Apply the browser's answer to ``create_offer``: one m-line per offered one (RFC 3264 §6);
        a video or data channel it turned down (port 0) reaches aiortc in a shape it takes."""
        self._check_open()
        await self._settled()
        local = self.local
        if local is None:
            raise WebLegError(f"call={self._call} answer before our offer")
        if len(answer.media) != len(local.media):
            raise sdp.SdpUnacceptable(
                f"the answer has {len(answer.media)} m-lines for an offer of {len(local.media)}"
            )
        self.remote = answer
        pruned = web_sdp.prune_offer(
            answer, video=self.video is not None, data_channel=self._options.data_channel
        )
        pruned = dataclasses.replace(pruned, description=web_sdp.refused_filled(pruned, local))
        await self._set_remote(pruned.description, "answer")
        self._pruned = pruned
        self._sender.red_payload_type = web_codecs.negotiated_red(answer, self._options.opus_red)
        self._negotiating()
        self._start_mdns(pruned)

    async def abandon_reoffer(self) -> None:
        """Put the web leg back in the stable state after a ``reoffer`` the browser never answered (aiortc
        has no rollback): it is answered as the browser last described each m-line, a new one turned
        down and inactive (a video added by the re-offer)."""
        await self._settled()
        local, remote = self.local, self.remote
        if local is None or remote is None or self._pc.signalingState != "have-local-offer":
            return
        if self.video is not None:
            self.video.transceiver.direction = "inactive"
            self.video.connected = False
        before = {m.mid: m for m in remote.media if m.mid is not None}
        bundled = web_sdp.audio_section(remote)[1]
        media = [
            before[m.mid] if m.mid in before and not before[m.mid].rejected else
            web_sdp.refused_for_aiortc(web_sdp.rejected(m), bundled, m)
            for m in local.media
        ]  # fmt: skip
        # the browser's DTLS role as it is (an answer says active or passive, RFC 5763 §5): ours reversed
        theirs = "passive" if self._transceiver.receiver.transport._role == "client" else "active"
        media = [
            m.without("setup").with_attributes(
                [*m.without("setup").attributes, sdp.Attribute("setup", theirs)]
            )
            for m in media
        ]
        synthetic = remote.with_media(media)
        try:
            await self.accept_reanswer(synthetic)
        finally:
            self.remote = remote

    async def _set_remote(self, description: sdp.SessionDescription, kind: str) -> None:
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp.write(description), kind))
        except (ValueError, RuntimeError) as exc:  # aiortc's InvalidStateError/OperationError too
            raise sdp.SdpUnacceptable(f"aiortc refused the {kind}: {exc}") from exc
        slim_waiters.slim_soon(self._pc)  # the track exists now (issue 14: memory per call)
        # the audio's candidates: the other kept m-lines are bundled on it and carry none
        self._remote_candidates += sum(len(section.candidates) for section in description.media)

    # ------------------------------------------------------------------------------- candidates

    async def add_candidate(self, init: sdp.IceCandidateInit) -> None:
        """A trickled browser candidate (RFC 8838); ``init.candidate`` None is end-of-candidates."""
        self._check_open()
        await self._settled()
        if self._pruned is None:
            raise WebLegError(f"call={self._call} candidate before any description")
        if init.candidate is None:
            await self._end_of_candidates()
            return
        candidate = init.candidate
        if candidate.component != 1 or not self._for_audio(init):
            return  # rtcp-mux: only RTP candidates matter; other m-lines' transports are not used
        self._remote_candidates += 1
        if candidate.is_mdns:
            self._spawn(self._add_mdns(candidate))
            return
        await self._pc.addIceCandidate(self._aiortc_candidate(candidate))

    def _for_audio(self, init: sdp.IceCandidateInit) -> bool:
        assert self._pruned is not None
        if init.sdp_mid is not None:
            return init.sdp_mid == self._pruned.mid
        return init.sdp_mline_index == self._pruned.index

    def _aiortc_candidate(self, candidate: sdp.Candidate) -> RTCIceCandidate:
        ice = candidate_from_sdp(candidate.to_sdp().removeprefix("candidate:"))
        assert self._pruned is not None
        ice.sdpMid, ice.sdpMLineIndex = self._pruned.mid, 0  # everything is bundled on the audio m-line
        return ice

    async def _end_of_candidates(self) -> None:
        if self._remote_candidates == 0:
            # aioice would fail at once; success needs no end-of-candidates, failure comes from ice_timeout
            logger.info("call=%s end-of-candidates ignored: no remote candidate yet", self._call)
            return
        await asyncio.sleep(0)  # let mDNS tasks register with aioice first: it waits for their answers
        await self._pc.addIceCandidate(None)

    def _start_mdns(self, pruned: web_sdp.PrunedOffer) -> None:
        for candidate in pruned.mdns:
            self._remote_candidates += 1
            self._spawn(self._add_mdns(candidate))
        if pruned.end_of_candidates:
            self._spawn(self._end_of_candidates())

    async def _add_mdns(self, candidate: sdp.Candidate) -> None:
        try:
            await asyncio.wait_for(
                self._pc.addIceCandidate(self._aiortc_candidate(candidate)), self._options.mdns_timeout
            )
        except (TimeoutError, OSError, ValueError) as exc:
            logger.info("call=%s mDNS candidate %s not used: %r", self._call, candidate.address, exc)

    # ------------------------------------------------------------------------------- ICE restart

    def restart_ice(self, remote: sdp.IceParameters) -> sdp.TrickleFragment:
        """The browser restarted ICE with ``remote`` (RFC 8445 §9; WHIP's PATCH, RFC 9725): restart in
        place (``ice_restart``: DTLS and SRTP go on), and return our new credentials and candidates as
        the fragment to answer with (RFC 8840 §9). Its new candidates come as trickle afterwards.
        ``RestartRefused`` (a ``MediaError``) when this leg cannot restart now."""
        self._check_open()
        if self._state is not WebLegState.CONNECTED or self._pruned is None or self._restart is None:
            raise WebLegError(f"call={self._call} ICE restart before the web leg connected")
        new = self._restart.restart(remote.ufrag, remote.pwd)
        self._remote_candidates = 0
        connection = aiortc_hooks.ice_connection(self._pc)
        ours = [candidate_to_sdp(candidate_from_aioice(c)) for c in connection.local_candidates]
        return offer_restart.local_fragment(self._pruned.mid, new.local_ufrag, new.local_pwd, ours)

    def remote_session(self) -> tuple[str | None, sdp.DtlsParameters | None]:
        """The browser's ICE ufrag now (None before ICE connected) and its DTLS fingerprints and role."""
        if self._state is not WebLegState.CONNECTED or self._pruned is None:
            return None, None
        dtls = self._pruned.original.dtls_for(self._pruned.index)
        return aiortc_hooks.ice_connection(self._pc).remote_username, dtls

    def _ice_selected(self, pair: Any) -> None:
        """The pair the browser nominated (a restart's, or any later one) carries the media from now on."""
        if self._state is WebLegState.CONNECTED:
            self._on_event(IcePathChanged(f"{pair.remote_addr[0]}:{pair.remote_addr[1]}"))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------------------------- media

    def send(
        self,
        payload: bytes,
        timestamp: int,
        payload_type: int | None = None,
        marker: bool = False,
        now: float | None = None,
        source: tuple[int, int] | None = None,
    ) -> bool:
        """Send one payload to the browser now (None: the negotiated codec's payload type); False when
        it cannot go (not connected, sender not started or disabled). ``now`` is on the leg's clock;
        ``source``: a forwarded packet's SSRC and sequence number (mapped: ``DirectSender.send``)."""
        if self._state is not WebLegState.CONNECTED:
            return False
        return self._sender.send(payload, timestamp, payload_type, marker, now, source)

    @property
    def direct_sender(self) -> aiortc_direct.DirectSender:
        return self._sender

    @property
    def direct_receiver(self) -> aiortc_receive.DirectReceiver:
        return self._receiver

    @property
    def dropped(self) -> int:
        """Packets from the browser dropped by the direct path (SRTP check, malformed, unknown type)."""
        return self._receiver.dropped

    @property
    def local(self) -> sdp.SessionDescription | None:
        description = self._pc.localDescription
        if description is None and self._offered is not None:  # aiortc is making the offer we gave
            return sdp.parse(self._offered)
        return None if description is None else sdp.parse(description.sdp)

    def given_to_browser(self, description: sdp.SessionDescription) -> sdp.SessionDescription:
        """What the browser gets: ``useinbandfec=1`` (and ``usedtx=1`` when configured) on each Opus
        payload type (RFC 7587 §6.1; aiortc writes no Opus fmtp): we decode its in-band FEC, so libwebrtc
        protects its packets once our receiver reports show loss."""
        dtx = self._options.opus_usedtx
        return description.with_media(
            [sdp.with_opus_red(sdp.with_opus_fec(m, dtx=dtx)) for m in description.media]
        )

    def _check_open(self) -> None:
        if self._state is WebLegState.CLOSED:
            raise WebLegError(f"call={self._call} web leg is closed")

    async def close(self) -> None:
        """Stop tasks, transports and the peer connection. Idempotent."""
        if self._state is WebLegState.CLOSED:
            return
        self._set_state(WebLegState.CLOSED)
        if self._ice_timer is not None:
            self._ice_timer.cancel()
            self._ice_timer = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._sender.idle_track.stop()
        if self.video is not None:
            await self.video.close()
        self._chat.close()
        await aiortc_hooks.close_peer(self._pc, self._call)  # bounded: aiortc's close can hang
        self.ice_sockets.release()  # what its ICE connections' close did not give back (ice_ports)
