"""The Reason header (RFC 3326): values, causes, what a forking proxy's CANCEL says."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore.errors import BadRequest
from sipcore.syntax.reason import ReasonValue, answered_elsewhere, parse_reason_value, parse_reasons


def test_kamailio_call_completed_elsewhere() -> None:
    [value] = parse_reasons(['SIP;cause=200;text="Call completed elsewhere"'])
    assert value == ReasonValue("SIP", 200, "Call completed elsewhere")
    assert value.is_sip and not value.is_q850
    assert answered_elsewhere((value,))


def test_q850_with_spaces_and_both_protocols_in_one_header() -> None:
    values = parse_reasons(['Q.850 ; cause=16 ; text="Terminated", SIP ;cause=487'])
    assert values == (ReasonValue("Q.850", 16, "Terminated"), ReasonValue("SIP", 487))
    assert not answered_elsewhere(values)


def test_q850_non_selected_user_clearing_is_answered_elsewhere() -> None:
    assert answered_elsewhere(parse_reasons(["Q.850;cause=26"]))
    assert not answered_elsewhere(parse_reasons(["Q.850;cause=16"]))
    assert not answered_elsewhere(parse_reasons(["X-Other;cause=200"]))  # not the SIP protocol
    assert not answered_elsewhere(())


@pytest.mark.parametrize(
    "value",
    [
        "",
        ";cause=200",
        "SIP;cause=abc",
        "SIP;cause=2000",
        "SIP;cause=99",
        "Q.850;cause=200",
        'SIP;text="open',
    ],
)
def test_malformed_values_are_refused_by_value_and_skipped_in_a_list(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_reason_value(value)
    assert parse_reasons([value, "SIP;cause=200"]) == (ReasonValue("SIP", 200),)


def test_text_control_characters_become_spaces_and_long_text_is_refused() -> None:
    assert parse_reason_value('SIP;cause=200;text="a\\\tb"').text == "a b"
    with pytest.raises(BadRequest, match="longer"):
        parse_reason_value('SIP;text="' + "x" * 300 + '"')


@given(st.text(max_size=80))
def test_any_text_parses_or_is_skipped(text: str) -> None:
    for value in parse_reasons([text]):
        assert isinstance(value, ReasonValue)
