"""The `audio_stream` section (gateway/config/audio_stream.py): defaults, overrides per web user and per
SIP party's number (the first match wins), and every bad value refused with its full key path."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from gateway.config.audio_stream import StreamPolicy
from gateway.config.loader import load_config_text


def test_defaults_stream_nothing() -> None:
    section = load_config_text("", {}).audio_stream
    assert (section.url, section.policy, section.sample_rate, section.encoding, section.inject) == (
        None, StreamPolicy.NEVER, 8000, "pcm16", "none"
    )  # fmt: skip


def test_overrides_apply_to_their_calls_only() -> None:
    section = load_config_text(
        """
audio_stream:
  url: wss://app.example.org/listen
  token: {env: APP_TOKEN}
  sample_rate: 16000
  overrides:
    - {user: alice, policy: always, inject: sip}
    - {to: "7xxx", policy: always, encoding: OPUS, url: "ws://10.0.0.9:8080/bot"}
    - {user: bob, to: "8xxx", policy: always}
""",
        {"APP_TOKEN": "app-token"},
    ).audio_stream
    assert section.token is not None and section.token.reveal() == "app-token"
    alice = section.for_call("alice", "2000")
    assert (alice.policy, alice.inject, alice.url, alice.sample_rate) == (
        StreamPolicy.ALWAYS, "sip", "wss://app.example.org/listen", 16000
    )  # fmt: skip
    to_7 = section.for_call("carol", "7001")
    assert (to_7.policy, to_7.encoding, to_7.url) == (StreamPolicy.ALWAYS, "opus", "ws://10.0.0.9:8080/bot")
    assert section.for_call("bob", "2000").policy is StreamPolicy.NEVER  # both keys must match
    assert section.for_call("bob", "8001").policy is StreamPolicy.ALWAYS
    assert section.for_call(None, None) is section


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "audio_stream: {url: 'https://app'}",
            "audio_stream.url: expected a ws:// or wss:// URL, got 'https://app'",
        ),
        (
            "audio_stream: {sample_rate: 48000}",
            "audio_stream.sample_rate: expected one of [8000, 16000], got 48000",
        ),
        ("audio_stream: {encoding: mp3}", "audio_stream.encoding: expected one of pcm16, opus, got 'mp3'"),
        (
            "audio_stream: {inject: left}",
            "audio_stream.inject: expected one of none, sip, web, both, got 'left'",
        ),
        ("audio_stream: {policy: sometimes}", "audio_stream.policy"),
        ("audio_stream: {policy: always}", "audio_stream.url: policy always needs a url"),
        ("audio_stream: {overrides: [{policy: always}]}", "audio_stream.overrides[0].user"),
        ("audio_stream: {overrides: [{user: a, policy: always}]}", "audio_stream.overrides[0].url"),
        ("audio_stream: {overrides: [{to: 'x(', policy: never}]}", "audio_stream.overrides[0].to"),
        ("audio_stream: {queue_frames: 1}", "audio_stream.queue_frames"),
        ("audio_stream: {colour: red}", "audio_stream.colour"),
    ],
)
def test_bad_values_name_their_key(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, {})
    assert error in str(caught.value)
