"""The SIP leg as SDP: the plain RTP endpoint (symmetric RTP, RTCP, inactivity) and what was negotiated.

The endpoint opens with the offer (its port goes into the SDP) but stays inactive until an answer is
known: nothing is sent to, or awaited from, a peer that has not answered. Each answer (a 183, the 200,
a re-INVITE's) re-applies the peer's address, payload types, direction (RFC 3264 §8.3) and packet time
(a=ptime/maxptime). RTP latches to the peer's source and re-latches when it moves (RELATCH_PACKETS).
"""

from __future__ import annotations

from collections.abc import Callable

import sdp
from gateway.media import codec_choice as choice
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.codec_choice import LegCodecs
from gateway.media.packetize import packet_ms
from gateway.media.rtp import RtpPacket
from gateway.media.rtp_endpoint import RtpEndpoint, RtpEndpointConfig

# A far end whose RTP comes from a new address (NAT rebinding, an SBC or PBX failing over) is followed
# once this many packets in a row came from there and none from the old one: a stranger cannot take
# the stream over while the real source still sends (gateway/media/latch.py).
RELATCH_PACKETS = 10


class SipLeg:
    def __init__(
        self,
        settings: BridgeSettings,
        *,
        on_rtp: Callable[[RtpPacket], None],
        on_inactive: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._on_rtp, self._on_inactive = on_rtp, on_inactive
        self.endpoint: RtpEndpoint | None = None
        self.negotiated: LegCodecs | None = None
        self.sdp_address = ""  # the address our SDP gives the SIP side, once open
        self.local_crypto: sdp.Crypto | None = None  # our SDES key in the last SDP we gave (RFC 4568)

    async def open(self, codecs: list[sdp.Codec], family: str | None = None) -> tuple[str, int]:
        """Bind the RTP/RTCP ports in address ``family`` ("IP4", "IP6"; None: the default one); the
        (address, port) to write into the SDP. SdpUnacceptable (488, warn-code 301) when the gateway's
        RTP does not serve ``family``."""
        rtp = self._settings.rtp_address(family)
        config = RtpEndpointConfig(
            payload_types=frozenset(c.payload_type for c in codecs),
            dtmf_payload_types=frozenset({choice.SIP_EVENT.payload_type}),
            host=rtp.bind_host,
            relatch_after=RELATCH_PACKETS,
            inactivity_timeout=self._settings.inactivity_timeout,
        )
        endpoint = RtpEndpoint(
            self._settings.allocator,
            config,
            on_rtp=self._on_rtp,
            on_inactive=self._on_inactive,
            call_id=self._settings.call_id,
        )
        self.endpoint = endpoint
        await endpoint.open()
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
        self.negotiated = negotiated
        return negotiated

    def offer_crypto(self) -> sdp.Crypto | None:
        """The a=crypto for an offer of ours: the key already in use, else a new one, when our offers
        carry SDES (BridgeSettings.offer_sdes)."""
        if self.local_crypto is None and self._settings.offer_sdes:
            self.local_crypto = sdp.Crypto.new()
        return self.local_crypto

    def keys_from_answer(self, section: sdp.MediaDescription) -> None:
        """The SIP side answered an offer of ours: SRTP when it answered our a=crypto (same tag and suite)
        with its own key, else plain RTP, which media.sip_srtp: required refuses."""
        assert self.endpoint is not None
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
        a=crypto is answered with SRTP and a key of ours (RFC 4568), unless media.sip_srtp is off."""
        assert self.endpoint is not None
        _, port = self.endpoint.local_rtp_address
        theirs: sdp.Crypto | None = None
        if self._settings.sip_srtp != "off":
            index = sdp.check_audio_offer(offer, self._settings.sip_codecs, srtp=self._settings.sip_srtp)
            theirs = next(iter(offer.media[index].cryptos), None)
        ours = sdp.Crypto.new(theirs.tag, theirs.suite) if theirs is not None else None
        answer = sdp.answer(
            offer,
            codecs=[f"{codec.name}/{codec.clock_rate}"],
            transport=sdp.PlainTransport(self.sdp_address, port, crypto=ours),
            preference=sdp.Preference.ANSWERER,
            telephone_event=self._settings.telephone_event,
            direction=direction,
        )
        index = next(i for i, m in enumerate(answer.media) if not m.rejected)
        self.apply(answer.media[index], offer, index, answer.direction_for(index))
        self.local_crypto = ours
        self.endpoint.set_srtp(ours, theirs)
        return answer

    def send(self, payload_type: int, payload: bytes, timestamp: int, marker: bool) -> None:
        if self.endpoint is not None:
            self.endpoint.send_rtp(payload_type, payload, timestamp, marker=marker)

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
