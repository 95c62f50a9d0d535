"""gateway.runtime.call_media: both kinds of a call's media are the runtime's `CallMedia` (mypy checks
the assignments below: a Protocol is structural), and each answers the runtime's questions itself, so
the runtime never asks which kind it holds. Driven without a network."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest

import sdp
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.runtime.call_media import BridgedMedia, CallMedia
from gateway.runtime.passthrough import INVITE_HEADERS, PassthroughError, PassthroughMedia
from tests.conftest import REPO
from tests.media.bridge_harness import allocator

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "sdp"
CHROMIUM = (SAMPLES / "chromium-offer-audio.sdp").read_text()


def _ignore(content_type: str, body: str, headers: Sequence[tuple[str, str]]) -> None:
    pass


def bridged() -> BridgedMedia:
    return BridgedMedia(BridgeSettings(allocator()), lambda event: None)


async def test_the_bridge_is_call_media_of_the_terminating_kind() -> None:
    media: CallMedia = bridged()
    assert isinstance(media, MediaBridge)  # everything else is the bridge's own
    assert not media.passes_through and media.invite_headers == ()
    assert media.sip_trickle("a=end-of-candidates\r\n") is None  # the machine hears such an INFO
    await media.close()


async def test_pass_through_media_is_call_media_that_carries_nothing() -> None:
    media: CallMedia = PassthroughMedia("c1", _ignore)
    assert media.passes_through and media.invite_headers == INVITE_HEADERS
    assert media.video is None and media.sip_audio is None
    assert media.stats() is None and media.quality() is None
    assert not media.send_text("hello")


async def test_what_needs_a_gateway_leg_is_refused_with_the_reason() -> None:
    media: CallMedia = PassthroughMedia("c1", _ignore)
    with pytest.raises(PassthroughError) as pickup:
        await media.pickup_from_sip(CHROMIUM)
    assert pickup.value.sip_status == 488  # the replacing INVITE hears 488 (MediaFailed's status)
    with pytest.raises(PassthroughError, match="cannot change its web leg"):
        await media.renew_web(CHROMIUM)
    with pytest.raises(PassthroughError):
        media.take_web_offer(CHROMIUM)
    with pytest.raises(PassthroughError):
        media.add_tap("p1", lambda packet: None, lambda: None)
    ice = sdp.parse(CHROMIUM).ice_for(0)
    assert ice is not None
    with pytest.raises(PassthroughError):
        media.restart_web_ice(ice)


async def test_what_only_concerns_a_gateway_leg_is_a_no_op() -> None:
    media: CallMedia = PassthroughMedia("c1", _ignore)
    assert await media.reoffer_web_for_sip(CHROMIUM) is None  # answered at once: update_from_sip
    assert await media.reanswer_from_web(CHROMIUM) is None
    await media.cancel_web_reoffer()
    media.cancel_sip_reoffer()  # no browser offer at the SIP side: nothing to put back
    await media.detach_web()  # the browser went: the media (if it has it still) flows end to end
    media.remove_tap("p1")


async def test_the_sip_sides_trickle_info_is_the_pass_through_medias() -> None:
    media = PassthroughMedia("c1", _ignore)
    await media.offer_to_web(CHROMIUM)
    fragment = sdp.encode_sdpfrag(
        sdp.TrickleFragment(None, (sdp.TrickleMedia("0", (), True),))
    )  # end of candidates for mid 0
    candidates = media.sip_trickle(fragment)
    assert candidates is not None and [c.candidate for c in candidates] == [None]
    with pytest.raises(sdp.SdpError):
        media.sip_trickle("not a fragment\x00")


KINDS = {"MediaBridge", "BridgedMedia", "PassthroughMedia"}


def kind_checks(source: str) -> list[int]:
    """The lines of `source` calling `isinstance(x, <a kind of media>)`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
        ):
            continue
        named = {
            n.id if isinstance(n, ast.Name) else n.attr
            for n in ast.walk(node)
            if isinstance(n, ast.Name | ast.Attribute)
        }
        if named & KINDS:
            lines.append(node.lineno)
    return lines


def test_the_kind_check_finder_sees_a_check() -> None:
    assert kind_checks("if isinstance(runtime.bridge, media.MediaBridge):\n    pass\n") == [1]
    assert kind_checks("ok = isinstance(x, PassthroughMedia | int)\n") == [1]
    assert kind_checks("stats = bridge.stats() if isinstance(bridge, object) else None\n") == []


def test_no_module_outside_the_media_package_asks_which_kind_of_media_it_holds() -> None:
    """What differs between the kinds is a `CallMedia` method's answer, never an `isinstance` check."""
    media = REPO / "gateway" / "media"
    checks = [
        f"{path.relative_to(REPO).as_posix()}:{line}"
        for path in sorted((REPO / "gateway").rglob("*.py"))
        if not path.is_relative_to(media)
        for line in kind_checks(path.read_text(encoding="utf-8"))
    ]
    assert not checks, f"isinstance checks on the kind of a call's media (ask CallMedia instead): {checks}"
