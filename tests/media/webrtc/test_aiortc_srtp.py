"""aiortc_srtp: the web leg's audio stream refuses an SRTP index it protected already (RFC 3711 §9.1),
video keeps aiortc's stream (a retransmission is the same packet again), and the hook fails loudly if
aiortc stops making its sessions the way it relies on. What reaches a browser is checked in
tests/media/fastlane/test_passthrough_sequence.py (both paths, on the wire)."""

from __future__ import annotations

import os
import struct

import pylibsrtp
import pytest
from aiortc import RTCPeerConnection

from gateway.media.webrtc.aiortc_hooks import HookError
from gateway.media.webrtc.aiortc_srtp import AIORTC_DTLS, guarded, refuse_repeats

AUDIO, VIDEO = 0x1111, 0x2222


def rtp(sequence: int, payload: bytes, ssrc: int = AUDIO) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, sequence, 160 * sequence, ssrc) + payload


def aiortcs_setup_srtp(dtls: object, key: bytes) -> None:
    """What aiortc 1.16's ``_setup_srtp`` does with the keys it exported (both policies from its module's
    ``Policy``, repeats allowed, a 1 024-packet window), without a handshake."""

    def setup() -> None:
        made = []
        for ssrc_type in (pylibsrtp.Policy.SSRC_ANY_INBOUND, pylibsrtp.Policy.SSRC_ANY_OUTBOUND):
            policy = AIORTC_DTLS["Policy"](
                key=key, ssrc_type=ssrc_type, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM
            )
            policy.allow_repeat_tx = True
            policy.window_size = 1024
            made.append(pylibsrtp.Session(policy))
        dtls._rx_srtp, dtls._tx_srtp = made  # type: ignore[attr-defined]

    dtls._setup_srtp = setup  # type: ignore[attr-defined]


async def test_the_audio_stream_refuses_an_index_it_used_and_video_keeps_repeats() -> None:
    pc = RTCPeerConnection()
    try:
        dtls = pc.addTransceiver("audio").sender.transport
        aiortcs_setup_srtp(dtls, os.urandom(44))
        refuse_repeats(dtls, AUDIO)
        hooked = dtls._setup_srtp
        refuse_repeats(dtls, AUDIO)  # once wrapped, whoever asks again
        assert dtls._setup_srtp is hooked and not guarded(dtls, AUDIO)  # no handshake yet
        dtls._setup_srtp()
        assert AIORTC_DTLS["Policy"] is pylibsrtp.Policy  # swapped for the call only
        assert guarded(dtls, AUDIO) and not guarded(dtls, VIDEO)
        session = dtls._tx_srtp
        session.protect(rtp(10, b"A" * 160))
        session.protect(rtp(11, b"C" * 160))
        with pytest.raises(pylibsrtp.Error, match="replay"):  # another payload under index 10
            session.protect(rtp(10, b"B" * 160))
        session.protect(rtp(9, b"L" * 160))  # a late packet whose number was never sent still goes
        video = session.protect(rtp(5, b"V" * 900, VIDEO))
        assert session.protect(rtp(5, b"V" * 900, VIDEO)) == video  # a retransmission: the same bytes
    finally:
        await pc.close()


async def test_an_aiortc_that_no_longer_uses_policy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pc = RTCPeerConnection()
    try:
        dtls = pc.addTransceiver("audio").sender.transport
        monkeypatch.setitem(AIORTC_DTLS, "Policy", object)
        with pytest.raises(HookError, match="_setup_srtp"):
            refuse_repeats(dtls, AUDIO)
    finally:
        await pc.close()


async def test_a_failed_setup_is_left_to_aiortc_and_two_transmit_policies_are_refused() -> None:
    """aiortc's own failure (no SRTP profile agreed: it fails the transport and makes no policy) is not
    turned into ours; a setup that no longer makes one transmit session is."""
    pc = RTCPeerConnection()
    try:
        dtls = pc.addTransceiver("audio").sender.transport
        dtls._setup_srtp = lambda: None  # type: ignore[method-assign]
        refuse_repeats(dtls, AUDIO)
        dtls._setup_srtp()
        assert not guarded(dtls, AUDIO)
        other = pc.addTransceiver("audio").sender.transport
        aiortcs_setup_srtp(other, os.urandom(44))
        twice = other._setup_srtp

        def setup_twice() -> None:
            twice()
            twice()

        other._setup_srtp = setup_twice  # type: ignore[method-assign]
        refuse_repeats(other, AUDIO)
        with pytest.raises(HookError, match="2 transmit policies"):
            other._setup_srtp()
        assert AIORTC_DTLS["Policy"] is pylibsrtp.Policy
    finally:
        await pc.close()


async def test_a_web_legs_audio_is_guarded_once_connected() -> None:
    """The real thing: a gateway web leg and a browser (aiortc) connect; the leg's audio SSRC has its
    own stream refusing repeats on the transport it is bound to."""
    from tests.media.bridge_harness import Call, allocator

    call = Call(allocator(36000, 37999), fast_lane=None)
    try:
        await call.browser_calls()
        await call.connected()
        sender = call.bridge._web._sender  # the DirectSender
        assert sender._dtls is not None and guarded(sender._dtls, sender.ssrc)
    finally:
        await call.close()
