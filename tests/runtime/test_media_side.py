"""gateway.runtime.media_side: DTMF facts the runtime reports to the call instead of deciding on them
(whether a digit goes as SIP INFO is the call's decision, tests/calls/test_midcall.py). No network."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.states import CallDirection, CallState
from gateway.calls.view import CallView
from gateway.identity import WebUser
from gateway.identity.address import SipAddress
from gateway.media.events import DtmfReceived, Leg
from gateway.runtime.host import RuntimeHost
from gateway.runtime.media_side import MediaSide
from gateway.runtime.offers import HttpSession
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


class _Host:
    def __init__(self, session: object) -> None:
        self._session = session

    def session(self, session_id: str) -> object:
        return self._session


class _View:
    session_id = "s1"
    state = CallState.CONNECTED


async def test_a_far_ends_ice_restart_asks_a_page_and_not_an_http_client() -> None:
    """A pass-through call's SIP re-offer with new ICE credentials goes to a page (it answers `offer`);
    an HTTP API or WHIP client only ever offers, so its call answers at once with its description."""
    samples = Path(__file__).resolve().parent.parent / "data" / "sdp"
    chromium = (samples / "chromium-offer-audio.sdp").read_text()
    answer = (samples / "aiortc-answer-audio.sdp").read_text()
    restarted = re.sub(r"a=ice-ufrag:\S+", "a=ice-ufrag:peerU", answer)
    alice = WebUser("alice", "Alice", SipAddress.parse("sip:1001@pbx.example.org"))
    for session, expected in (
        (object(), ev.MediaWebReofferReady),
        (HttpSession(alice), ev.MediaSipAnswerReady),
    ):
        fed: list[ev.Event] = []
        side = MediaSide(
            "c1", CallDirection.OUTBOUND, cast(RuntimeHost, _Host(session)), cast(SipSide, None), fed.append,
            lambda: cast(CallView, _View()), _no_info,
        )  # fmt: skip
        media = side.bridge = PassthroughMedia("c1", _no_info)
        await media.offer_to_sip(chromium)
        await media.answer_from_sip(answer)
        await side.execute(cmd.MediaSipUpdate("c1", restarted))
        assert [type(e) for e in fed] == [expected], (session, fed)


async def test_an_early_dialogs_update_asks_nobody() -> None:
    """An UPDATE before the answer that changes the far end's ICE (RFC 3311): answered at once, the page
    not asked (its call could not take an offer while early: the UPDATE would never be answered)."""
    samples = Path(__file__).resolve().parent.parent / "data" / "sdp"
    chromium = (samples / "chromium-offer-audio.sdp").read_text()
    answer = (samples / "aiortc-answer-audio.sdp").read_text()
    view = _View()
    view.state = CallState.EARLY
    fed: list[ev.Event] = []
    side = MediaSide(
        "c1", CallDirection.OUTBOUND, cast(RuntimeHost, _Host(object())), cast(SipSide, None), fed.append,
        lambda: cast(CallView, view), _no_info,
    )  # fmt: skip
    media = side.bridge = PassthroughMedia("c1", _no_info)
    await media.offer_to_sip(chromium)
    await media.answer_from_sip(answer)
    await side.execute(cmd.MediaSipUpdate("c1", re.sub(r"a=ice-ufrag:\S+", "a=ice-ufrag:peerU", answer)))
    assert [type(e) for e in fed] == [ev.MediaSipAnswerReady] and media.handover() is not None
