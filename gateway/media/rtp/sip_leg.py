"""The SIP leg as SDP: the plain RTP endpoint (symmetric RTP, RTCP, inactivity) and what was negotiated.

DTLS-SRTP (RFC 5763/5764): an offer with UDP/TLS/RTP/SAVP(F) and a=fingerprint is answered with the
same profile, the gateway's fingerprint and a=setup (active to actpass or passive, passive to active);
``sip_dtls.SipDtls`` then runs the handshake on the endpoint's sockets, with ICE-lite when the offer has
ICE. A re-offer with the same fingerprint, role and RTCP keeps the association (RFC 5763 §6.7).

The endpoint opens with the offer (its port goes into the SDP) but stays inactive until an answer is
known: nothing is sent to, or awaited from, a peer that has not answered. Each answer (a 183, the 200,
a re-INVITE's) re-applies the peer's address, payload types, direction (RFC 3264 §8.3) and packet time
(a=ptime/maxptime). RTP latches to the peer's source and re-latches when it moves (RELATCH_PACKETS).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sdp
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.codecs import codec_choice as choice
from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.codecs.packetize import packet_ms
from gateway.media.errors import MediaError
from gateway.media.rtp import ice_lite
from gateway.media.rtp.dtls_srtp import DtlsCertificate
from gateway.media.rtp.endpoint_state import RtpEndpointConfig
from gateway.media.rtp.latch import RELATCH_PACKETS
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.ports import PortLease
from gateway.media.rtp.rtp_endpoint import RtpEndpoint
from gateway.media.rtp.sip_dtls import SipDtls

logger = logging.getLogger(__name__)


class SipLeg:
    def __init__(
        self,
        settings: BridgeSettings,
        *,
        on_rtp: Callable[[RtpPacket], None],
        on_inactive: Callable[[], None],
        on_failed: Callable[[str], None] = lambda reason: None,
        on_secure: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._on_rtp, self._on_inactive = on_rtp, on_inactive
        self._on_failed, self._on_secure = on_failed, on_secure
        self.dtls: SipDtls | None = None  # DTLS-SRTP toward a peer that offered it
        self._certificate: DtlsCertificate | None = None
        self._ice: sdp.IceParameters | None = None  # our ICE-lite credentials, once a peer offered ICE
        self.endpoint: RtpEndpoint | None = None
        # the gaps the SIP side's reports count that the browser's path lost (own_loss.py): the web leg's
        # gaps we forwarded so far (the bridge's web -> SIP path)
        self.forwarded_lost: Callable[[], int] | None = None
        self._reserved: tuple[str | None, PortLease] | None = None  # (family, ports) leased before open
        self.negotiated: LegCodecs | None = None
        self.sdp_address = ""  # the address our SDP gives the SIP side, once open
        self.local_crypto: sdp.Crypto | None = None  # our SDES key in the last SDP we gave (RFC 4568)
        # the SIP party's last description: its answer, or its offer when we answered (a takeover's)
        self.remote: sdp.SessionDescription | None = None

    def reserve(self, family: str | None = None) -> None:
        """Lease the RTP/RTCP ports in ``family`` now (two binds, nothing on the event loop): a gateway out
        of ports (PortAllocationError) fails before the browser is answered; ``open`` then takes them."""
        if self.endpoint is not None or self._reserved is not None:
            raise MediaError(f"call={self._settings.call_id} the SIP leg's ports are taken already")
        rtp = self._settings.rtp_address(family)
        lease = self._settings.allocator.allocate(rtp.bind_host, owner=self._settings.call_id)
        self._reserved = (family, lease)

    async def open(self, codecs: list[sdp.Codec], family: str | None = None) -> tuple[str, int]:
        """Bind the RTP/RTCP ports in address ``family`` ("IP4", "IP6"; None: the default one), or take
        those ``reserve`` leased; the (address, port) to write into the SDP. SdpUnacceptable (488,
        warn-code 301) when the gateway's RTP does not serve ``family``."""
        rtp = self._settings.rtp_address(family)
        lease = None
        if self._reserved is not None:
            reserved_family, lease = self._reserved
            self._reserved = None
            if reserved_family != family:
                lease.release()
                lease = None
        config = RtpEndpointConfig(
            payload_types=frozenset(c.payload_type for c in codecs),
            dtmf_payload_types=frozenset({choice.SIP_EVENT.payload_type}),
            host=rtp.bind_host,
            relatch_after=RELATCH_PACKETS,
            inactivity_timeout=self._settings.inactivity_timeout,
            hold_timeout=self._settings.hold_timeout,
        )
        endpoint = RtpEndpoint(
            self._settings.allocator,
            config,
            on_rtp=self._on_rtp,
            on_inactive=self._on_inactive,
            call_id=self._settings.call_id,
        )
        self.endpoint = endpoint
        endpoint.far_end.upstream = self._forwarded
        await endpoint.open(lease)
        endpoint.set_direction(sdp.Direction.INACTIVE)  # until an answer is known
        host, port = endpoint.local_rtp_address
        self.sdp_address = rtp.public or host
        return self.sdp_address, port

    def set_remote(self, description: sdp.SessionDescription, index: int) -> None:
        assert self.endpoint is not None
        self.endpoint.set_remote(*choice.remote_rtp(description, index))

    def apply(
        self, answer: sdp.MediaDescription, peer: sdp.SessionDescription, index: int, ours: sdp.Direction
    ) -> LegCodecs:
        """Use an answer's m-line: its codecs (allowed ones), the peer's address from ``peer`` (the side's
        own description: its answer, or its offer when we answered), and our direction."""
        endpoint = self.endpoint
        assert endpoint is not None
        codecs = choice.offered(answer, self._settings.sip_codecs)
        if not codecs:
            raise sdp.SdpUnacceptable(f"the SIP side's answer has none of {list(self._settings.sip_codecs)}")
        events = choice.events(answer)
        negotiated = LegCodecs.of(codecs, events, ours, packet_ms(peer.media[index]))
        self.set_remote(peer, index)
        endpoint.reconfigure(
            frozenset(c.payload_type for c in codecs),
            frozenset(e.payload_type for e in events),
            negotiated.codec.clock_rate,
        )
        endpoint.set_direction(ours)
        self.negotiated, self.remote = negotiated, peer
        return negotiated

    def resume(
        self, negotiated: LegCodecs, remote: sdp.SessionDescription, crypto: sdp.Crypto | None
    ) -> None:
        """A call taken over from a gateway instance that died (gateway/media/bridge_handover.py), once
        ``open``: what was negotiated there and the SIP party's last description, both until it answers
        our re-offer (``apply``), and our SDES key for that re-offer (new: RFC 4568 §7.1.4 lets a re-offer
        change keys). The endpoint stays inactive until that answer."""
        self.negotiated, self.remote, self.local_crypto = negotiated, remote, crypto

    def offer_crypto(self) -> sdp.Crypto | None:
        """The a=crypto for an offer of ours: the key already in use, else a new one, when our offers
        carry SDES (BridgeSettings.offer_sdes)."""
        if self.local_crypto is None and self._settings.offer_sdes:
            self.local_crypto = sdp.Crypto.new()
        return self.local_crypto

    def webrtc_offer_parameters(self) -> tuple[sdp.DtlsParameters, sdp.IceParameters, sdp.Candidate]:
        """Our fingerprint with a=setup:actpass (RFC 5763 §5), ICE-lite credentials and the host
        candidate of the RTP socket, for an offer in WebRTC media (BridgeSettings.offer_webrtc)."""
        assert self.endpoint is not None
        _, port = self.endpoint.local_rtp_address
        self._ice = self._ice or ice_lite.new_parameters()
        dtls = sdp.DtlsParameters((self._dtls_certificate().fingerprint,), sdp.Setup.ACTPASS)
        return dtls, self._ice, ice_lite.host_candidate(self.sdp_address, port)

    def keys_from_answer(
        self,
        section: sdp.MediaDescription,
        answer: sdp.SessionDescription | None = None,
        index: int = 0,
    ) -> None:
        """The SIP side answered an offer of ours: SRTP when it answered our a=crypto (same tag and suite)
        with its own key, else plain RTP, which media.sip_srtp: required refuses. To an offer in WebRTC
        media, DTLS-SRTP: the answer's a=setup gives our role (active -> we are the server), its ICE
        credentials check its connectivity checks, which our ICE-lite answers."""
        assert self.endpoint is not None
        if self._settings.offer_webrtc and answer is not None:
            dtls = answer.dtls_for(index)
            if dtls is None or not sdp.is_dtls_srtp(answer, index):
                raise sdp.SdpUnacceptable(
                    f"the SIP side answered our DTLS-SRTP offer with {section.proto} and no a=fingerprint"
                )
            role = sdp.Setup.ACTIVE if dtls.setup is sdp.Setup.PASSIVE else sdp.Setup.PASSIVE
            self._use_dtls(dtls, role, section.rtcp_mux, answer, index)
            return
        ours = self.local_crypto
        theirs = next(
            (c for c in section.cryptos if ours and (c.tag, c.suite) == (ours.tag, ours.suite)), None
        )
        if theirs is None and self._settings.sip_srtp == "required":
            raise sdp.SdpUnacceptable(
                "the SIP side answered without a=crypto, and SRTP is required (media.sip_srtp)"
            )
        self.endpoint.set_srtp(ours if theirs is not None else None, theirs)

    def answer(
        self,
        offer: sdp.SessionDescription,
        codec: sdp.Codec,
        direction: sdp.Direction = sdp.Direction.SENDRECV,
    ) -> sdp.SessionDescription:
        """Our answer to the SIP side's offer with ``codec`` (RFC 3264 §6.1), applied to the endpoint;
        ``direction`` is our policy (sendonly while the web user holds the call). An offer with a usable
        a=crypto is answered with SRTP and a key of ours (RFC 4568), one with DTLS-SRTP with our
        fingerprint (RFC 5763), unless media.sip_srtp is off."""
        assert self.endpoint is not None
        _, port = self.endpoint.local_rtp_address
        theirs: sdp.Crypto | None = None
        dtls: sdp.DtlsParameters | None = None
        index = 0
        if self._settings.sip_srtp != "off":
            index = sdp.check_audio_offer(offer, self._settings.sip_codecs, srtp=self._settings.sip_srtp)
            if sdp.is_dtls_srtp(offer, index):
                dtls = offer.dtls_for(index)
            else:
                theirs = next(iter(offer.media[index].cryptos), None)
        ours = sdp.Crypto.new(theirs.tag, theirs.suite) if theirs is not None else None
        transport = sdp.PlainTransport(self.sdp_address, port, crypto=ours)
        if dtls is not None:
            transport = self._dtls_transport(offer, index, dtls, port)
        answer = sdp.answer(
            offer,
            codecs=[f"{codec.name}/{codec.clock_rate}"],
            transport=transport,
            preference=sdp.Preference.ANSWERER,
            telephone_event=self._settings.telephone_event,
            direction=direction,
        )
        index = next(i for i, m in enumerate(answer.media) if not m.rejected)
        self.apply(answer.media[index], offer, index, answer.direction_for(index))
        self.local_crypto = ours
        if dtls is not None and transport.dtls is not None:
            self._use_dtls(dtls, transport.dtls.setup, offer.media[index].rtcp_mux, offer, index)
        else:
            self._stop_dtls()
            self.endpoint.set_rtcp_mux(False)
            self.endpoint.set_srtp(ours, theirs)
        return answer

    def _dtls_transport(
        self, offer: sdp.SessionDescription, index: int, dtls: sdp.DtlsParameters, port: int
    ) -> sdp.PlainTransport:
        """Our fingerprint, role (RFC 5763 §5; the current one on a re-offer that keeps it) and, when
        the peer offers ICE, ICE-lite credentials and one host candidate per socket."""
        current = self.dtls
        setup = dtls.setup.answer()
        if current is not None and dtls.setup is sdp.Setup.ACTPASS:
            setup = sdp.Setup.ACTIVE if current.client else sdp.Setup.PASSIVE
        certificate = self._dtls_certificate()
        ice: sdp.IceParameters | None = None
        candidates: list[sdp.Candidate] = []
        if offer.ice_for(index) is not None:
            ice = self._ice = self._ice or ice_lite.new_parameters()
            candidates.append(ice_lite.host_candidate(self.sdp_address, port))
            if not offer.media[index].rtcp_mux:
                candidates.append(ice_lite.host_candidate(self.sdp_address, port + 1, component=2))
        return sdp.PlainTransport(
            self.sdp_address,
            port,
            dtls=sdp.DtlsParameters((certificate.fingerprint,), setup),
            ice=ice,
            candidates=tuple(candidates),
        )

    def _dtls_certificate(self) -> DtlsCertificate:
        """The process's certificate (BridgeSettings.dtls_certificates), else one for this call; a call
        keeps the one it answered with."""
        if self._certificate is None:
            source = self._settings.dtls_certificates
            self._certificate = source.current() if source is not None else DtlsCertificate()
        return self._certificate

    def _use_dtls(
        self,
        offered: sdp.DtlsParameters,
        setup: sdp.Setup,
        mux: bool,
        offer: sdp.SessionDescription,
        index: int,
    ) -> None:
        endpoint = self.endpoint
        assert endpoint is not None
        client = setup is sdp.Setup.ACTIVE
        endpoint.set_rtcp_mux(mux)
        rtcp = not endpoint.config.rtcp_mux
        remote_ice = offer.ice_for(index)
        if self.dtls is not None and self.dtls.matches(client, offered.fingerprints, rtcp):
            if self.dtls.ice is not None and remote_ice is not None:
                self.dtls.ice.remote = remote_ice
            return
        self._stop_dtls()
        responder = None
        if remote_ice is not None and self._ice is not None:
            responder = ice_lite.IceLiteResponder(self._ice, remote_ice, call_id=self._settings.call_id)
        self.dtls = SipDtls(
            endpoint,
            self._dtls_certificate(),
            client=client,
            remote=offered.fingerprints,
            rtcp=rtcp,
            ice=responder,
            on_ready=self._on_secure,
            on_failed=self._on_failed,
            call_id=self._settings.call_id,
            handshake_timeout=self._settings.inactivity_timeout or 10.0,
        )
        endpoint.set_secure(self.dtls)
        logger.info(
            "call=%s DTLS-SRTP toward the SIP side as %s%s%s",
            self._settings.call_id,
            "client (a=setup:active)" if client else "server (a=setup:passive)",
            ", RTCP muxed" if not rtcp else ", RTCP on its own association",
            ", ICE-lite" if responder is not None else "",
        )
        self.dtls.start()

    def _stop_dtls(self) -> None:
        if self.dtls is not None:
            self.dtls.close()
            self.dtls = None
            if self.endpoint is not None:
                self.endpoint.set_secure(None)

    def send(
        self,
        payload_type: int,
        payload: bytes,
        timestamp: int,
        marker: bool,
        source: tuple[int, int] | None = None,
    ) -> None:
        """``source``: a forwarded packet's SSRC and sequence number (``RtpEndpoint.send_rtp``)."""
        if self.endpoint is not None:
            self.endpoint.send_rtp(payload_type, payload, timestamp, marker=marker, source=source)

    def _refreshed(self) -> RtpEndpoint | None:
        """The endpoint, the fast lane's packets counted first (its refresh: a sync, no drain)."""
        endpoint = self.endpoint
        if endpoint is not None and endpoint.refresh is not None:
            endpoint.refresh()
        return endpoint

    def forget_numbering(self) -> None:
        """Input not sent (a hold ended, an event told by INFO): our numbering to the SIP side goes on
        without their gap (seqmap.py)."""
        if self.endpoint is not None:
            self.endpoint.sequence_map.forget()

    def _forwarded(self) -> tuple[int, int] | None:
        """(0, the web leg's gaps forwarded so far): the far end's reports of our stream count them too."""
        if self.forwarded_lost is None or self._refreshed() is None:
            return None
        return 0, self.forwarded_lost()

    def cumulative_lost(self) -> tuple[int, int] | None:
        """(SSRC, what it lost before us so far: RFC 3550 A.3 expected - received) of the SIP side's stream,
        the gaps a pass-through call forwards to the browser (own_loss.py); None before its first packet."""
        endpoint = self._refreshed()
        if endpoint is None:
            return None
        statistics = endpoint.statistics
        if statistics is None or not statistics.received:
            return None
        return statistics.ssrc, statistics.expected - statistics.received

    def close(self) -> None:
        if self._reserved is not None:  # leased, never opened
            self._reserved[1].release()
            self._reserved = None
        if self.dtls is not None:
            self.dtls.close()
        if self.endpoint is not None:
            self.endpoint.close()
