"""gateway.config.routes: `routes[]` (media per destination, issue 13 item 7): parsing, errors naming the
key path, and which route a Request-URI takes."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from gateway.config.loader import config_from_mapping
from gateway.config.routes import MediaMode, RouteConfig, SipOffer, media_mode, route_for


def routes(*items: object) -> tuple[RouteConfig, ...]:
    return config_from_mapping({"routes": list(items)}, {}).routes


def test_no_route_means_terminate() -> None:
    assert media_mode((), "sip:7001@pbx.example.com") is MediaMode.TERMINATE
    assert media_mode(routes({"match": "7xxx"}), "sip:7001@pbx") is MediaMode.TERMINATE  # default media


@pytest.mark.parametrize(
    ("target", "mode"),
    [
        ("sip:7001@pbx.example.com", MediaMode.PASSTHROUGH),  # the pattern, any host
        ("sip:70011@pbx.example.com", MediaMode.TERMINATE),  # a pattern matches the whole user part
        ("sip:2000@pbx.example.com", MediaMode.TERMINATE),
        ("sip:anyone@WebRTC.Example.com", MediaMode.PASSTHROUGH),  # the domain, any user, any case
        ("sip:webrtc.example.com", MediaMode.PASSTHROUGH),
        ("sip:7001@sub.webrtc.example.com", MediaMode.PASSTHROUGH),  # the pattern again
        ("sip:8001@sub.webrtc.example.com", MediaMode.TERMINATE),  # not a suffix match
        ("tel:7001", MediaMode.TERMINATE),
        ("not a uri", MediaMode.TERMINATE),
    ],
)
def test_the_first_matching_route_decides(target: str, mode: MediaMode) -> None:
    table = routes(
        {"match": "7xxx", "media": "passthrough"},
        {"match": "@webrtc.example.com", "media": "PassThrough"},  # enums match case-insensitively
        {"match": ".", "media": "terminate"},
    )
    assert media_mode(table, target) is mode


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"match": "@bad host"}, "routes[0].match: expected a host name"),
        ({"match": "abc", "media": "passthrough"}, "routes[0].match: bad dial pattern 'abc'"),
        ({"match": "7xxx", "media": "bridge"}, "routes[0].media: expected one of terminate, passthrough"),
        ({"match": "7xxx", "mode": "passthrough"}, "routes[0].mode: unknown key"),
        ({"media": "passthrough"}, "routes[0].match"),
        ({"match": "7xxx", "sip_offer": "srtp"}, "routes[0].sip_offer: expected one of rtp, webrtc"),
        (
            {"match": "7xxx", "media": "passthrough", "sip_offer": "webrtc"},
            "sip_offer applies to media: terminate",
        ),
    ],
)
def test_bad_routes_are_errors_naming_the_key(route: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        routes(route)


def test_sip_offer_webrtc_is_a_terminating_routes_choice() -> None:
    table = routes({"match": "8xxx", "sip_offer": "webrtc"}, {"match": "7xxx", "media": "passthrough"})
    route = route_for(table, "sip:8001@pbx")
    assert route is not None and route.media is MediaMode.TERMINATE and route.sip_offer is SipOffer.WEBRTC
    passthrough = route_for(table, "sip:7001@pbx")
    assert passthrough is not None and passthrough.sip_offer is SipOffer.RTP
    assert route_for(table, "sip:2000@pbx") is None
