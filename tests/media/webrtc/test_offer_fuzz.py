"""Fuzz: no browser offer passes the check made before dialling and then fails in the media path.

A fixed seed of mutated real offers (offer_fuzz.py) goes through `check_web_offer` (what the gateway
checks before it dials, issue 32) and, when accepted, through what the web leg does after the SIP side
answered (aiortc's setRemoteDescription and createAnswer). Before issue 32 the check was our parse and
the bridge's first look (`before_dial_legacy`): about one accepted mutant in six then failed in aiortc,
some with a traceback; the test shows the probe still finds those, and that the check lets none through.
Every refusal is the sdp package's error (400/488), never another exception.
"""

from __future__ import annotations

import sdp
from gateway.media.webrtc.offer_check import check_web_offer
from tests.media.webrtc.offer_fuzz import WEB_CODECS, after_dial, before_dial_legacy, mutants
from tests.sdp.samples import text

SEED, COUNT = 32, 400


async def _fails_after_dial(offer: str) -> bool:
    try:
        await after_dial(offer)
    except Exception:
        return True
    return False


async def test_no_offer_passes_the_check_and_fails_after_dialling() -> None:
    legacy_escapes, escapes, refused = 0, [], 0
    for offer in mutants(SEED, COUNT):
        try:
            before_dial_legacy(offer)
        except sdp.SdpError:
            pass
        else:
            legacy_escapes += await _fails_after_dial(offer)
        try:
            await check_web_offer(offer, WEB_CODECS)
        except sdp.SdpError as exc:  # anything else fails the test: a traceback for an attacker's input
            refused += 1
            assert str(exc)
            continue
        if await _fails_after_dial(offer):
            escapes.append(offer)
    assert legacy_escapes >= 10, legacy_escapes  # the probe finds what the old check let through
    assert refused < COUNT
    assert not escapes, escapes[:3]


async def test_real_offers_pass() -> None:
    for name in ("chromium-offer-audio", "chromium-offer-audio-video-datachannel", "aiortc-offer-audio"):
        await check_web_offer(text(name), WEB_CODECS)
        await after_dial(text(name))
