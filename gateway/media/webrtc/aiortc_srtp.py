"""The web leg's audio never goes out twice under one SRTP index: aiortc 1.16's ``RTCDtlsTransport``.

An SRTP sender must not protect two different packets with the same index (ROC || SEQ) under one key
(RFC 3711 §9.1): with AES-CM both packets share a keystream, and an eavesdropper who has both ciphertexts
has the XOR of the two payloads; with AES-GCM (RFC 7714 §9.1, what browsers negotiate) the reused nonce
also gives away the authentication key, and with it forged packets to the browser. aiortc's
``_setup_srtp`` makes its transmit session with libsrtp's ``allow_repeat_tx`` on (as libwebrtc does, so
that a video packet a NACK asks for again can go out again, the very same bytes), which turns libsrtp's
check off. The gateway numbers the audio it forwards from what the other leg sent
(gateway/media/rtp/seqmap.py), so a duplicate of a phone's packet with another payload (a spoofed one, or
a PBX's bug), a new source's first packets arriving out of order, or a late packet after the sender's own
packets took the numbers would otherwise go out under an index already used.

``refuse_repeats(dtls, ssrc)``, before the handshake (``attach_direct_sender``, for the audio sender):
when the handshake sets SRTP up, ``ssrc`` gets a stream of its own in the transmit session, made from the
same key and profile with ``allow_repeat_tx`` off, before anything is protected (aiortc's ``Policy`` is
swapped while its synchronous ``_setup_srtp`` runs, to read them: nothing else runs on the event loop
meanwhile; the key is not kept). A stream added later would start its SRTCP index again under the same
key. libsrtp then refuses (``pylibsrtp.Error``, "replay check failed") a packet whose index it protected
already, and the senders drop it (``DirectSender.send``, the fast lane's engine, which runs the same
session). What is lost is an identical copy, which the browser's own replay check drops anyway. Video
keeps aiortc's stream (a phone's retransmission on the browser's NACK, RFC 4585, is the same packet
again). ``guarded(dtls, ssrc)`` tells whether it was done: the audio sender refuses to start on a
transport where it was not (BUNDLE put it on another one).

``tests/media/webrtc/test_aiortc_srtp.py`` fails if aiortc changes what this relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import aiortc.rtcdtlstransport
import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport

from gateway.media.webrtc.aiortc_hooks import HookError

__all__ = ["AIORTC_DTLS", "guarded", "refuse_repeats"]

_SSRCS = "gateway_no_repeat_ssrcs"  # on our _setup_srtp: the SSRCs it gives a stream without repeats
_GUARDED = "gateway_no_repeat"  # on the transport, once set up: those SSRCs
# aiortc's DTLS module, whose ``Policy`` (pylibsrtp's, imported by name) its _setup_srtp reads
AIORTC_DTLS: dict[str, Any] = vars(aiortc.rtcdtlstransport)
WINDOW = 1024  # aiortc's (and libwebrtc's) replay window: a late packet within it still goes


class _Recording(pylibsrtp.Policy):
    """aiortc's ``Policy`` while ``_setup_srtp`` runs: each transmit policy's key and profile noted."""

    made: ClassVar[list[tuple[bytes, int]]] = []

    def __init__(
        self,
        key: bytes | None = None,
        ssrc_type: int = pylibsrtp.Policy.SSRC_UNDEFINED,
        ssrc_value: int = 0,
        srtp_profile: int = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    ) -> None:
        super().__init__(key, ssrc_type, ssrc_value, srtp_profile)
        if ssrc_type == pylibsrtp.Policy.SSRC_ANY_OUTBOUND and key is not None:
            _Recording.made.append((key, srtp_profile))


def refuse_repeats(dtls: RTCDtlsTransport, ssrc: int) -> None:
    """When ``dtls``'s handshake sets SRTP up, give ``ssrc`` a transmit stream that refuses an index it
    used (module note). Call before the handshake; again for another SSRC of the same transport adds it."""
    original: Callable[[], None] | None = getattr(dtls, "_setup_srtp", None)
    ssrcs: set[int] | None = getattr(original, _SSRCS, None)
    if ssrcs is not None:
        ssrcs.add(ssrc)
        return
    if not callable(original) or AIORTC_DTLS.get("Policy") is not pylibsrtp.Policy:
        raise HookError("aiortc's RTCDtlsTransport no longer makes its sessions in _setup_srtp with Policy")
    chosen = {ssrc}

    def setup_srtp() -> None:
        _Recording.made = []
        AIORTC_DTLS["Policy"] = _Recording
        try:
            original()
        finally:
            AIORTC_DTLS["Policy"] = pylibsrtp.Policy
        made, _Recording.made = _Recording.made, []
        if not made:  # aiortc failed the transport itself (no SRTP profile agreed): nothing is protected
            return
        if len(made) != 1 or not isinstance(dtls._tx_srtp, pylibsrtp.Session):
            raise HookError(f"aiortc's _setup_srtp made {len(made)} transmit policies, not one session")
        key, profile = made[0]
        for each in sorted(chosen):
            policy = pylibsrtp.Policy(
                key=key, ssrc_type=pylibsrtp.Policy.SSRC_SPECIFIC, ssrc_value=each, srtp_profile=profile
            )
            policy.allow_repeat_tx = False
            policy.window_size = WINDOW
            dtls._tx_srtp.add_stream(policy)
        setattr(dtls, _GUARDED, frozenset(chosen))

    setattr(setup_srtp, _SSRCS, chosen)
    setattr(dtls, "_setup_srtp", setup_srtp)  # noqa: B010  # (an instance's method, for this transport only)


def guarded(dtls: RTCDtlsTransport, ssrc: int) -> bool:
    """Whether ``dtls`` set SRTP up with ``ssrc``'s own stream refusing repeats (``refuse_repeats``)."""
    return ssrc in getattr(dtls, _GUARDED, ())
