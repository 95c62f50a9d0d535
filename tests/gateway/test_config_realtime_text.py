"""media.realtime_text (issue 68): answer | offer | off, YAML's bare on/off/true/false read as booleans."""

from __future__ import annotations

import pytest

from gateway.config import RealtimeText
from tests.gateway.test_config import SHIPPED, errors_of, load


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("media: {}", RealtimeText.ANSWER),
        ("media: {realtime_text: answer}", RealtimeText.ANSWER),
        ("media: {realtime_text: OFFER}", RealtimeText.OFFER),
        ("media: {realtime_text: off}", RealtimeText.OFF),
        ("media: {realtime_text: false}", RealtimeText.OFF),
        ("media: {realtime_text: true}", RealtimeText.ANSWER),
    ],
)
def test_realtime_text_modes(text: str, mode: RealtimeText) -> None:
    assert load(text).media.realtime_text is mode


def test_the_shipped_file_answers_text_and_a_bad_mode_is_named() -> None:
    assert load(SHIPPED.read_text()).media.realtime_text is RealtimeText.ANSWER
    assert errors_of("media: {realtime_text: always}") == [
        "media.realtime_text: expected answer, offer or off, got 'always'"
    ]
