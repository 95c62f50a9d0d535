"""G.729 in gateway.yaml: SIP leg only, never by default, and `check` says whether libbcg729 loads."""

from __future__ import annotations

import textwrap

import pytest

from gateway import cli_check
from gateway.config import Codec, ConfigError
from gateway.config.loader import load_config_text
from gateway.media.codecs import g729
from peers.binaries import unavailable


def _summary(text: str) -> dict[str, str]:
    config = load_config_text(textwrap.dedent(text), {})
    return dict(cli_check.summary(config))


def test_g729_is_off_by_default_and_offered_on_the_sip_leg_when_listed() -> None:
    assert Codec.G729 not in load_config_text("", {}).codecs.sip
    config = load_config_text("codecs: {sip: [G729, PCMU]}", {})
    assert config.codecs.sip == (Codec.G729, Codec.PCMU)


def test_g729_on_the_web_leg_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text("codecs: {webrtc: [opus, G729]}", {})
    assert any(e.startswith("codecs.webrtc[1]: G729 is for the SIP leg only") for e in info.value.errors)


def test_check_says_whether_g729_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    if not g729.available():  # a failure under CI=true
        unavailable("libbcg729 (Debian libbcg729-0) not installed")
    assert _summary("codecs: {sip: [G729, PCMU]}")["G.729"] == "available (libbcg729.so.0)"
    assert "add G729 to codecs.sip" in _summary("")["G.729"]
    monkeypatch.setattr(g729, "_library", lambda: None)  # as on a host without libbcg729-0
    missing = _summary("codecs: {sip: [G729, PCMU]}")["G.729"]
    assert missing == "not available: install libbcg729-0; G729 in codecs.sip is not offered"
