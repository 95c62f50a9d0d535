"""The SIP leg's RTP endpoint: plain RTP/AVP over asyncio UDP sockets.

How it works:

* ``open()`` takes an even port from the ``RtpPortAllocator`` (RTCP on port + 1, or one socket with
  rtcp-mux, RFC 5761) and wraps the bound sockets in asyncio datagram transports.
* Symmetric RTP (RFC 4961) with latching ("comedia", as rtpengine and Asterisk do it for NAT): media goes
  to the address from the SDP until the first packet with an expected payload type arrives; the endpoint
  then latches to that packet's real source and sends there. Packets from any other address are dropped
  afterwards, unless ``relatch_after`` > 0 and that many consecutive valid packets came from one new
  source (the peer's NAT binding changed). ``SymmetricLatch`` is this decision, sans-I/O.
* Received RTP feeds ``ReceiveStatistics``; RTCP SR or RR + SDES CNAME go out at a randomized interval
  around ``rtcp_interval`` (RFC 3550 §6.2, §6.3.1), and a BYE on close (§6.3.7).
* Liveness of the far end (``on_inactive``): while RTP is expected, no RTP for ``inactivity_timeout``
  seconds fires it. While none is expected (the direction says the peer does not send: hold, inactive)
  or the peer has gone quiet on purpose (its last packet was comfort noise, RFC 3389 silence
  suppression), RTP cannot tell a dead peer from a silent one: then its RTCP does, and no RTP nor RTCP for
  ``hold_timeout`` seconds fires it, once the peer has sent RTCP since it went quiet (many phones send
  none while held, pjsua among them: such a peer cannot be judged and is left alone). ``inactive_held``
  says which of the two fired.
* Comfort noise (PT 13, RFC 3389) is always accepted and never counts as a change of codec.

The endpoint's states and settings are in ``endpoint_state``, its RTCP in ``endpoint_rtcp``
(``EndpointRtcp``, a base of ``RtpEndpoint``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import sdp
from gateway.media import slim_waiters
from gateway.media.coarse_timers import Cancellable, coarse_timers
from gateway.media.errors import EndpointError, PacketError
from gateway.media.rtp import seqmap
from gateway.media.rtp.endpoint_rtcp import EndpointRtcp
from gateway.media.rtp.endpoint_state import (
    TRANSITIONS,
    Address,
    EndpointState,
    RtpEndpointConfig,
    same_place,
)
from gateway.media.rtp.latch import LatchState, SymmetricLatch
from gateway.media.rtp.packet import PT_COMFORT_NOISE, RtpPacket, is_rtcp
from gateway.media.rtp.ports import PortLease, RtpPortAllocator
from gateway.media.rtp.rtcp import RtcpPacket
from gateway.media.rtp.rtp_stats import FarEndStats, ReceiveStatistics, ReceptionState
from gateway.media.rtp.send_guard import SendGuard
from gateway.media.rtp.srtp import SdesSrtp, SipSrtp, SrtpError

logger = logging.getLogger(__name__)


def _same_transmit(new: SipSrtp | None, old: SipSrtp | None) -> bool:
    """Whether ``new`` goes on with ``old``'s transmit session (SdesSrtp's ``continuing``)."""
    return isinstance(new, SdesSrtp) and isinstance(old, SdesSrtp) and new.sessions[1] is old.sessions[1]


_RTP_HEADER = struct.Struct("!BBHII")  # V=2 P=0 X=0 CC=0, M+PT, sequence, timestamp, SSRC


_INTERVALS = random.Random()  # RTCP intervals' randomization (RFC 3550 §6.3.1); not a secret


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, Address], None], name: str) -> None:
        self._handler = handler
        self._name = name

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            self._handler(data, (addr[0], addr[1]))
        except Exception:  # a failing callback must not make asyncio close the socket
            logger.exception("%s: error handling a datagram from %s:%d", self._name, addr[0], addr[1])

    def error_received(self, exc: Exception) -> None:
        logger.debug("%s socket error: %s", self._name, exc)  # e.g. ICMP port unreachable


class RtpEndpoint(EndpointRtcp):
    """One plain RTP session on the SIP leg. Callbacks run in the event loop and must not block."""

    def __init__(
        self,
        allocator: RtpPortAllocator,
        config: RtpEndpointConfig,
        *,
        on_rtp: Callable[[RtpPacket], None],
        on_inactive: Callable[[], None] | None = None,
        on_rtcp: Callable[[tuple[RtcpPacket, ...]], None] | None = None,
        on_codec_change: Callable[[int | None, int], None] | None = None,
        call_id: str = "-",
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Callable[[], float] | None = None,
        wallclock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._allocator, self.config, self._call = allocator, config, call_id
        self._on_rtp, self._on_inactive, self._on_rtcp = on_rtp, on_inactive, on_rtcp
        self._on_codec_change = on_codec_change
        self._loop = loop
        self._clock, self._wallclock = clock, wallclock
        self._rng = rng or _INTERVALS  # a Random's state is 2.5 KiB: one for every endpoint
        self._state = EndpointState.NEW
        self._direction = sdp.Direction.SENDRECV
        self._lease: PortLease | None = None
        self._opening = False
        self._transports: list[asyncio.DatagramTransport] = []
        self._rtp_transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._sdp_rtp: Address | None = None
        self._sdp_rtcp: Address | None = None
        self._rtp_latch = SymmetricLatch(f"call={call_id} RTP", config.relatch_after)
        self._rtcp_latch = SymmetricLatch(f"call={call_id} RTCP", config.relatch_after)
        self._accepted = config.payload_types | config.dtmf_payload_types | {PT_COMFORT_NOISE}
        self._srtp: SipSrtp | None = None  # SDES keys (both a=crypto known) or DTLS-SRTP (sip_dtls)
        # what runs _srtp's sessions while the fast lane's engine holds them (serialize_srtp), else None
        self._srtp_stand_in: SipSrtp | None = None
        # Datagrams that are neither RTP nor RTCP (first byte outside 128..191, RFC 7983 §7: STUN, DTLS)
        # go here with the socket they came to ("rtp", "rtcp"); None: dropped.
        self.control: Callable[[str, bytes, Address], None] | None = None
        self.statistics: ReceiveStatistics | None = None
        self.far_end = FarEndStats()  # the far end's reports of our stream: its loss, jitter, the RTT
        self.codec_payload_type: int | None = None
        self.ssrc = self._rng.getrandbits(32)
        self._sequence = self._rng.getrandbits(16)
        self.sequence_map = seqmap.SequenceMap()  # forwarded packets' numbers (the fast lane's too)
        # a stream that may repeat an index (video): what went under each recent one (send_guard.py)
        self.guard = SendGuard() if self.config.retransmits else None
        self.packets_sent = self.octets_sent = self.dropped = 0
        self.link: Any = None  # a fast-lane link (fastlane.native.NativeLink) while the engine sends for us
        self.refresh: Callable[[], None] | None = None  # accounts for the fast lane's packets (inactivity)
        self._last_sent_timestamp = 0  # RTP timestamp and clock of the last packet sent
        self._last_sent_time = 0.0
        self._last_rx = 0.0
        self._last_rtcp: float | None = None  # the peer's last RTCP (None: it never sent any)
        self._quiet = False  # the peer's last RTP was comfort noise: it suppresses silence (RFC 3389)
        self._quiet_since = 0.0  # when no RTP began to be expected (hold, comfort noise)
        self.inactive_held = False  # the last on_inactive: no RTP nor RTCP while none was expected
        self._inactive = False
        self._inactivity_timer: Cancellable | None = None  # both on the process's coarse timers
        self._rtcp_timer: Cancellable | None = None

    # ----------------------------------------------------------------------------------- lifecycle

    @property
    def state(self) -> EndpointState:
        return self._state

    def _set_state(self, state: EndpointState) -> None:
        if (self._state, state) not in TRANSITIONS:
            raise EndpointError(
                f"call={self._call} RTP endpoint cannot go from {self._state.value} to {state.value}"
            )
        logger.debug("call=%s RTP endpoint %s -> %s", self._call, self._state.value, state.value)
        self._state = state

    def _now(self) -> float:
        return self._clock() if self._clock is not None else self._get_loop().time()

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def open(self, lease: PortLease | None = None) -> None:
        """Bind the sockets (or take ``lease``'s, bound already) and start the RTCP and inactivity timers."""
        if self._state is not EndpointState.NEW:
            if lease is not None:
                lease.release()
            raise EndpointError(f"call={self._call} open() in state {self._state.value}")
        loop = self._get_loop()
        if lease is None:
            lease = self._allocator.allocate(
                self.config.host, rtcp_mux=self.config.rtcp_mux, owner=self._call
            )
        elif lease.host != self.config.host or (lease.rtcp_socket is None) != self.config.rtcp_mux:
            lease.release()
            raise EndpointError(f"call={self._call} {lease!r} does not fit {self.config.host} (rtcp-mux)")
        self._lease = lease
        self._opening = True
        try:
            self._rtp_transport = await self._wrap(loop, lease.rtp_socket, self._rtp_received, "RTP")
            if lease.rtcp_socket is not None:
                self._rtcp_transport = await self._wrap(loop, lease.rtcp_socket, self._rtcp_socket, "RTCP")
        except BaseException:
            self._teardown()
            raise
        finally:
            self._opening = False
        if self._state is not EndpointState.NEW:  # close() was called while the sockets were wrapped
            self._teardown()
            raise EndpointError(f"call={self._call} closed while opening")
        self._set_state(EndpointState.OPEN)
        self._last_rx = self._now()
        self._arm_inactivity()
        self._schedule_rtcp(initial=True)

    async def _wrap(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        handler: Callable[[bytes, Address], None],
        name: str,
    ) -> asyncio.DatagramTransport:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(handler, f"call={self._call} {name}"), sock=sock
        )
        slim_waiters.slim_transport(transport)  # its send buffer, empty but for a full socket buffer
        self._transports.append(transport)
        return transport

    def close(self) -> None:
        """Send an RTCP BYE, close the sockets and give the ports back. Idempotent."""
        if self._state is EndpointState.CLOSED:
            return
        if self._state is EndpointState.OPEN:
            self._send_rtcp(bye=True)
        self._set_state(EndpointState.CLOSED)
        if not self._opening:  # otherwise open() tears down once its await returns
            self._teardown()

    def _teardown(self) -> None:
        for timer in (self._inactivity_timer, self._rtcp_timer):
            if timer is not None:
                timer.cancel()
        self._inactivity_timer = self._rtcp_timer = None
        for transport in self._transports:
            transport.abort()
        self._transports.clear()
        self._rtp_transport = self._rtcp_transport = None
        if self._lease is not None:
            self._lease.release()  # closes the sockets now, not on the next loop iteration

    # ----------------------------------------------------------------------------------- addresses

    @property
    def local_rtp_address(self) -> Address:
        if self._lease is None:
            raise EndpointError(f"call={self._call} endpoint not open")
        return (self._lease.host, self._lease.rtp_port)

    @property
    def local_rtcp_address(self) -> Address:
        host, port = self.local_rtp_address
        return (host, port) if self.config.rtcp_mux else (host, port + 1)

    @property
    def latched(self) -> bool:
        return self._rtp_latch.state is LatchState.LATCHED

    @property
    def remote_rtp_address(self) -> Address | None:
        """Where RTP goes: the latched source, else the address from the SDP."""
        return self._rtp_latch.address or self._sdp_rtp

    @property
    def remote_rtcp_address(self) -> Address | None:
        if self.config.rtcp_mux:
            return self.remote_rtp_address
        return self._rtcp_latch.address or self._sdp_rtcp

    def set_remote(self, rtp: Address, rtcp: Address | None = None) -> None:
        """The peer's addresses from its SDP (RTCP defaults to port + 1, RFC 3605 otherwise)."""
        if rtp != self._sdp_rtp and self._sdp_rtp is not None:
            self._rtp_latch.reset()  # a re-INVITE moved the peer: latch again
            self._rtcp_latch.reset()
        self._sdp_rtp = rtp
        self._sdp_rtcp = rtcp or (rtp[0], rtp[1] + 1)

    @property
    def srtp(self) -> SipSrtp | None:
        """The SRTP of this leg (its sessions), None for plain RTP; a new object when the keys change."""
        return self._srtp

    def set_srtp(self, ours: sdp.Crypto | None, theirs: sdp.Crypto | None) -> None:
        """Protect what we send with ``ours`` and check what arrives with ``theirs`` (both, or neither:
        plain RTP). The same keys again (a re-INVITE) keep the sessions and their rollover counters."""
        current = self._srtp
        if ours is None or theirs is None:
            self.set_secure(None)
        elif not isinstance(current, SdesSrtp) or not current.same_keys(ours, theirs):
            going_on = current if isinstance(current, SdesSrtp) else None
            self.set_secure(SdesSrtp(ours, theirs, repeats=self.config.retransmits, continuing=going_on))
            logger.info("call=%s SRTP on (%s)", self._call, ours.suite)

    def serialize_srtp(self, stand_in: SipSrtp | None) -> None:
        """While the fast lane's engine holds ``srtp``'s sessions, run them through ``stand_in`` (under the
        engine's lock); None: use them directly again."""
        self._srtp_stand_in = stand_in

    @property
    def _crypto(self) -> SipSrtp | None:
        return self._srtp_stand_in if self._srtp_stand_in is not None else self._srtp

    def set_secure(self, srtp: SipSrtp | None) -> None:
        """Use ``srtp`` (SDES or DTLS-SRTP) from now on; None: plain RTP."""
        if srtp is None and self._srtp is not None:
            logger.info("call=%s SRTP off", self._call)
        current = self._srtp
        if srtp is not current and not _same_transmit(srtp, current):
            self._srtp_stand_in = None  # new sessions are ours alone until the fast lane links them
            if self.guard is not None:  # a new key, a new index space (the engine may hold the old one's
                self.guard = SendGuard()  # state until its link is made again: a new one, not reset)
        self._srtp = srtp  # (a transmit session that goes on stays the engine's: through the stand-in)

    def set_rtcp_mux(self, mux: bool) -> None:
        """RTCP on the RTP socket (RFC 5761) or on its own, as the answer says. A lease bound without
        an RTCP socket stays muxed."""
        mux = mux or (self._lease is not None and self._lease.rtcp_socket is None)
        if mux != self.config.rtcp_mux:
            self.config = dataclasses.replace(self.config, rtcp_mux=mux)
            logger.info("call=%s rtcp-mux %s", self._call, "on" if mux else "off")

    def send_datagram(self, component: str, data: bytes, destination: Address) -> None:
        """Send ``data`` as it is from the RTP or RTCP socket (DTLS records, STUN responses)."""
        transport = self._rtcp_transport if component == "rtcp" else self._rtp_transport
        if self._state is EndpointState.OPEN and transport is not None:
            transport.sendto(data, destination)

    def reconfigure(
        self, payload_types: frozenset[int], dtmf_payload_types: frozenset[int], clock_rate: int
    ) -> None:
        """New codecs after an answer or a re-INVITE (RFC 3264 §8.3.2): accept exactly these from now on."""
        self.config = dataclasses.replace(
            self.config,
            payload_types=frozenset(payload_types),
            dtmf_payload_types=frozenset(dtmf_payload_types),
            clock_rate=clock_rate,
        )
        self._accepted = self.config.payload_types | self.config.dtmf_payload_types | {PT_COMFORT_NOISE}
        logger.debug(
            "call=%s RTP payload types %s, telephone-event %s",
            self._call,
            sorted(self.config.payload_types),
            sorted(self.config.dtmf_payload_types),
        )

    @property
    def direction(self) -> sdp.Direction:
        return self._direction

    def set_direction(self, direction: sdp.Direction) -> None:
        """Hold and resume: the inactivity timer only runs while we expect to receive."""
        old, self._direction = self._direction, direction
        logger.debug("call=%s RTP direction %s -> %s", self._call, old.value, direction.value)
        if self._state is not EndpointState.OPEN or old.receives == direction.receives:
            return
        if direction.receives:
            self._last_rx = self._now()
        else:
            self._quiet_since = self._now()
        self._arm_inactivity()

    # ----------------------------------------------------------------------------------------- RTP

    def send_rtp(
        self,
        payload_type: int,
        payload: bytes,
        timestamp: int,
        *,
        marker: bool = False,
        source: tuple[int, int] | None = None,
    ) -> bool:
        """Send one RTP packet with our SSRC and next sequence number, or for a forwarded packet
        (``source``: its SSRC and sequence number) that number mapped (``seqmap``: gaps and order kept);
        False when not sent."""
        if self._state is not EndpointState.OPEN or self._rtp_transport is None:
            raise EndpointError(f"call={self._call} send_rtp() in state {self._state.value}")
        destination = self.remote_rtp_address
        if destination is None or not self._direction.sends:
            return False
        if self._srtp is not None and not self._srtp.ready:
            return False  # RFC 5764 §4.1: nothing before the DTLS handshake gave the keys
        if not 0 <= payload_type <= 127:
            raise EndpointError(f"call={self._call} payload type must be in [0, 127], got {payload_type!r}")
        timestamp &= 0xFFFF_FFFF
        link = self.link
        if link is not None:  # the fast lane's engine owns the sequence numbers (gateway/media/fastlane)
            try:
                seq = -1 if source is None else self.sequence_map.map(*source, link.sequence(0))
                if link.send(0, destination, marker, payload_type, timestamp, payload, seq) < 0:
                    return False
            except ValueError as exc:  # a host name from the SDP: the engine takes numeric addresses
                self._drop("RTP to %s not sent: %s", destination, exc)
                return False
        else:
            second = payload_type | 0x80 if marker else payload_type
            seq = self._sequence if source is None else self.sequence_map.map(*source, self._sequence)
            header = _RTP_HEADER.pack(0x80, second, seq, timestamp, self.ssrc)  # RFC 3550 §5.1
            self._sequence = seqmap.advance(self._sequence, seq)
            packet = header + payload
            crypto = self._crypto
            if crypto is not None:
                try:
                    packet = crypto.protect(packet)
                except SrtpError as exc:  # an index used already (srtp.py): never sent twice
                    self._drop("RTP to %s not sent: %s", destination, exc)
                    return False
                if self.guard is not None and not self.guard.admit(packet):
                    self._drop("RTP to %s not sent: another packet went under index %d", destination, seq)
                    return False
            self._rtp_transport.sendto(packet, destination)
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self._last_sent_timestamp = timestamp
        self._last_sent_time = self._now()
        return True

    # ------------------------------------------------------------------------------ the fast lane

    @property
    def rtp_transport(self) -> asyncio.DatagramTransport | None:
        return self._rtp_transport

    @property
    def next_sequence(self) -> int:
        return self._sequence

    @next_sequence.setter
    def next_sequence(self, sequence: int) -> None:
        self._sequence = sequence & 0xFFFF

    @property
    def latched_address(self) -> Address | None:
        """The source RTP is accepted from once latched (None before)."""
        return self._rtp_latch.address if self._rtp_latch.state is LatchState.LATCHED else None

    def datagram(self, data: bytes, source: Address, *, decrypted: bool = False) -> None:
        """A datagram of the RTP socket read by the fast lane's engine instead of asyncio; ``decrypted``:
        SRTP the engine already unprotected with this leg's sessions (not to be unprotected twice)."""
        self._rtp_received(data, (source[0], source[1]), decrypted)

    def fast_received(
        self,
        ssrc: int,
        state: ReceptionState,
        last_arrival: float,
        *,
        restarted: bool,
        source: Address | None = None,
    ) -> None:
        """RTP packets the fast lane forwarded, accounted by its engine as ``_rtp_received`` would have:
        the receive statistics of ``ssrc`` continue from ``state``; the last arrived at ``last_arrival``.
        ``source``: where the first packet of a lane it armed on that packet came from; the SDP's address
        is latched to if that is it and nothing is latched yet."""
        if self._state is not EndpointState.OPEN:
            return
        sdp_rtp = self._sdp_rtp
        if (
            source is not None
            and sdp_rtp is not None
            and same_place(source, sdp_rtp)
            and self._rtp_latch.state is LatchState.UNLATCHED
        ):
            self._rtp_latch.accept(sdp_rtp, True)
        statistics = self.statistics
        if statistics is None or statistics.ssrc != ssrc:
            statistics = self.statistics = ReceiveStatistics(ssrc, self.config.clock_rate)
        statistics.restore(state, restarted=restarted)
        self._last_rx = max(self._last_rx, last_arrival)
        if self._inactive:
            self._inactive = False
            logger.info("call=%s RTP resumed", self._call)
            self._arm_inactivity()

    def add_sent(self, packets: int, octets: int, last_timestamp: int, last_time: float) -> None:
        """RTP packets the fast lane sent with our SSRC (the last at ``last_time``), for the sender reports."""
        if packets:
            self.packets_sent += packets
            self.octets_sent += octets
            if last_time >= self._last_sent_time:
                self._last_sent_timestamp, self._last_sent_time = last_timestamp, last_time

    def _rtp_received(self, data: bytes, source: Address, decrypted: bool = False) -> None:
        if self._state is not EndpointState.OPEN:
            return
        if self.control is not None and data and not 128 <= data[0] <= 191:
            self.control("rtp", data, source)
            return
        if self.config.rtcp_mux and is_rtcp(data):
            self._rtcp_received(data, source)
            return
        opened = data if decrypted else self._unprotect(data, source, rtcp=False)
        if opened is None:
            return
        try:
            packet = RtpPacket.parse(opened)
        except PacketError as exc:
            self._drop("malformed RTP from %s: %s", source, exc)
            return
        pt = packet.payload_type
        if pt not in self._accepted:
            self._drop("unexpected payload type from %s: %s", source, pt)
            return
        if not self._rtp_latch.accept(source, True):
            self._drop("RTP from stranger %s, latched to %s", source, self._rtp_latch.address)
            return
        self._heard(packet, source)
        self._on_rtp(packet)

    def _heard(self, packet: RtpPacket, source: Address) -> None:
        """An accepted packet from the peer: the receive statistics (RFC 3550 §6.4.1), its liveness (quiet
        while it sends comfort noise, RFC 3389), and the codec it switched to among the negotiated ones."""
        pt = packet.payload_type
        now = self._now()
        if self.statistics is None or self.statistics.ssrc != packet.ssrc:
            self.statistics = ReceiveStatistics(packet.ssrc, self.config.clock_rate)
        timing = pt not in self.config.dtmf_payload_types
        self.statistics.update(packet.sequence_number, packet.timestamp, now, timing=timing)
        self._last_rx = now
        quiet = pt == PT_COMFORT_NOISE
        if self._inactive or quiet != self._quiet:
            if self._inactive:
                logger.info("call=%s RTP resumed from %s:%d", self._call, *source)
            if quiet:
                self._quiet_since = now
            self._inactive, self._quiet = False, quiet
            self._arm_inactivity()
        if pt in self.config.payload_types and pt != PT_COMFORT_NOISE and pt != self.codec_payload_type:
            old, self.codec_payload_type = self.codec_payload_type, pt
            logger.debug("call=%s RTP codec payload type %s -> %d", self._call, old, pt)
            if self._on_codec_change is not None:
                self._on_codec_change(old, pt)

    def _drop(self, message: str, source: Address, detail: object) -> None:
        self.dropped += 1
        logger.debug("call=%s dropping " + message, self._call, source, detail)

    # ---------------------------------------------------------------------------------- inactivity

    def _liveness(self) -> tuple[float, float, bool] | None:
        """(last sign of life, timeout, held) as things stand; None: nothing to watch."""
        if self._direction.receives and not self._quiet:
            timeout = self.config.inactivity_timeout
            return None if timeout is None else (self._last_rx, timeout, False)
        timeout = self.config.hold_timeout
        if timeout is None or self._last_rtcp is None or self._last_rtcp < self._quiet_since:
            return None  # no RTCP since it went quiet: it cannot be judged
        return max(self._last_rx, self._last_rtcp), timeout, True

    def _arm_inactivity(self) -> None:
        if self._inactivity_timer is not None:
            self._inactivity_timer.cancel()
            self._inactivity_timer = None
        watch = self._liveness()
        if watch is None or self._inactive or self._state is not EndpointState.OPEN:
            return
        last, timeout, _ = watch
        remaining = last + timeout - self._now()
        self._inactivity_timer = coarse_timers(self._get_loop()).call_later(remaining, self._check_inactivity)

    def _check_inactivity(self) -> None:
        self._inactivity_timer = None
        if self._inactive or self._state is not EndpointState.OPEN:
            return
        if self.refresh is not None:
            self.refresh()
        watch = self._liveness()
        if watch is None:
            return
        last, timeout, held = watch
        if self._now() - last < timeout:  # packets came meanwhile: check again later
            self._arm_inactivity()
            return
        self._inactive, self.inactive_held = True, held
        if held:
            logger.info("call=%s no RTP nor RTCP for %.1f s while none was expected", self._call, timeout)
        else:
            logger.info("call=%s no RTP for %.1f s", self._call, timeout)
        if self._on_inactive is not None:
            self._on_inactive()
