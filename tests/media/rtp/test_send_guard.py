"""SendGuard (gateway/media/rtp/send_guard.py): under an SRTP index sent already only the same packet goes
again; a new index goes; one older than the window does not; the index follows the numbers across a
wrap as libsrtp's does. On the wire: tests/media/rtp/test_rtp_endpoint.py (the SIP side's video),
tests/media/video/test_video_srtp_index.py (the browser's), tests/media/fastlane/test_fastlane_arm.py
(the engine, which keeps the same state)."""

from __future__ import annotations

import os
import random
import struct
from typing import Any

import pylibsrtp
import pytest

from gateway.media.rtp.send_guard import SLOTS, SendGuard, estimate


def protected(seq: int, tag: bytes) -> bytes:
    """A protected packet as far as the guard reads one: its number, and its tag at the end."""
    return struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, 0, 0x1234) + b"payload" + tag.ljust(8, b".")


def test_only_the_same_packet_goes_again_under_an_index() -> None:
    guard = SendGuard()
    assert guard.admit(protected(100, b"A")) and guard.admit(protected(101, b"B"))
    assert guard.admit(protected(100, b"A"))  # a retransmission: the very same bytes
    assert not guard.admit(protected(100, b"X"))  # another packet under index 100
    assert guard.admit(protected(99, b"L"))  # late, its number never sent: it goes
    assert not guard.admit(protected(99, b"M")) and guard.admit(protected(99, b"L"))
    assert guard.refused == 2


def test_the_window_and_a_wrap() -> None:
    guard = SendGuard()
    assert guard.admit(protected(0xFFF0, b"a"))
    for seq in range(0xFFF1, 0x10000 + 40):  # across the wrap: the index goes on (ROC 1)
        assert guard.admit(protected(seq, bytes([seq & 0xFF])))
    assert not guard.admit(protected(0xFFF5, b"z"))  # before the wrap, sent: refused
    assert guard.admit(protected(0xFFF5, bytes([0xF5])))
    assert guard.admit(protected(0x10000 + 40 + SLOTS, b"far"))  # a jump ahead
    assert not guard.admit(protected(0x10000 + 40, b"old"))  # now older than the window
    assert not guard.admit(protected(0, b"short")[:15])  # too short to be a protected packet


def test_a_jump_ahead_leaves_no_stale_slot() -> None:
    """The slot of a number a jump skipped holds an older index: that number was never sent and goes."""
    guard = SendGuard()
    assert guard.admit(protected(10, b"x"))
    assert guard.admit(protected(10 + SLOTS - 1, b"y"))
    assert guard.admit(protected(10 + SLOTS, b"z"))  # the slot of index 10, not sent under SLOTS + 10
    assert guard.admit(protected(10 + SLOTS - 2, b"w"))  # skipped by the jump, never sent: it goes
    assert not guard.admit(protected(10 + SLOTS, b"q"))


def libsrtp_sender(profile: int, key_length: int, key: bytes | None = None) -> tuple[Any, Any]:
    """A transmit session as aiortc makes the web leg's (repeats, a 1 024-packet window) and a receiver."""
    key = key or os.urandom(key_length)
    sessions = []
    for kind, repeats in (
        (pylibsrtp.Policy.SSRC_ANY_OUTBOUND, True),
        (pylibsrtp.Policy.SSRC_ANY_INBOUND, False),
    ):
        policy = pylibsrtp.Policy(key=key, ssrc_type=kind, srtp_profile=profile)
        policy.allow_repeat_tx = repeats
        policy.window_size = 1024
        sessions.append(pylibsrtp.Session(policy))
    return sessions[0], sessions[1]


def rtp(seq: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, 1234, 0xDEADBEEF) + payload


@pytest.mark.parametrize(
    ("profile", "key_length"),
    [
        (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
        (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
    ],
    ids=["aes-cm", "aes-gcm"],
)
def test_against_libsrtp_no_keystream_twice_and_the_receiver_keeps_up(profile: int, key_length: int) -> None:
    """Real libsrtp: numbers in order, late, repeated with the same or another payload, jumps of every
    size around the window and half the number space. What the guard lets go never shares a keystream with
    another payload (CTR mode, GCM's too: ciphertext XOR plaintext is the keystream), a byte-identical
    repeat always goes, and the receiver decrypts every first copy (its rollover counter stays ours: the
    guard refuses only what libsrtp did not count as new)."""
    rng = random.Random(profile)
    tx, rx = libsrtp_sender(profile, key_length)
    guard = SendGuard()
    keystreams: dict[bytes, bytes] = {}
    sent: list[tuple[int, bytes]] = []
    delivered: set[bytes] = set()
    last, refused_repeats = rng.randrange(0x10000), 0
    for _ in range(6000):
        draw = rng.random()
        if draw < 0.15 and sent:
            seq, payload = rng.choice(sent[-1500:])
            if rng.random() < 0.5:
                payload = rng.randbytes(24)
        else:
            if draw < 0.6:
                step = 1
            elif draw < 0.8:
                step = rng.choice([-1, 1]) * rng.choice(
                    [127, 128, 129, 1023, 1024, 1025, 32767, 32768, 32769]
                )
            else:
                step = rng.randrange(-200, 200)
            seq, payload = (last + step) & 0xFFFF, rng.randbytes(24)
        plain = rtp(seq, payload)
        try:
            cipher = tx.protect(plain)
        except pylibsrtp.Error:  # older than libsrtp's window: never protected
            continue
        if not guard.admit(cipher):
            refused_repeats += cipher in delivered
            continue
        keystream = bytes(a ^ b for a, b in zip(cipher[12:36], plain[12:36], strict=True))
        assert keystreams.setdefault(keystream, payload) == payload, "two payloads under one keystream"
        if cipher not in delivered:
            assert rx.unprotect(cipher) == plain  # in step: a late first copy within the window included
            delivered.add(cipher)
        sent.append((seq, payload))
        if (seq - last) & 0xFFFF < 0x8000:
            last = seq
    assert refused_repeats == 0 and len(delivered) > 3000 and guard.refused > 20


def test_a_number_from_before_0_early_on_is_a_jump_ahead_as_for_libsrtp() -> None:
    """libsrtp takes the index of a low stream's late number from before 0 (65 436 after 100) for a jump
    ahead; the guard must count it as new too, or libsrtp's rollover counter moves on without the
    receiver's and every later packet fails authentication there."""
    tx, rx = libsrtp_sender(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30)
    guard = SendGuard()
    for seq in range(0, 101):
        cipher = tx.protect(rtp(seq, b"x" * 20))
        assert guard.admit(cipher) and rx.unprotect(cipher)
    assert estimate(100, 65436) == 65336
    odd = tx.protect(rtp(65436, b"y" * 20))
    assert guard.admit(odd) and rx.unprotect(odd)
    after = tx.protect(rtp(101, b"x" * 20))
    assert guard.admit(after) and rx.unprotect(after) == rtp(101, b"x" * 20)
