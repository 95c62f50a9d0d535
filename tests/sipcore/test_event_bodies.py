"""dialog-info+xml (RFC 4235) and simple-message-summary (RFC 3842) bodies: the lamps and counts they
give, and the 400 (BadRequest) that any other input gets, never another exception."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore.errors import BadRequest
from sipcore.event_bodies import (
    DIALOG_INFO,
    MESSAGE_SUMMARY,
    DialogInfo,
    MessageSummary,
    parse_body,
    parse_dialog_info,
    parse_message_summary,
)


def dialog_info(state: str | None, direction: str = "recipient", doc: str = "full") -> bytes:
    dialog = (
        f'<dialog id="d1" call-id="abc@pbx" local-tag="lt" remote-tag="rt" direction="{direction}">'
        f"<state>{state}</state><remote><identity>sip:1003@pbx</identity></remote></dialog>"
        if state
        else ""
    )
    return (
        '<?xml version="1.0"?>\n<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" '
        f'state="{doc}" entity="sip:1002@pbx.example.org">{dialog}</dialog-info>'
    ).encode()


@pytest.mark.parametrize(
    ("state", "direction", "lamp"),
    [
        (None, "recipient", "idle"),
        ("early", "recipient", "ringing"),
        ("proceeding", "recipient", "ringing"),
        ("early", "initiator", "busy"),
        ("confirmed", "recipient", "busy"),
        ("terminated", "recipient", "idle"),
    ],
)
def test_dialog_states_give_the_lamp(state: str | None, direction: str, lamp: str) -> None:
    info = parse_dialog_info(dialog_info(state, direction))
    assert info.lamp == lamp and info.version == 3 and info.full and info.entity == "sip:1002@pbx.example.org"


def test_the_ringing_dialog_names_the_call_a_pickup_replaces() -> None:
    ringing = parse_dialog_info(dialog_info("early")).ringing()
    assert ringing is not None
    assert (ringing.call_id, ringing.local_tag, ringing.remote_tag) == ("abc@pbx", "lt", "rt")


def test_the_busiest_dialog_wins() -> None:
    body = dialog_info("early").replace(
        b"</dialog-info>", b'<dialog id="d2"><state>confirmed</state></dialog></dialog-info>'
    )
    assert parse_dialog_info(body).lamp == "busy"


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        (b"<dialog-info", "not well-formed"),
        (b"<presence/>", "expected a <dialog-info>"),
        (b'<dialog-info version="x" state="full"/>', "version"),
        (b'<dialog-info version="1" state="odd"/>', "neither full nor partial"),
        (b'<dialog-info version="1" state="full"><dialog id="a"/></dialog-info>', "without id or <state>"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><dialog-info version="1" state="full"/>', "DOCTYPE"),
        (b"<a>" * 40000, "bytes is over"),
    ],
)
def test_malformed_dialog_info_is_a_bad_request_naming_the_fault(body: bytes, fault: str) -> None:
    with pytest.raises(BadRequest, match=fault):
        parse_dialog_info(body)


def test_message_summary_gives_the_counts() -> None:
    body = b"Messages-Waiting: yes\r\nMessage-Account: sip:1001@pbx\r\nVoice-Message: 2/8 (1/0)\r\n"
    assert parse_message_summary(body) == MessageSummary(True, "sip:1001@pbx", 2, 8, 1, 0)
    assert parse_message_summary(b"Messages-Waiting: no\r\n") == MessageSummary(False)


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        (b"Voice-Message: 2/8\r\n", "Messages-Waiting"),
        (b"Messages-Waiting: maybe\r\n", "Messages-Waiting"),
        (b"Messages-Waiting: yes\r\nVoice-Message: two\r\n", "Voice-Message"),
        (b"Messages-Waiting yes\r\n", "Name: value"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_message_summary_is_a_bad_request(body: bytes, fault: str) -> None:
    with pytest.raises(BadRequest, match=fault):
        parse_message_summary(body)


def test_parse_body_goes_by_content_type() -> None:
    assert isinstance(parse_body(DIALOG_INFO, dialog_info("early")), DialogInfo)
    assert isinstance(parse_body(f"{MESSAGE_SUMMARY};charset=utf-8", b"Messages-Waiting: no"), MessageSummary)
    assert parse_body(None, b"") is None
    with pytest.raises(BadRequest, match="text/plain"):
        parse_body("text/plain", b"hello")


@given(st.binary(max_size=400), st.sampled_from([DIALOG_INFO, MESSAGE_SUMMARY, "x/y", None]))
def test_any_body_parses_or_is_a_bad_request(body: bytes, mime: str | None) -> None:
    with contextlib.suppress(BadRequest):
        parse_body(mime, body)


@given(st.text(max_size=200))
def test_any_text_inside_a_dialog_is_taken_or_refused_cleanly(text: str) -> None:
    with contextlib.suppress(BadRequest):
        parse_body(DIALOG_INFO, dialog_info(text))
