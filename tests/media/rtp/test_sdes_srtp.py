"""SdesSrtp (RFC 4568 keys, RFC 3711 sessions): never two packets under one index (§9.1), the same packet
again where asked (video), and a transmit session that goes on when only the peer re-keys."""

from __future__ import annotations

import os
import struct

import pylibsrtp
import pytest

import sdp
from gateway.media.rtp.srtp import SdesSrtp, SrtpError

SUITE = "AES_CM_128_HMAC_SHA1_80"


def crypto() -> sdp.Crypto:
    return sdp.Crypto(1, SUITE, os.urandom(30))


def rtp(sequence: int, payload: bytes = b"\x55" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, sequence, 160 * sequence, 0x1234) + payload


def receiver(key: sdp.Crypto) -> pylibsrtp.Session:
    """The peer's side: it unprotects what we protect with ``key``."""
    policy = pylibsrtp.Policy(
        key=key.key,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    return pylibsrtp.Session(policy)


def test_an_index_used_already_is_refused_and_video_may_send_the_same_packet_again() -> None:
    audio = SdesSrtp(crypto(), crypto())
    first = audio.protect(rtp(10, b"A" * 160))
    audio.protect(rtp(11))
    with pytest.raises(SrtpError, match="replay"):
        audio.protect(rtp(10, b"B" * 160))
    with pytest.raises(SrtpError, match="replay"):  # even the same bytes: the peer would drop them anyway
        audio.protect(rtp(10, b"A" * 160))
    audio.protect(rtp(9))  # late, never sent: it goes
    video = SdesSrtp(audio.ours, audio.theirs, repeats=True)
    assert video.protect(rtp(10, b"A" * 160)) == first  # the same key and index: the same bytes
    assert video.protect(rtp(10, b"A" * 160)) == first  # a retransmission (RFC 4585 NACK)


def test_the_transmit_session_goes_on_when_only_the_peer_re_keys() -> None:
    """After a rollover (sequence 65535 -> 0) a new session under our unchanged key would count from
    rollover 0 again: packet 1 encrypted again under index 1, used before the wrap."""
    ours = crypto()
    leg = SdesSrtp(ours, crypto())
    peer = receiver(ours)
    for sequence in (65534, 65535, 0):
        assert peer.unprotect(leg.protect(rtp(sequence))) == rtp(sequence)
    rekeyed = SdesSrtp(ours, crypto(), continuing=leg)  # the phone's re-INVITE: its key only
    assert rekeyed.sessions[1] is leg.sessions[1] and rekeyed.sessions[0] is not leg.sessions[0]
    assert peer.unprotect(rekeyed.protect(rtp(1))) == rtp(1)  # rollover 1 goes on
    fresh = SdesSrtp(ours, crypto())  # what it was before: rollover 0 again
    with pytest.raises(pylibsrtp.Error):
        peer.unprotect(fresh.protect(rtp(2)))
    ours_too = SdesSrtp(crypto(), crypto(), continuing=leg)  # our key changed: a new session
    assert ours_too.sessions[1] is not leg.sessions[1]
    assert SdesSrtp(ours, crypto(), repeats=True, continuing=leg).sessions[1] is not leg.sessions[1]
