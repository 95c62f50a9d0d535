"""media.opus_inband_fec (auto | on | off; YAML's bare on/off/true/false read as booleans) and
media.opus_usedtx (issue 35), and what the encoders' settings make of them."""

from __future__ import annotations

import pytest

from gateway.config import OpusFec
from gateway.media.codecs.opus_settings import LossSettings, OpusEncoderSettings
from tests.gateway.test_config import SHIPPED, errors_of, load


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("media: {}", OpusFec.AUTO),
        ("media: {opus_inband_fec: auto}", OpusFec.AUTO),
        ("media: {opus_inband_fec: AUTO}", OpusFec.AUTO),
        ("media: {opus_inband_fec: on}", OpusFec.ON),
        ("media: {opus_inband_fec: 'on'}", OpusFec.ON),
        ("media: {opus_inband_fec: true}", OpusFec.ON),
        ("media: {opus_inband_fec: off}", OpusFec.OFF),
        ("media: {opus_inband_fec: false}", OpusFec.OFF),
    ],
)
def test_opus_inband_fec_modes(text: str, mode: OpusFec) -> None:
    assert load(text).media.opus_inband_fec is mode


def test_opus_usedtx_and_the_shipped_file() -> None:
    assert load("media: {opus_usedtx: true}").media.opus_usedtx is True
    shipped = load(SHIPPED.read_text())
    assert shipped.media.opus_inband_fec is OpusFec.AUTO and shipped.media.opus_usedtx is False
    assert errors_of("media: {opus_inband_fec: [auto]}") == [
        "media.opus_inband_fec: expected auto, on or off, got ['auto']"
    ]


def test_auto_turns_fec_on_above_one_percent_of_reported_loss() -> None:
    auto = OpusEncoderSettings.from_mode(5, "auto")
    assert auto.for_loss(0) == LossSettings(False, 0)
    assert auto.for_loss(2) == LossSettings(False, 1)  # 0.8 %: not worth the bits
    assert auto.for_loss(26) == LossSettings(True, 10)  # 10 % (26/256)
    assert auto.for_loss(255) == LossSettings(True, 100)
    on = OpusEncoderSettings.from_mode(5, "on")
    assert on.inband_fec and on.for_loss(0) == LossSettings(True, 0)
    assert OpusEncoderSettings.from_mode(5, "off").for_loss(128) is None
    with pytest.raises(ValueError, match="a fraction lost is 0-255, got 256"):
        auto.for_loss(256)
    with pytest.raises(ValueError, match="in-band FEC is auto, on or off, got 'sometimes'"):
        OpusEncoderSettings.from_mode(5, "sometimes")


def test_opus_red_modes_and_the_shipped_file() -> None:
    assert load("media: {}").media.opus_red is OpusFec.AUTO
    assert load("media: {opus_red: off}").media.opus_red is OpusFec.OFF
    assert load("media: {opus_red: 'on'}").media.opus_red is OpusFec.ON
    assert load(SHIPPED.read_text()).media.opus_red is OpusFec.AUTO
    assert errors_of("media: {opus_red: sometimes}") == [
        "media.opus_red: expected auto, on or off, got 'sometimes'"
    ]
