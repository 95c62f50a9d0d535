"""Which pages may open the WebSockets (gateway/signaling/origin.py) and how origins are written."""

from __future__ import annotations

import json

import pytest

from gateway.config import ConfigError
from gateway.config.loader import load_config_text
from gateway.config.schema import HttpSection
from gateway.config.values import normalize_origin
from gateway.signaling.origin import origin_policy


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://Phone.Example.org", "https://phone.example.org"),
        ("HTTPS://phone.example.org:443/", "https://phone.example.org"),
        ("http://phone.example.org:80", "http://phone.example.org"),
        ("https://phone.example.org:8443", "https://phone.example.org:8443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("null", None),
        ("https://phone.example.org/page", None),
        ("ftp://phone.example.org", None),
        ("phone.example.org", None),
    ],
)
def test_origins_are_compared_as_rfc_6454_serializes_them(value: str, origin: str | None) -> None:
    assert normalize_origin(value) == origin


def _http(**keys: object) -> HttpSection:
    return load_config_text("http: " + json.dumps(keys) + "\n", env={}).http


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("http://gw.example:8080", True),  # the listener's own
        ("http://GW.example:8080", True),
        ("https://gw.example:8080", False),  # the scheme is part of the origin
        ("http://gw.example", False),
        ("https://intranet.example.org", True),  # http.allowed_origins
        ("http://evil.example", False),  # whatever the Host header says (DNS rebinding)
        ("http://localhost:8080", False),  # not a loopback listener: no loopback defaults
        ("null", False),
    ],
)
def test_own_origins_come_from_the_config_not_from_the_host_header(origin: str | None, allowed: bool) -> None:
    http = _http(host="gw.example", port=8080, allowed_origins=["https://intranet.example.org"])
    assert origin_policy(http).allows(origin) is allowed


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:3000", True),  # the dev defaults: any port of a loopback name
        ("http://[::1]:9", True),
        ("http://127.0.0.7", True),
        ("https://localhost:8080", False),  # the listener speaks http
        ("http://evil.example:8080", False),
        ("http://localhost.evil.example", False),
    ],
)
def test_a_loopback_or_wildcard_listener_takes_the_loopback_origins(origin: str, allowed: bool) -> None:
    for host in ("127.0.0.1", "0.0.0.0"):
        assert origin_policy(_http(host=host, port=8080)).allows(origin) is allowed


def test_public_origins_replace_the_derived_ones_and_certificate_names_count() -> None:
    public = origin_policy(_http(host="0.0.0.0", port=8443, public_origins=["https://phone.example.org"]))
    assert public.allows("https://phone.example.org") and public.allows("https://Phone.example.org:443")
    assert not public.allows("http://localhost:8443") and not public.allows("https://evil.example")
    tls = {"certificate": "c.pem", "private_key": "k.pem"}
    named = origin_policy(_http(host="0.0.0.0", port=8443, tls=tls), ["gw.lan", "192.0.2.5"])
    assert named.allows("https://gw.lan:8443") and named.allows("https://192.0.2.5:8443")
    assert named.allows("https://localhost:8443") and not named.allows("https://gw.lan")


def test_config_refuses_an_origin_that_is_not_one() -> None:
    with pytest.raises(ConfigError, match=r"http.allowed_origins\[0\]: expected an origin"):
        load_config_text("http: {allowed_origins: [https://x.example/path]}\n", env={})
    with pytest.raises(ConfigError, match=r"must differ from http\.port"):
        load_config_text(
            "http: {port: 8443, tls: {certificate: a, private_key: b, redirect_port: 8443}}\n", env={}
        )
