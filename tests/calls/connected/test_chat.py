"""Chat during a call (gateway/calls/connected/chat.py): the browser's text out as SIP MESSAGE in the dialog, the
SIP party's back on the data channel and to the carrying session."""

from __future__ import annotations

import pytest

from gateway.calls import (
    IllegalEvent,
    InvalidValue,
    MediaSendText,
    NotifyMessage,
    NotifyMessageResult,
    SipMessage,
    SipMessageReceived,
    SipMessageResult,
    WebDisconnected,
    WebMessage,
)
from gateway.calls.errors import WrongSession
from tests.calls import flows as f


def test_data_channel_text_goes_out_as_message_in_the_dialog() -> None:
    call = f.connected_out()
    assert call.handle(WebMessage("hello from the page")) == [SipMessage("c1", "hello from the page")]


def test_session_text_needs_the_carrying_session() -> None:
    call = f.connected_out()
    assert call.handle(WebMessage("hi", "s1")) == [SipMessage("c1", "hi")]
    with pytest.raises(WrongSession):
        call.handle(WebMessage("hi", "s9"))


def test_sip_party_text_reaches_the_channel_and_the_session() -> None:
    call = f.connected_in()
    assert call.handle(SipMessageReceived("hi there")) == [
        MediaSendText("c1", "hi there"),
        NotifyMessage(call.session_id or "", "c1", "hi there"),
    ]
    assert call.handle(SipMessageResult(405)) == [NotifyMessageResult(call.session_id or "", "c1", 405)]


def test_held_calls_chat_too_and_ringing_ones_do_not() -> None:
    assert f.holding_remote().handle(WebMessage("still there?")) == [SipMessage("c1", "still there?")]
    with pytest.raises(IllegalEvent):
        f.inviting().handle(WebMessage("too early"))


def test_after_the_browser_left_only_the_closing_call_sees_it() -> None:
    call = f.connected_out()
    f.run(call, WebDisconnected("s1"))
    assert call.handle(SipMessageReceived("anyone?")) == []


@pytest.mark.parametrize("body", ["", 5, "x" * 8193, "é" * 4097])
def test_chat_text_is_checked(body: object) -> None:
    with pytest.raises(InvalidValue, match="body"):
        WebMessage(body)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="body"):
        SipMessageReceived(body)  # type: ignore[arg-type]
