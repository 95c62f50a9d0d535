"""Which pages may open the WebSockets (gateway/signaling/origin.py) and how origins are written."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from gateway.config.loader import load_config_text
from gateway.config.values import normalize_origin
from gateway.signaling.origin import origin_allowed


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


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "allowed"),
    [
        (None, "https", "gw:8443", True),
        ("https://gw:8443", "https", "gw:8443", True),
        ("https://GW:8443", "https", "gw:8443", True),
        ("http://gw:8443", "https", "gw:8443", False),  # the scheme is part of the origin
        ("https://gw", "https", "gw:8443", False),
        ("http://localhost:8080", "http", "localhost:8080", True),
        ("https://intranet.example.org", "https", "gw:8443", True),
        ("https://evil.example", "https", "gw:8443", False),
        ("null", "https", "gw:8443", False),
    ],
)
def test_only_the_own_and_listed_origins_may_open_websockets(
    origin: str | None, scheme: str, host: str, allowed: bool
) -> None:
    assert origin_allowed(origin, scheme, host, frozenset({"https://intranet.example.org"})) is allowed


def test_config_refuses_an_origin_that_is_not_one() -> None:
    with pytest.raises(ConfigError, match=r"http.allowed_origins\[0\]: expected an origin"):
        load_config_text("http: {allowed_origins: [https://x.example/path]}\n", env={})
    with pytest.raises(ConfigError, match=r"must differ from http\.port"):
        load_config_text(
            "http: {port: 8443, tls: {certificate: a, private_key: b, redirect_port: 8443}}\n", env={}
        )
