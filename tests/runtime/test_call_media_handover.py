"""A call's media taken over by another instance (issue 34 item 3) as the runtime's `CallMedia` sees it:
the bridge hands its SIP leg over (tests/media/test_bridge_handover.py drives it with real peers); a
pass-through call hands over only its signaling's state (its media flows end to end and outlives the
instance: tests/runtime/test_passthrough.py), none before the call is set up. Driven without a network."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.media.bridge_settings import BridgeSettings
from gateway.media.bridge_state import BridgeError
from gateway.runtime.call_media import BridgedMedia, CallMedia
from gateway.runtime.passthrough import PassthroughError, PassthroughMedia
from tests.media.bridge_harness import allocator


def _ignore(content_type: str, body: str, headers: Sequence[tuple[str, str]]) -> None:
    pass


async def test_pass_through_media_hands_nothing_over_before_its_call_is_set_up() -> None:
    media: CallMedia = PassthroughMedia("c1", _ignore)
    assert media.handover() is None
    with pytest.raises(PassthroughError, match="handover cannot be read"):
        await media.resume_sip({"format": 1})


async def test_the_bridged_media_hands_over_once_the_sip_side_answered() -> None:
    media: CallMedia = BridgedMedia(BridgeSettings(allocator()), lambda event: None)
    try:
        with pytest.raises(BridgeError, match="handover\\(\\) in state idle"):
            media.handover()
    finally:
        await media.close()
