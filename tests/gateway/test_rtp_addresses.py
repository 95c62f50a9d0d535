"""Which address families the SIP leg's RTP serves, and where (gateway/config/addresses.py)."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.config import ConfigError
from gateway.config.addresses import RtpAddress, rtp_addresses
from gateway.config.loader import load_config_text


def test_each_family_binds_to_its_first_listen_host_and_writes_its_public_address() -> None:
    v4, v6 = ipaddress.ip_address("203.0.113.5"), ipaddress.ip_address("2001:db8::5")
    served = rtp_addresses(["10.0.0.2", "[fd00::2]", "10.0.0.3"], [v6, v4])
    assert dict(served) == {
        "IP4": RtpAddress("10.0.0.2", "203.0.113.5"),
        "IP6": RtpAddress("fd00::2", "2001:db8::5"),
    }
    assert served["IP4"].sdp_address == "203.0.113.5"


def test_a_wildcard_serves_only_with_a_public_address_of_its_family() -> None:
    assert dict(rtp_addresses(["0.0.0.0", "::"], [])) == {}
    public = [ipaddress.ip_address("2001:db8::5")]
    assert dict(rtp_addresses(["0.0.0.0", "::"], public)) == {"IP6": RtpAddress("::", "2001:db8::5")}
    # A public address of a family nobody listens on binds that family's wildcard.
    assert dict(rtp_addresses(["127.0.0.1"], public)) == {
        "IP4": RtpAddress("127.0.0.1", None),
        "IP6": RtpAddress("::", "2001:db8::5"),
    }


@pytest.mark.parametrize(
    ("pbx", "first"),
    [
        (None, "IP4"),
        ("pbx.example.org", "IP4"),
        ("2001:db8::1", "IP6"),
        ("[2001:db8::1]", "IP6"),
        ("192.0.2.1", "IP4"),
    ],
)
def test_the_default_family_is_the_pbx_literals_else_the_first_listen_hosts(
    pbx: str | None, first: str
) -> None:
    assert next(iter(rtp_addresses(["127.0.0.1", "::1"], [], pbx))) == first


def test_a_pbx_on_a_family_not_served_leaves_the_default_alone() -> None:
    assert list(rtp_addresses(["127.0.0.1"], [], "2001:db8::1")) == ["IP4"]


def test_config_reads_one_public_address_or_one_per_family() -> None:
    config = load_config_text("media: {public_address: [203.0.113.5, '2001:db8::5']}\n", env={})
    assert [str(a) for a in config.media.public_address] == ["203.0.113.5", "2001:db8::5"]
    single = load_config_text("media: {public_address: 203.0.113.5}\n", env={})
    assert [str(a) for a in single.media.public_address] == ["203.0.113.5"]
    env = load_config_text("", env={"GATEWAY_MEDIA__PUBLIC_ADDRESS": "203.0.113.5, 2001:db8::5"})
    assert len(env.media.public_address) == 2
    listen = "sip: {listen: [{host: '::1'}], }\npbx: {address: '[::1]:5070'}\n"
    assert list(load_config_text(listen, env={}).rtp_addresses()) == ["IP6"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("[203.0.113.5, 198.51.100.1]", "at most one IPv4 and one IPv6"),
        ("gw.example.org", "not a host name"),
        ("{a: 1}", "expected an IP address or a list"),
    ],
)
def test_bad_public_addresses_name_the_field(value: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config_text(f"media: {{public_address: {value}}}\n", env={})
    assert "media.public_address" in str(refused.value) and words in str(refused.value)
