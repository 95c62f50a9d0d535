"""DTLS-SRTP and ICE-lite of one SIP leg, on its RTP endpoint's sockets (the asyncio side of
``dtls_srtp.DtlsSrtp`` and ``ice_lite.IceLiteResponder``, which are sans-I/O).

One DTLS association runs on the RTP socket, and one more on the RTCP socket when RTCP is not muxed
(RFC 5764 §4.1: each component has its own; SRTCP takes the RTCP association's keys). The endpoint
hands over every datagram that is not RTP/RTCP (RFC 7983 §7: STUN 0..3, DTLS 20..63) through its
``control`` hook; ``SipDtls`` answers STUN checks, feeds DTLS to its association, sends the flights and
keeps OpenSSL's retransmission timer on the loop. It is the endpoint's ``srtp`` object: not ``ready``
(nothing sent or accepted) until every association is connected; ``sessions`` are the RTP
association's (rx, tx) libsrtp sessions. A failed handshake or fingerprint mismatch calls
``on_failed(reason)``: the call ends with that reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import pylibsrtp

import sdp
from gateway.media.rtp.dtls_srtp import DtlsCertificate, DtlsSrtp, DtlsState, is_dtls
from gateway.media.rtp.ice_lite import IceLiteResponder, is_stun
from gateway.media.rtp.rtp_endpoint import RtpEndpoint

logger = logging.getLogger(__name__)

Address = tuple[str, int]


class SipDtls:
    def __init__(
        self,
        endpoint: RtpEndpoint,
        certificate: DtlsCertificate,
        *,
        client: bool,
        remote: Sequence[sdp.Fingerprint],
        rtcp: bool,
        ice: IceLiteResponder | None = None,
        on_ready: Callable[[], None] = lambda: None,
        on_failed: Callable[[str], None] = lambda reason: None,
        call_id: str = "-",
        handshake_timeout: float = 10.0,
    ) -> None:
        self._endpoint, self._call = endpoint, call_id
        self.client, self.remote, self.ice = client, tuple(remote), ice
        self._on_ready, self._on_failed = on_ready, on_failed
        components = ("rtp", "rtcp") if rtcp else ("rtp",)
        self.associations = {
            name: DtlsSrtp(
                certificate,
                client=client,
                remote=remote,
                call_id=f"{call_id} {name.upper()}",
                handshake_timeout=handshake_timeout,
            )
            for name in components
        }
        self._peers: dict[str, Address | None] = dict.fromkeys(components)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._reported = False
        self._closed = False

    def __repr__(self) -> str:
        states = ", ".join(f"{k} {a.state.value}" for k, a in self.associations.items())
        return f"<SipDtls {'active' if self.client else 'passive'}: {states}>"

    def matches(self, client: bool, remote: Sequence[sdp.Fingerprint], rtcp: bool) -> bool:
        """Whether a re-offer keeps this association (RFC 5763 §6.7: same role, certificate and RTCP)."""
        fingerprints = {(f.algorithm.lower(), f.value.upper()) for f in remote}
        ours = {(f.algorithm.lower(), f.value.upper()) for f in self.remote}
        return (client, fingerprints, rtcp) == (self.client, ours, "rtcp" in self.associations)

    def start(self) -> None:
        """Begin: the endpoint hands us its STUN and DTLS; a client sends its ClientHello(s)."""
        self._endpoint.control = self.datagram
        now = self._now()
        for name, association in self.associations.items():
            self._send(name, association.start(now), None)

    # ------------------------------------------------------------------------------------ datagrams

    def datagram(self, component: str, data: bytes, source: Address) -> None:
        if self._closed:
            return
        if is_stun(data):
            response = self.ice.handle(data, source) if self.ice is not None else None
            if response is not None:
                self._endpoint.send_datagram(component, response, source)
            return
        association = self.associations.get(component)
        if association is None or not is_dtls(data):
            logger.debug(
                "call=%s dropping a %d-byte datagram from %s on %s", self._call, len(data), source, component
            )
            return
        self._peers[component] = source
        self._send(component, association.receive(data, self._now()), source)

    def _expire(self, component: str) -> None:
        self._timers.pop(component, None)
        if not self._closed:
            self._send(component, self.associations[component].expire(self._now()), None)

    def _send(self, component: str, datagrams: list[bytes], destination: Address | None) -> None:
        destination = destination or self._destination(component)
        if destination is not None:
            for data in datagrams:
                self._endpoint.send_datagram(component, data, destination)
        self._arm(component)
        self._check()

    def _destination(self, component: str) -> Address | None:
        """Where DTLS goes: the last DTLS source, else the nominated ICE pair (RTP), else the SDP's."""
        known = self._peers.get(component)
        if known is not None:
            return known
        if component == "rtp":
            nominated = self.ice.nominated if self.ice is not None else None
            return nominated or self._endpoint.remote_rtp_address
        return self._endpoint.remote_rtcp_address

    def _arm(self, component: str) -> None:
        timer = self._timers.pop(component, None)
        if timer is not None:
            timer.cancel()
        deadline = self.associations[component].deadline
        if deadline is not None and not self._closed:
            loop = asyncio.get_running_loop()
            self._timers[component] = loop.call_at(deadline, self._expire, component)

    def _check(self) -> None:
        if self._reported:
            return
        for name, association in self.associations.items():
            if association.state is DtlsState.FAILED:
                self._reported = True
                self._on_failed(f"DTLS-SRTP on the SIP leg's {name.upper()}: {association.reason}")
                return
        if self.ready:
            self._reported = True
            logger.info("call=%s DTLS-SRTP on the SIP leg is up", self._call)
            self._on_ready()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def close(self) -> None:
        """Send close_notify, stop the timers, give the endpoint's control hook back. Idempotent."""
        if self._closed:
            return
        for name, association in self.associations.items():
            destination = self._destination(name)
            for data in association.close():
                if destination is not None:
                    self._endpoint.send_datagram(name, data, destination)
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._endpoint.control == self.datagram:
            self._endpoint.control = None

    # ------------------------------------------------------------------------- SRTP (endpoint.srtp)

    @property
    def ready(self) -> bool:
        return not self._closed and all(a.connected for a in self.associations.values())

    @property
    def sessions(self) -> tuple[pylibsrtp.Session, pylibsrtp.Session] | None:
        """The RTP association's (rx, tx) libsrtp sessions for the fast lane; None before the handshake."""
        return self.associations["rtp"].sessions if self.ready else None

    @property
    def separate_rtcp(self) -> bool:
        """RTCP has its own association (no rtcp-mux), hence its own keys."""
        return "rtcp" in self.associations

    def protect(self, packet: bytes) -> bytes:
        return self.associations["rtp"].protect(packet)

    def unprotect(self, packet: bytes) -> bytes:
        return self.associations["rtp"].unprotect(packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self.associations.get("rtcp", self.associations["rtp"]).protect_rtcp(packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """SRTCP from the RTCP socket takes the RTCP association's keys; muxed RTCP the RTP one's."""
        return self.associations.get("rtcp", self.associations["rtp"]).unprotect_rtcp(packet)
