"""RFC 3263 target ordering without a network: what to look up, NAPTR order/preference, SRV priority
and RFC 2782 weighted selection."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sipcore.location.locate import (
    Lookup,
    NaptrRecord,
    SrvRecord,
    fallback_transports,
    naptr_services,
    order_srv,
    plan,
    srv_name,
)
from sipcore.location.routing import Target, uri_target
from sipcore.syntax.uri import parse_uri


@pytest.mark.parametrize(
    ("uri", "lookup"),
    [
        ("sip:2000@127.0.0.1", Lookup.NONE),  # §4.2: an IP needs no DNS
        ("sip:2000@[::1]", Lookup.NONE),
        ("sip:2000@pbx.example.com:5070", Lookup.ADDRESS),  # an explicit port: A/AAAA only
        ("sip:2000@pbx.example.com;transport=tcp", Lookup.SRV),  # a transport, no port: SRV
        ("sips:2000@pbx.example.com", Lookup.SRV),  # sips: TLS is given
        ("sip:2000@pbx.example.com", Lookup.NAPTR),  # neither: NAPTR first (§4.1)
    ],
)
def test_plan_follows_rfc3263(uri: str, lookup: Lookup) -> None:
    assert plan(uri_target(parse_uri(uri))) is lookup


def test_uri_target_says_what_the_uri_gave_and_equality_ignores_it() -> None:
    target = uri_target(parse_uri("sip:2000@pbx.example.com"))
    assert (target.port, target.port_given, target.transport_given) == (5060, False, False)
    assert target == Target("UDP", "pbx.example.com", 5060)


def test_srv_names() -> None:
    assert srv_name("UDP", "example.com.") == "_sip._udp.example.com"
    assert srv_name("TCP", "example.com") == "_sip._tcp.example.com"
    assert srv_name("TLS", "example.com") == "_sips._tcp.example.com"
    with pytest.raises(ValueError, match="'WS'"):
        srv_name("WS", "example.com")


def test_naptr_order_then_preference_and_only_what_we_support() -> None:
    records = [
        NaptrRecord(20, 10, "S", "SIP+D2U", "_sip._udp.example.com."),
        NaptrRecord(10, 50, "S", "SIP+D2T", "_sip._tcp.example.com."),
        NaptrRecord(10, 10, "S", "SIPS+D2T", "_sips._tcp.example.com."),
        NaptrRecord(5, 10, "S", "SIP+D2S", "_sip._sctp.example.com."),  # SCTP: not ours
        NaptrRecord(5, 10, "U", "SIP+D2U", "!^.*$!sip:x@example.com!"),  # not a terminal SRV pointer
        NaptrRecord(30, 10, "S", "E2U+sip", "_sip._udp.example.com."),  # ENUM, not a SIP service
    ]
    assert naptr_services(records, {"UDP", "TCP", "TLS"}) == [
        ("TLS", "_sips._tcp.example.com"),
        ("TCP", "_sip._tcp.example.com"),
        ("UDP", "_sip._udp.example.com"),
    ]
    # §4.1: records for transports the client does not support are discarded
    assert naptr_services(records, {"UDP"}) == [("UDP", "_sip._udp.example.com")]
    assert naptr_services(records, {"UDP", "TCP", "TLS"}, secure=True) == [("TLS", "_sips._tcp.example.com")]


def test_naptr_keeps_the_best_record_of_each_transport() -> None:
    records = [
        NaptrRecord(10, 20, "s", "sip+d2u", "_sip._udp.b.example.com"),
        NaptrRecord(10, 10, "S", "SIP+D2U", "_sip._udp.a.example.com"),
    ]
    assert naptr_services(records, {"UDP"}) == [("UDP", "_sip._udp.a.example.com")]


def test_without_naptr_the_configured_transport_comes_first() -> None:
    assert fallback_transports({"UDP", "TCP"}, "TCP") == ["TCP", "UDP"]
    assert fallback_transports({"UDP", "TCP", "TLS"}) == ["TLS", "UDP", "TCP"]


def test_srv_priority_first() -> None:
    records = [SrvRecord(20, 0, 5062, "c"), SrvRecord(10, 0, 5060, "a"), SrvRecord(15, 100, 5061, "b")]
    assert [r.target for r in order_srv(records, random.Random(1))] == ["a", "b", "c"]


def test_srv_weights_share_the_first_place_as_rfc2782_says() -> None:
    records = [
        SrvRecord(10, 60, 5060, "heavy"),
        SrvRecord(10, 20, 5060, "light"),
        SrvRecord(10, 20, 5060, "l2"),
    ]
    rng = random.Random(7)
    first = Counter(order_srv(records, rng)[0].target for _ in range(3000))
    assert 0.55 < first["heavy"] / 3000 < 0.65, first
    assert 0.15 < first["light"] / 3000 < 0.25, first


def test_srv_zero_weight_is_rarely_first_but_never_lost() -> None:
    records = [SrvRecord(1, 0, 5060, "zero"), SrvRecord(1, 100, 5060, "hundred")]
    rng = random.Random(3)
    orders = [tuple(r.target for r in order_srv(records, rng)) for _ in range(1000)]
    assert all(sorted(order) == ["hundred", "zero"] for order in orders)
    assert Counter(order[0] for order in orders)["zero"] < 30  # only when the draw is exactly 0


def test_srv_dot_target_means_no_service() -> None:
    assert order_srv([SrvRecord(0, 0, 0, ".")], random.Random(0)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"priority": 70000}, "priority"), ({"port": -1}, "port"), ({"target": ""}, "target")],
)
def test_bad_srv_values_are_refused(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"priority": 0, "weight": 0, "port": 5060, "target": "a", **kwargs}
    with pytest.raises(ValueError, match=message):
        SrvRecord(**values)  # type: ignore[arg-type]
