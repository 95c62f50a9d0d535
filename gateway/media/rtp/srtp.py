"""SRTP on the SIP leg (RFC 3711): ``SipSrtp``, what the endpoint and the fast lane need of it, and
``SdesSrtp``, its keys from SDES (RFC 4568): one session each way, libsrtp through pylibsrtp (its public
API). The keys come from the a=crypto lines of the offer and the answer: ours protects what we send, the
peer's authenticates and decrypts what it sends (RTP and RTCP alike)."""

from __future__ import annotations

from typing import Final, Protocol

import pylibsrtp

import sdp

SrtpError = pylibsrtp.Error

_PROFILES: Final = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


def _session(crypto: sdp.Crypto, ssrc_type: int, repeats: bool = False) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=crypto.key, ssrc_type=ssrc_type, srtp_profile=_PROFILES[crypto.suite])
    policy.allow_repeat_tx = repeats
    return pylibsrtp.Session(policy=policy)


class SipSrtp(Protocol):
    """Both directions of SRTP on the SIP leg, however keyed (SDES here; DTLS-SRTP the same way).

    ``RtpEndpoint`` protects and unprotects through the four methods (errors raise ``SrtpError``);
    nothing is sent or accepted while ``ready`` is False (a DTLS handshake not yet done, RFC 5764 §4.1).
    ``separate_rtcp``: RTCP has keys of its own (DTLS-SRTP without rtcp-mux: a second association). The
    native fast lane runs the libsrtp sessions themselves in its thread: ``sessions`` gives them as
    (rx: unprotects what the peer sends, tx: protects what we send), or None while there are no keys yet
    (the call stays on the Python path until there are). While linked the endpoint goes through the
    engine's stand-in instead (``fastlane.engine.SerializedSrtp``): the sessions are not thread-safe."""

    @property
    def sessions(self) -> tuple[pylibsrtp.Session, pylibsrtp.Session] | None: ...

    @property
    def ready(self) -> bool: ...

    @property
    def separate_rtcp(self) -> bool: ...

    def protect(self, packet: bytes) -> bytes: ...
    def protect_rtcp(self, packet: bytes) -> bytes: ...
    def unprotect(self, packet: bytes) -> bytes: ...
    def unprotect_rtcp(self, packet: bytes) -> bytes: ...


class SdesSrtp:
    """Both directions of one SRTP leg. Two packets are never protected under one index (RFC 3711 §9.1:
    a shared keystream gives away the XOR of their payloads): a forwarded packet that maps onto a number
    sent already is refused (``SrtpError``) and dropped by the sender. ``repeats``: the same packet may go
    again under its index (video, whose peer asks for lost packets again: RFC 4585 generic NACK)."""

    def __init__(
        self,
        ours: sdp.Crypto,
        theirs: sdp.Crypto,
        *,
        repeats: bool = False,
        continuing: SdesSrtp | None = None,
    ) -> None:
        """``continuing``: the leg's SRTP until now. When our key stays (the peer alone re-keyed), its
        transmit session goes on: a new one would count the rollover counter and the SRTCP index from 0
        again under the same key, and encrypt again under indices it used."""
        self.ours, self.theirs, self._repeats = ours, theirs, repeats
        kept: pylibsrtp.Session | None = None
        if continuing is not None and continuing._same_tx(ours, repeats):
            kept = continuing.sessions[1]
        self._tx = kept if kept is not None else _session(ours, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, repeats)
        self._rx = _session(theirs, pylibsrtp.Policy.SSRC_ANY_INBOUND)

    def __repr__(self) -> str:
        return f"<SdesSrtp {self.ours.suite}>"

    @property
    def sessions(self) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
        """(rx, tx) for the fast lane (``SipSrtp``)."""
        return self._rx, self._tx

    @property
    def ready(self) -> bool:
        """The keys are in the SDP: always."""
        return True

    @property
    def separate_rtcp(self) -> bool:
        return False

    def _same_tx(self, ours: sdp.Crypto, repeats: bool) -> bool:
        return (self.ours.suite, self.ours.key, self._repeats) == (ours.suite, ours.key, repeats)

    def same_keys(self, ours: sdp.Crypto, theirs: sdp.Crypto) -> bool:
        return ours == self.ours and theirs == self.theirs

    def protect(self, packet: bytes) -> bytes:
        return bytes(self._tx.protect(packet))

    def protect_rtcp(self, packet: bytes) -> bytes:
        return bytes(self._tx.protect_rtcp(packet))

    def unprotect(self, packet: bytes) -> bytes:
        return bytes(self._rx.unprotect(packet))

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        return bytes(self._rx.unprotect_rtcp(packet))
