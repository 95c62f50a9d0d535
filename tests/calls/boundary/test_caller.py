"""Caller details and the custom headers a web call may carry (gateway/calls/boundary/caller.py), and when the
gateway asserts the web user's identity to the PBX (CallSettings.assert_identity)."""

from __future__ import annotations

import pytest

from gateway.calls import CallerDetails, CallSettings, InvalidValue, custom_headers
from gateway.config.loader import config_from_mapping

HASH = {
    "web_secret_hash": "scrypt$16384$8$1$3NC6hA5nutew8BgmMtbYGw==$HcvwtRnaZ2T6ULpMGMVb4QufY1XJj5LG1OAvmW9nQdA="
}


def test_custom_headers_are_allow_listed_and_spelled_as_configured() -> None:
    assert custom_headers({"x-account": "acme-42"}, ["X-Account"]) == (("X-Account", "acme-42"),)
    assert custom_headers({}, []) == ()
    with pytest.raises(InvalidValue, match=r"'X-Secret' is not in sip\.pass_headers"):
        custom_headers({"X-Secret": "1"}, ["X-Account"])
    with pytest.raises(InvalidValue, match="printable"):
        custom_headers({"X-Account": "a\r\nVia: evil"}, ["X-Account"])  # no header injection
    with pytest.raises(InvalidValue, match="printable"):
        custom_headers({"X-Account": "x" * 257}, ["X-Account"])
    with pytest.raises(InvalidValue, match="at most 16"):
        custom_headers({f"X-{n}": "v" for n in range(17)}, [f"X-{n}" for n in range(17)])


def test_caller_details_validate() -> None:
    with pytest.raises(InvalidValue):
        CallerDetails(None, "Carol")
    with pytest.raises(InvalidValue):
        CallerDetails(headers=(("Bad Name", "v"),))


@pytest.mark.parametrize(
    ("pbx", "trusted", "expected"),
    [
        ({"address": "127.0.0.1:5070"}, ["127.0.0.1/32"], True),  # the PBX is in the trust domain
        ({"address": "127.0.0.1:5070"}, ["10.0.0.0/8"], False),
        ({"address": "pbx.example.org"}, ["127.0.0.1/32"], False),  # a name: only when said so
        ({"address": "pbx.example.org", "assert_identity": True}, [], True),
        ({"address": "127.0.0.1:5070", "assert_identity": False}, ["127.0.0.1/32"], False),
    ],
)
def test_identity_is_asserted_only_toward_a_trusted_pbx(
    pbx: dict[str, object], trusted: list[str], expected: bool
) -> None:
    config = config_from_mapping(
        {"pbx": pbx, "sip": {"trusted_sources": trusted}, "users": [{"id": "a", "sip": "1001", **HASH}]}, {}
    )
    assert CallSettings.from_config(config).assert_identity is expected
