"""The `recording` section (gateway/config/recording.py), users[].recording and routes[].recording:
defaults, values, the precedence of a call's mode, errors naming the key; and the call record's
`recording` field (gateway/ops/records.py), absent when the call was not recorded."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from gateway.config.loader import config_from_mapping
from gateway.config.recording import RecordingFormat, RecordingMode, SiprecTransport, recording_mode
from gateway.ops.records import CallRecord

USER = {"id": "alice", "sip": "sip:1001@pbx.example.org", "web_token": "t" * 32}
BASE = {"web_auth": {"mode": "token"}}


def test_recording_is_off_by_default_and_reads_its_values() -> None:
    section = config_from_mapping({}, {}).recording
    assert (section.mode, section.directory, section.format, section.rate) == (
        RecordingMode.NEVER, "recordings", RecordingFormat.WAV, 8000,
    )  # fmt: skip
    config = config_from_mapping(
        {**BASE, "recording": {"mode": "on_demand", "directory": "/var/rec", "format": "ogg", "rate": 16000},
         "users": [{**USER, "recording": "always"}], "routes": [{"match": "7xxx", "recording": "never"}]},
        {},
    )  # fmt: skip
    assert config.recording.mode is RecordingMode.ON_DEMAND and config.recording.format is RecordingFormat.OGG
    assert config.recording.rate == 16000 and config.recording.directory == "/var/rec"
    assert (
        config.users[0].recording is RecordingMode.ALWAYS
        and config.routes[0].recording is RecordingMode.NEVER
    )


def test_siprec_is_off_by_default_and_reads_its_server() -> None:
    assert config_from_mapping({}, {}).recording.siprec is None
    section = config_from_mapping({"recording": {"siprec": {"server": "sip:srs@192.0.2.9:5070"}}}, {})
    siprec = section.recording.siprec
    assert siprec is not None and siprec.server == "sip:srs@192.0.2.9:5070"
    assert siprec.transport is SiprecTransport.UDP


def test_a_calls_mode_is_its_routes_then_its_users_then_the_sections() -> None:
    never, demand, always = RecordingMode.NEVER, RecordingMode.ON_DEMAND, RecordingMode.ALWAYS
    assert recording_mode(never, None, None) is never
    assert recording_mode(never, demand, None) is demand
    assert recording_mode(always, demand, never) is never
    assert recording_mode(never, None, always) is always


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"recording": {"mode": "sometimes"}}, "recording.mode"),
        ({"recording": {"format": "mp3"}}, "recording.format"),
        ({"recording": {"rate": 44100}}, "recording.rate: expected 8000 or 16000"),
        ({"recording": {"rate": True}}, "recording.rate"),
        ({"recording": {"directory": "  "}}, "recording.directory"),
        ({"recording": {"directroy": "x"}}, "recording.directroy"),
        ({**BASE, "users": [{**USER, "recording": "yes"}]}, "users[0].recording"),
        ({"routes": [{"match": "7xxx", "recording": 1}]}, "routes[0].recording"),
        ({"recording": {"siprec": {"server": "http://srs"}}}, "recording.siprec.server: must be a sip: URI"),
        ({"recording": {"siprec": {"server": "sip:srs@"}}}, "recording.siprec.server"),
        (
            {"recording": {"siprec": {"server": "sip:srs@h", "transport": "tls"}}},
            "recording.siprec.transport",
        ),
        ({"recording": {"siprec": {}}}, "recording.siprec.server"),
    ],
)
def test_bad_recording_values_name_their_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[")):
        config_from_mapping(data, {})


def test_the_call_record_names_the_files_and_their_sidecars_only_when_recorded() -> None:
    plain = CallRecord("c1", "outbound", 1.0, 2.0, "hangup", "web")
    assert "recording" not in plain.to_json()
    recorded = CallRecord("c1", "outbound", 1.0, 2.0, "hangup", "web", recording=("r/c1-1.wav", "r/c1-2.ogg"))
    assert recorded.to_json()["recording"] == {
        "files": ["r/c1-1.wav", "r/c1-2.ogg"], "sidecars": ["r/c1-1.json", "r/c1-2.json"],
    }  # fmt: skip
