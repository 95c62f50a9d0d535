"""gateway.runtime.media_side: DTMF facts the runtime reports to the call instead of deciding on them
(whether a digit goes as SIP INFO is the call's decision, tests/calls/test_midcall.py). No network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.states import CallDirection
from gateway.media.events import DtmfReceived, Leg
from gateway.runtime.host import RuntimeHost
from gateway.runtime.media_side import MediaSide
from gateway.runtime.passthrough import PassthroughMedia
from gateway.runtime.sip_side import SipSide


def _no_info(content_type: str, body: str, headers: Sequence[tuple[str, str]]) -> None:
    raise AssertionError(f"the runtime sent INFO {content_type} itself")


def _side(fed: list[ev.Event]) -> MediaSide:
    # neither the host nor the SIP side is reached on these paths: the call decides what to send
    return MediaSide(
        "c1",
        CallDirection.OUTBOUND,
        cast(RuntimeHost, None),
        cast(SipSide, None),
        fed.append,
        lambda: None,
        _no_info,
    )


async def test_a_digit_the_media_cannot_send_is_reported_to_the_call() -> None:
    fed: list[ev.Event] = []
    side = _side(fed)
    side.bridge = PassthroughMedia("c1", _no_info)  # no RFC 4733 on a pass-through call: DtmfError
    await side.execute(cmd.MediaSendDtmf("c1", "5", 100))
    assert fed == [ev.MediaDtmfUnsent("5", 100)]


def test_a_digit_in_the_browsers_media_is_reported_to_the_call() -> None:
    fed: list[ev.Event] = []
    side = _side(fed)
    side.on_event(DtmfReceived(Leg.WEB, "3", 90))
    side.on_event(DtmfReceived(Leg.WEB, "!", 0))
    assert fed == [ev.MediaWebDtmf("3", 90), ev.MediaWebDtmf("!", 1)]
