"""One call's fast lane: when to link its sockets to an engine, how to arm the lanes, what to account.

The bridge owns one ``FastLaneController`` when the fast lane is on. ``update()`` runs whenever the
call's media changes (a leg connected, a re-INVITE, hold): it links the two sockets once both legs can
carry media (retrying every 50 ms for a while, since aiortc starts its sender and receiver just after
it reports the connection), and re-arms the lanes otherwise. A lane is armed with exactly what the
bridge's Python path (``MediaPath``) would do to its direction's next packet; records of the packets
the engine forwarded are accounted by the engine as the Python path accounts for its own (receive
statistics, loss, the timestamp mapper, sender counters, last arrival, latency): ``fast_sync`` copies
its snapshots into the legs and paths a few times a second, before a watchdog or a report decides and
before a datagram of the call is handled; ``arm`` gives the engine the Python side's state of a source
to continue from. ``unlink()`` gives the sockets back.

SRTP on the SIP leg (``gateway.media.rtp.srtp.SipSrtp``: SDES, or DTLS-SRTP keyed the same way): the link
gets its libsrtp sessions too, and the endpoint runs them through a ``SerializedSrtp`` stand-in while
linked. New keys (a re-INVITE) are a new ``SipSrtp`` object: ``update()`` unlinks, then links again with
the new sessions; the old ones stay alive (the link holds them) until the engine cannot use them.
"""

from __future__ import annotations

import array
import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import astuple
from typing import Any

from gateway.media.bridge_settings import LatencyMeter
from gateway.media.codecs import opus_settings
from gateway.media.codecs.comfort_fill import ComfortFill
from gateway.media.codecs.opus_settings import LossSettings
from gateway.media.fastlane.engine import EnginePool, FastLink, SerializedSrtp
from gateway.media.fastlane.native import (
    DROPPED,
    SIP_DROPPED,
    SIP_TO_WEB,
    STATS_AIORTC,
    STATS_RFC3550,
    WEB_TO_SIP,
    Accounts,
    Address,
    NativeLink,
    Snapshot,
    arm,
    snapshot,
)
from gateway.media.fastlane.video_lanes import VideoLanes
from gateway.media.forward import MediaPath
from gateway.media.rtp import red
from gateway.media.rtp.seqmap import SequenceState
from gateway.media.rtp.sip_leg import SipLeg
from gateway.media.rtp.srtp import SipSrtp
from gateway.media.video.video_bridge import VideoBridge
from gateway.media.watchdog import Watchdog
from gateway.media.webrtc import aiortc_hooks, ice_consent
from gateway.media.webrtc.web_leg_state import WebLegState
from gateway.media.webrtc.webrtc_leg import WebRtcLeg

__all__ = ["FastLaneController"]

logger = logging.getLogger(__name__)

LINK_ATTEMPTS = 20  # quick tries, LINK_RETRY apart, after the media changed; then every LINK_BACKOFF
LINK_RETRY = 0.05  # seconds
# A call whose legs are ready only later (a burst of set-ups backing the event loop up by seconds: issue 38,
# 500 calls at once left every call on the Python path) keeps trying, slowly, while the link is wanted.
LINK_BACKOFF = 0.5  # seconds
LINK_SLOW_TRIES = 120  # a minute of them: a call that cannot link by then waits for its next media change


class FastLaneController:
    def __init__(
        self,
        pool: EnginePool,
        *,
        call_id: str,
        web: WebRtcLeg,
        sip: SipLeg,
        to_sip: MediaPath,
        to_web: MediaPath,
        web_watchdog: Watchdog,
        latency: LatencyMeter,
        active: Callable[[], bool],
        fill: ComfortFill | None = None,
        web_back: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._call = call_id
        self._web, self._sip = web, sip
        self._to_sip, self._to_web = to_sip, to_web
        self._web_watchdog = web_watchdog
        self._latency = latency
        self._active = active
        # the reconnecting fill plays to the SIP side (the bridge's ComfortFill): Python owns that direction,
        # but for a lane the browser's first packet arms; the fill asks before each frame (_web_heard), and
        # ``web_back`` tells the bridge the browser's audio is back
        self._fill = fill
        self._web_back = web_back
        if fill is not None:
            fill.heard = self._web_heard
        pool.transcoding  # noqa: B018  # libopus and the G.711 tables, once: at setup, not mid-call
        self.link: FastLink | None = None  # while linked
        self._pending = False  # wanted but not linked yet: retried for a while
        self._retry: asyncio.TimerHandle | None = None
        self._slow = False  # the try scheduled (_retry) is a slow one
        self._pair: Any = None  # the nominated ICE pair whose socket the link reads
        self._remote: Address = ()
        self._dropped = 0  # SRTP packets the engine dropped, of links closed before
        self.packets = 0  # packets the engine forwarded (the rest went the Python path): for metrics
        self._sip_dropped = 0  # the same from the SIP side
        self._sip_srtp: SipSrtp | None = None  # the SIP leg's SRTP the link was made with
        # what the link's thread answers consent checks with (_arm_consent): handed over only when it changes
        self._consent: tuple[Any, ...] = ()
        self.video: VideoBridge | None = None  # the call's video (issue 19): its own lanes on the link
        self._video = VideoLanes(call_id)
        self._loss: LossSettings | None = None  # what the link's Opus encoder was last told (_browser_loss)
        self._red = False  # the lane to the browser was armed to send RFC 2198 RED (_arm_lanes)

    # ------------------------------------------------------------------------------------ linking

    def update(self) -> None:
        """The call's media changed: link when it can be, else re-arm. New SRTP keys on the SIP leg (or
        SRTP on or off) unlink first: the engine must not keep using the sessions they replace."""
        endpoint = self._sip.endpoint
        if self.link is not None and endpoint is not None and endpoint.srtp is not self._sip_srtp:
            logger.info("call=%s fast lane unlinked: the SIP leg's SRTP keys changed", self._call)
            self.unlink()
        if self._pair_moved():
            logger.info("call=%s fast lane unlinked: the browser's ICE pair changed", self._call)
            self.unlink()
        if self.link is not None and self._video.stale(self.video):
            logger.info("call=%s fast lane unlinked: the video endpoint changed", self._call)
            self.unlink()
        if self.link is not None:
            self.fast_rearm()
            return
        self._pending = self._active() and self._capable(self._to_sip) and self._capable(self._to_web)
        if self._pending:
            self._try_link()
            if self._pending and (self._retry is None or self._slow):
                if self._retry is not None:  # a change during the slow tries: quick ones again
                    self._retry.cancel()
                self._retry_link(LINK_ATTEMPTS)

    def _pair_moved(self) -> bool:
        """Whether aioice's nominated pair is another than the link's: an ICE restart's new pair (RFC 8445
        §9), or another pair the browser nominated (§8.1.1; Chromium does when a check of another of its
        candidates succeeds late). The browser's media come from its address then, which no lane armed with
        the link's takes: the link must be made again with it."""
        parts = self._web.direct_sender.fast_lane_parts() if self.link is not None else None
        return parts is not None and parts[0] is not self._pair

    def _retry_link(self, attempts: int) -> None:
        """``attempts`` quick tries left (LINK_RETRY apart), then LINK_SLOW_TRIES slow ones (-1, -2...)."""
        self._retry = None
        if self._pending and self._active():
            self._try_link()
            if self.link is not None and attempts <= 0:
                logger.info(
                    "call=%s fast lane linked late: its legs were ready after the quick tries", self._call
                )
            if self._pending and attempts > 1 - LINK_SLOW_TRIES:
                delay = LINK_RETRY if attempts > 1 else LINK_BACKOFF
                self._retry = asyncio.get_running_loop().call_later(delay, self._retry_link, attempts - 1)
                self._slow = attempts <= 1  # the one just scheduled is a slow try

    def _capable(self, path: MediaPath) -> bool:
        """Pass-through, or a codec pair the engine transcodes itself."""
        return path.passthrough or bool(path.codec_pairs() & self._pool.transcoding)

    def _try_link(self) -> None:
        """Link the two sockets to an engine once both legs can carry media."""
        web, endpoint = self._web, self._sip.endpoint
        if web.state is not WebLegState.CONNECTED or endpoint is None or endpoint.rtp_transport is None:
            return
        sender, receiver = web.direct_sender, web.direct_receiver
        parts, dtls = sender.fast_lane_parts(), receiver.dtls
        sessions = aiortc_hooks.srtp_sessions(dtls) if dtls is not None else None
        if parts is None or dtls is None or sessions is None or not receiver.started:
            return
        sip_srtp = endpoint.srtp
        sip_sessions = sip_srtp.sessions if sip_srtp is not None else None
        if sip_srtp is not None and sip_sessions is None:
            return  # SRTP without keys yet (DTLS-SRTP before its handshake): retried
        pair, remote, first, sequence, extension = parts
        self._pending = False
        destination = endpoint.remote_rtp_address
        if destination is not None and not _numeric(destination[0]):
            logger.info(
                "call=%s fast lane not used: the SIP side is a host name (%s)", self._call, destination[0]
            )
            return
        rx, tx = sessions

        def install(native: NativeLink) -> Callable[[tuple[int, int]], None]:
            native.set_output(WEB_TO_SIP, 0x80, endpoint.ssrc, endpoint.next_sequence)
            native.set_output(SIP_TO_WEB, first, sender.ssrc, sequence, extension)
            aiortc_hooks.replace_srtp_sessions(dtls, SerializedSrtp(native, rx), SerializedSrtp(native, tx))
            if sip_srtp is not None:
                endpoint.serialize_srtp(SerializedSrtp(native, sip_srtp, sip=True))
            sender.link = endpoint.link = native
            # watchdogs and reports see every packet the engine forwarded
            sender.refresh = self.sync  # our web-leg reports read the browser's
            sender.on_loss = self._browser_loss  # its reports of our stream: our Opus encoder's FEC
            endpoint.refresh = self._web_watchdog.refresh = self.account
            receiver.unsynced = lambda: sum(native.counters()[1:4:2])  # web -> SIP: forwarded, failed

            def uninstall(sequences: tuple[int, int]) -> None:
                sender.link = endpoint.link = None
                endpoint.refresh = sender.refresh = self._web_watchdog.refresh = receiver.unsynced = None
                sender.on_loss = None
                endpoint.next_sequence, sender.next_sequence = sequences
                endpoint.serialize_srtp(None)
                aiortc_hooks.restore_srtp_sessions(dtls, rx, tx, replaced=SerializedSrtp)

            return uninstall

        try:
            self.link = self._pool.link(
                self, call_id=self._call, web_transport=pair.protocol.transport,
                sip_transport=endpoint.rtp_transport, sessions=(rx, tx), install=install,
                sip_sessions=sip_sessions, passthrough=self._to_sip.passthrough and self._to_web.passthrough,
                latency=self._latency.enabled,
            )  # fmt: skip
        except Exception as exc:  # the Python path carries the call then
            logger.warning("call=%s fast lane not used: %r", self._call, exc)
            return
        self._pair, self._remote, self._sip_srtp = pair, remote, sip_srtp
        self._loss = None
        if sender.reported_loss is not None:  # the browser reported before: the new link's encoder too
            self._browser_loss(sender.reported_loss)
        logger.debug(
            "call=%s fast lane linked (browser %s%s)",
            self._call,
            remote,
            ", SIP leg SRTP" * (sip_srtp is not None),
        )
        self.fast_rearm()

    def _browser_loss(self, fraction_lost: int) -> None:
        """The browser's report of our stream's loss (RFC 3550 §6.4.1): the settings of the engine's Opus
        encoder towards it (opus_settings.OpusEncoderSettings.for_loss), when they change."""
        wanted = opus_settings.current().for_loss(fraction_lost)
        link = self.link
        if link is not None and self._web.direct_sender.red_active != self._red:
            self.fast_rearm()  # RED on or off (aiortc_direct): the engine's lane to the browser with it
        if link is None or wanted is None or wanted == self._loss:
            return
        if self._loss is None or wanted.inband_fec != self._loss.inband_fec:
            logger.debug(
                "call=%s Opus in-band FEC to the browser %s (it reports %d %% loss)",
                self._call, "on" if wanted.inband_fec else "off", wanted.loss_percent,
            )  # fmt: skip
        self._loss = wanted
        link.native.opus_loss(SIP_TO_WEB, int(wanted.inband_fec), wanted.loss_percent)

    @property
    def remote(self) -> Address:
        """The browser's address the link forwards to and accepts from (empty while unlinked)."""
        return self._remote if self.link is not None else ()

    def drain(self) -> None:
        """Hand over what the engine queued and account for what it has forwarded so far."""
        if self.link is not None:
            self.link.drain()
            self.link.sync()

    def sync(self) -> None:
        """Account for what the engine has forwarded so far and take the browser's kept reports (before
        our web-leg report is built)."""
        if self.link is not None:
            self.link.sync()

    def account(self) -> None:
        """Account for what the engine has forwarded so far (before a watchdog or the SIP leg's report
        decides: neither reads the browser's reports)."""
        if self.link is not None:
            self.link.sync(reports=False)

    def dropped(self) -> int:
        """SRTP packets from the browser the engines dropped (failed authentication, replays)."""
        if self.link is None:
            return self._dropped
        self.drain()  # and the path counters the bridge reports with it are brought up to date
        return self._dropped + self.link.native.counters()[DROPPED]

    def sip_dropped(self) -> int:
        """SRTP packets from the SIP side the engines dropped (failed authentication, replays); the
        endpoint counts those of the Python path in its own ``dropped``."""
        if self.link is None:
            return self._sip_dropped
        return self._sip_dropped + self.link.native.counters()[SIP_DROPPED]

    def unlink(self) -> None:
        """Give the sockets back to asyncio (idempotent); the Python path carries every packet after."""
        self._pending = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        link, self.link = self.link, None
        if link is not None:
            counters = link.native.counters()
            self._dropped += counters[DROPPED]
            self._sip_dropped += counters[SIP_DROPPED]
            link.close()
            self._sip_srtp = None
            self._consent = ()
        self._video.unlinked()

    def replace_web(self, web: WebRtcLeg) -> None:
        """The bridge has a new web leg (a browser that came back): link its socket from now on."""
        self.unlink()
        self._web = web

    # ------------------------------------------------------------------------ LinkHandler (engine)

    def fast_failed(self) -> None:
        """The engine's thread stopped: the Python path carries the call from now on."""
        self.unlink()

    def fast_rearm(self) -> None:
        """Arm each lane whose direction's next packet the engine can handle as the Python path would;
        disarm the others."""
        link = self.link
        if link is None or link.defer_rearm():  # mid-batch: after it (what the batch holds goes first)
            return
        if self._pair_moved():  # the browser's packets from the new pair's address reach Python: link anew
            self.update()
            return
        link.sync()  # the paths' timelines and frame clocks as the engine left them
        self._arm_consent(link.native)
        try:
            self._arm_lanes(link.native)
            self._video.arm(link.native, self.video, self._remote)
        except ValueError as exc:  # e.g. a re-INVITE moved the SIP side to a host name
            logger.info("call=%s fast lane disarmed: %s", self._call, exc)
            link.native.disarm(WEB_TO_SIP)
            link.native.disarm(SIP_TO_WEB)
            self._video.disarm(link.native)

    def _arm_consent(self, native: NativeLink) -> None:
        """Let the thread answer the browser's consent checks on the pair (the credentials as they are now:
        a role switch changes ours); aioice answers the others."""
        credentials = ice_consent.consent_credentials(self._pair) if self._pair is not None else None
        consent = (native, credentials, self._remote)
        if consent == self._consent:  # unchanged since the last re-arm (the usual case): nothing to copy
            return
        self._consent = consent
        if credentials is None:
            native.ice(None)
        else:
            native.ice(*credentials, self._remote)

    def _arm_lanes(self, native: NativeLink) -> None:
        web, endpoint = self._web, self._sip.endpoint
        connected = web.state is WebLegState.CONNECTED
        codecs = self._pool.transcoding
        sip = self._sip.negotiated
        sender = web.direct_sender
        web_pt = sender.payload_type
        lane = self._to_sip.lane(codecs)
        first = False  # a lane the engine arms on the direction's first packet (MediaPath.first_lane)
        # (none for the browser's audio once any came: a three-way mix took some, not through the path)
        if lane is None and web_pt is not None and web.direct_receiver.packets_received() == 0:
            lane, first = self._to_sip.first_lane(web_pt, time.monotonic(), codecs), True
        destination = (
            endpoint.remote_rtp_address if endpoint is not None and endpoint.direction.sends else None
        )
        # while the fill plays (the browser's audio missing), a lane only its first packet arms: the fill
        # stops at that (web_audio_back)
        if (
            lane is not None
            and sip is not None
            and destination is not None
            and connected
            and web.direct_receiver.receiving
            and (first or not self._filling())
        ):
            receiver = web.direct_receiver
            rate = receiver.clock_rate(lane.payload_type)
            accounts = Accounts(
                STATS_AIORTC, rate, None if first else receiver.reception_state(lane.ssrc, rate),
                self._to_sip.last_sequence(lane.ssrc),
            )  # fmt: skip
            assert endpoint is not None  # a destination
            native.set_sequence_map(WEB_TO_SIP, *astuple(endpoint.sequence_map.state()))
            arm(native, WEB_TO_SIP, self._remote, destination, sip.codec.payload_type, lane, accounts,
                primed=first)  # fmt: skip
        else:
            native.disarm(WEB_TO_SIP)
        lane = self._to_web.lane(codecs)
        source = endpoint.latched_address if endpoint is not None else None
        first = False
        if lane is None and source is None and endpoint is not None and sip is not None:
            # not latched yet: the first packet from where the SDP says (rtp_endpoint latches to it then)
            lane, source, first = (
                self._to_web.first_lane(sip.codec.payload_type, time.monotonic(), codecs),
                endpoint.remote_rtp_address,
                True,
            )
        self._red = sender.red_active  # RFC 2198 redundancy to the browser: the engine sends it too
        red_out = sender.red_payload_type if self._red and sender.red_payload_type is not None else -1
        if lane is not None and source is not None and connected and sender.sending and web_pt is not None:
            assert endpoint is not None  # a latched source
            statistics = endpoint.statistics
            accounts = Accounts(
                STATS_RFC3550, endpoint.config.clock_rate,
                None if first or statistics is None or statistics.ssrc != lane.ssrc else statistics.state(),
                self._to_web.last_sequence(lane.ssrc),
            )  # fmt: skip
            native.set_sequence_map(SIP_TO_WEB, *astuple(sender.sequence_map.state()))
            arm(native, SIP_TO_WEB, source, self._remote, web_pt, lane, accounts, red_out, primed=first)
            previous = sender.red_previous
            if red_out >= 0 and previous is not None and len(previous[1]) <= red.MAX_BLOCK:
                native.red_previous(SIP_TO_WEB, *previous)  # the next RED packet's copy: what was sent last
        else:
            native.disarm(SIP_TO_WEB)

    def _filling(self) -> bool:
        return self._fill is not None and self._fill.active

    def _web_heard(self) -> bool:
        """Whether the engine armed the lane to the SIP side on the browser's first packet (primed while
        the fill plays): then the bridge hears the browser is back (fast_sync), and the fill stops."""
        link = self.link
        if link is None or not link.native.armed(WEB_TO_SIP):
            return False
        self.account()
        return True

    def fast_sync(self, native: NativeLink) -> None:
        """Copy what the engine accounted for each lane into the legs and paths, as the Python path
        accounts for its own packets."""
        latency = self._latency
        to_sip = snapshot(native, WEB_TO_SIP, latency.enabled)
        to_web = snapshot(native, SIP_TO_WEB, latency.enabled)
        endpoint = self._sip.endpoint
        self.packets += sum(snap.packets for snap in (to_sip, to_web) if snap is not None)
        if to_sip is not None and endpoint is not None:  # the pass-through numbering the engine moved on
            endpoint.sequence_map.restore(SequenceState(*native.sequence_map(WEB_TO_SIP)))
        if to_web is not None:
            self._web.direct_sender.sequence_map.restore(SequenceState(*native.sequence_map(SIP_TO_WEB)))
        if to_sip is not None:
            self._web.direct_receiver.restore_reception(to_sip.ssrc, to_sip.reception, to_sip.pt)
            self._web_watchdog.alive(to_sip.arrival)
            self._web_back()  # (as the Python path's packet would: nothing unless the browser was away)
            self._to_sip.fast_account(to_sip)
            if endpoint is not None:
                endpoint.add_sent(to_sip.sent, to_sip.octets, to_sip.out_ts, to_sip.departure)
            self._latency_samples(to_sip)
        if to_web is not None:
            if endpoint is not None:  # (a lane its first packet armed: latched to where that came from)
                restarted, source = to_web.restarted, to_web.armed_from
                endpoint.fast_received(
                    to_web.ssrc, to_web.reception, to_web.arrival, restarted=restarted, source=source
                )
            self._to_web.fast_account(to_web)
            self._web.direct_sender.add_sent(to_web.sent, to_web.octets, to_web.out_ts, to_web.departure)
            if self._red:  # what the engine sent last: the copy in the sender's next RED packet
                self._web.direct_sender.red_previous = native.red_previous(SIP_TO_WEB)
            self._latency_samples(to_web)
        self._video.sync(native, self.video)

    def _latency_samples(self, snap: Snapshot) -> None:
        if snap.latency:
            self._latency.extend(array.array("d", snap.latency))

    def fast_web_datagram(self, data: bytes, source: Address) -> None:
        if self._pair is not None:
            self._pair.protocol.datagram_received(data, source)

    def fast_web_rtp(self, data: bytes) -> None:
        self._web.direct_receiver.packet(data)

    def fast_web_rtcp(
        self,
        data: bytes,
        late: float,
        packets: int,
        octets: int | None,
        upstream: tuple[int, int] | None = None,
    ) -> None:
        """SRTCP from the browser the engine unprotected: a report compound it kept (with the SIP side's
        loss when it arrived, own_loss.py), or feedback."""
        sender = self._web.direct_sender
        sender.report_context = (time.monotonic() - late, upstream)
        try:
            self._web.direct_receiver.rtcp(data, late=late, packets=packets, octets=octets)
        finally:
            sender.report_context = None

    def fast_sip_datagram(self, data: bytes, source: Address) -> None:
        if self._sip.endpoint is not None:
            self._sip.endpoint.datagram(data, source)

    def fast_video_sip_datagram(self, data: bytes, source: Address, decrypted: bool) -> None:
        self._video.datagram(data, source, decrypted=decrypted)

    def fast_sip_rtp(self, data: bytes, source: Address) -> None:
        """RTP the engine unprotected with the SIP leg's sessions."""
        if self._sip.endpoint is not None:
            self._sip.endpoint.datagram(data, source, decrypted=True)


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
