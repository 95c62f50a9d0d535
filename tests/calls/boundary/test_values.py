"""Events, commands and settings refuse bad values, quoting them, with the package's own error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.calls import (
    CallError,
    CallSettings,
    InvalidValue,
    MediaFailed,
    MediaInactive,
    MediaSendDtmf,
    RemoteDtmf,
    SipFailed,
    SipIncomingInvite,
    SipProvisional,
    SipReinviteResult,
    SipRespond,
    SipRespondReinvite,
    StartTimer,
    TimerFired,
    TimerName,
    WebDial,
    WebDtmf,
    WebHold,
    WebReject,
)
from gateway.config.loader import load_config_text
from gateway.config.values import DtmfMode
from tests.calls import flows as f

BAD: list[tuple[Callable[[], object], str]] = [
    (lambda: WebHold(""), "''"),
    (lambda: WebDial("s1", f.ALICE, "1002", ""), "sdp"),
    (lambda: WebDial("s1", f.ALICE, 1002, "x"), "1002"),  # type: ignore[arg-type]
    (lambda: WebReject("s1", "busy"), "'busy'"),  # type: ignore[arg-type]
    (lambda: WebDtmf("s1", "12x"), "'x'"),
    (lambda: WebDtmf("s1", ""), "digits"),
    (lambda: WebDtmf("s1", "1", 0), "0"),
    (lambda: SipProvisional(200), "200"),
    (lambda: SipFailed(200), "200"),
    (lambda: SipFailed(True), "True"),
    (lambda: SipReinviteResult(100), "100"),
    (lambda: SipIncomingInvite("sip:a@b", "sip:c@d", None, "x", None), "None"),  # type: ignore[arg-type]
    (lambda: RemoteDtmf("E", 100), "'E'"),
    (lambda: MediaFailed(""), "reason"),
    (lambda: MediaFailed("x", 200), "200"),
    (lambda: MediaInactive(-1), "-1"),
    (lambda: TimerFired("ring"), "'ring'"),  # type: ignore[arg-type]
    (lambda: SipRespond("c1", 200, "OK"), "200"),
    (lambda: SipRespondReinvite("c1", 200, "OK"), "200"),
    (lambda: MediaSendDtmf("c1", "11", 100), "'11'"),
    (lambda: StartTimer("c1", TimerName.RING, 0), "0"),
    (lambda: CallSettings(setup_timeout=0), "setup_timeout"),
    (lambda: CallSettings(dtmf_duration_ms=5), "5"),
]


@pytest.mark.parametrize(("build", "quoted"), BAD)
def test_bad_values_are_refused(build: Callable[[], object], quoted: str) -> None:
    with pytest.raises(InvalidValue) as info:
        build()
    assert quoted in str(info.value)
    assert isinstance(info.value, CallError)


def test_values_are_frozen() -> None:
    event = WebHold("s1")
    with pytest.raises(AttributeError):
        event.session_id = "s2"  # type: ignore[misc]


def test_settings_from_config() -> None:
    config = load_config_text("pbx: {address: pbx.example.org}\nsip: {dtmf_mode: info}\n", env={})
    settings = CallSettings.from_config(config, inbound_ring_timeout=30)
    assert settings.dtmf_mode is DtmfMode.INFO
    assert settings.pbx_domain == "pbx.example.org"
    assert settings.inbound_ring_timeout == 30


@pytest.mark.parametrize(
    ("yaml", "family"),
    [
        ("", "IP4"),  # the default listen host, 127.0.0.1
        ("sip: {listen: [{transport: udp, host: '::1'}]}\n", "IP6"),
        ("sip: {listen: [{transport: udp, host: '::'}]}\nmedia: {public_address: 192.0.2.8}\n", "IP4"),
        ("media: {public_address: '2001:db8::8'}\n", "IP4,IP6"),  # RTP on 127.0.0.1 and on :: for IPv6
        ("sip: {listen: [{host: '::1'}, {host: 127.0.0.1}]}\n", "IP6,IP4"),  # dual stack
        ("sip: {listen: [{host: '0.0.0.0'}]}\n", "IP4"),  # nothing usable yet: the bridge will say why
    ],
)
def test_settings_know_the_address_families_of_the_rtp(yaml: str, family: str) -> None:
    families = CallSettings.from_config(load_config_text(yaml, env={})).media_families
    assert families == tuple(family.split(","))


def test_settings_take_the_call_timeouts_from_config() -> None:
    config = load_config_text(
        "calls: {setup_timeout: 4, outbound_ring_timeout: 30, inbound_ring_timeout: 25, answer_timeout: 8}\n",
        env={},
    )
    settings = CallSettings.from_config(config)
    assert (settings.setup_timeout, settings.outbound_ring_timeout) == (4, 30)
    assert (settings.inbound_ring_timeout, settings.answer_timeout) == (25, 8)
