"""gateway.ops.wiring: the live media figures /metrics reads come from each call's `CallMedia`, whichever
kind it holds; a pass-through call (the gateway carries none of its media) adds nothing, and neither does
a call with no media yet. Driven without a network."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from gateway.config.loader import load_config_text
from gateway.media.bridge_settings import BridgeSettings
from gateway.ops.wiring import Operations
from gateway.runtime.call_media import BridgedMedia, CallMedia
from gateway.runtime.passthrough import PassthroughMedia
from tests.media.bridge_harness import allocator

if TYPE_CHECKING:
    from gateway.app import Gateway


def _ignore(content_type: str, body: str, headers: Sequence[tuple[str, str]]) -> None:
    pass


def operations(*media: CallMedia | None) -> Operations:
    """`Operations` over a gateway whose driver holds one live call per `media`."""
    driver = SimpleNamespace(
        runtimes=[SimpleNamespace(bridge=m) for m in media],
        sip_inbound=SimpleNamespace(pbx_changed=lambda s: None),
    )
    gateway = SimpleNamespace(config=load_config_text("", env={}), driver=driver, cluster=None)
    return Operations(cast("Gateway", gateway))


async def test_only_media_the_gateway_carries_counts_in_the_live_figures() -> None:
    bridged = BridgedMedia(BridgeSettings(allocator()), lambda event: None)
    try:
        ops = operations(PassthroughMedia("c1", _ignore), bridged, None)

        assert list(ops.live_media()) == [bridged.quality()]
        stats = bridged.stats()
        assert ops.live_paths() == (
            stats.fast_lane_packets,
            stats.web_to_sip.forwarded + stats.sip_to_web.forwarded,
            stats.transcoding,
        )
    finally:
        await bridged.close()


def test_pass_through_calls_alone_add_nothing() -> None:
    ops = operations(PassthroughMedia("c1", _ignore), PassthroughMedia("c2", _ignore))

    assert list(ops.live_media()) == []
    assert ops.live_paths() == (0, 0, 0)
