"""RFC 3263 location against a real DNS server (dnsmasq on 127.0.0.53, records of the test's own):
NAPTR -> SRV -> A, the transport chosen by what we listen on, SRV without NAPTR, an explicit port or an
IP skipping both, answers cached by their TTL."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gateway.config.loader import config_from_mapping
from gateway.sip.transports.resolver import DnsSettings, Resolver, configured_target
from gateway.sip.useragent.ua import UASettings
from peers.dnsmasq import Dnsmasq, Naptr, SrvHost
from sipcore.errors import TransportError
from sipcore.location.locate import Hop
from sipcore.location.routing import Target, uri_target
from sipcore.syntax.uri import parse_uri

HOSTS = {"a.pbx.test": "127.0.0.1", "b.pbx.test": "127.0.0.2", "t.pbx.test": "127.0.0.3"}
SRV = [
    SrvHost("_sip._udp.pbx.test", "a.pbx.test", 5070, 10, 0),
    SrvHost("_sip._udp.pbx.test", "b.pbx.test", 5071, 20, 0),
    SrvHost("_sip._tcp.pbx.test", "t.pbx.test", 5072, 10, 0),
    SrvHost("_sip._udp.plain.test", "b.pbx.test", 5090, 10, 0),
]
NAPTR = [
    Naptr("pbx.test", 10, 10, "SIP+D2T", "_sip._tcp.pbx.test"),
    Naptr("pbx.test", 20, 10, "SIP+D2U", "_sip._udp.pbx.test"),
]


def resolver(dns: Dnsmasq, clock: list[float] | None = None) -> Resolver:
    return Resolver(
        DnsSettings(servers=(dns.server,)),
        rng=random.Random(0),
        clock=(lambda: clock[0]) if clock is not None else None,
    )


def name(uri: str) -> Target:
    return uri_target(parse_uri(uri))


async def test_naptr_then_srv_then_a_in_order(tmp_path: Path) -> None:
    async with Dnsmasq(tmp_path, srv=SRV, naptr=NAPTR, hosts=HOSTS) as dns:
        hops = await resolver(dns).locate(name("sip:2000@pbx.test"), {"UDP", "TCP"})
        assert hops == [
            Hop("TCP", ("127.0.0.3", 5072)),  # NAPTR order 10: TCP
            Hop("UDP", ("127.0.0.1", 5070)),  # then UDP, SRV priority 10
            Hop("UDP", ("127.0.0.2", 5071)),  # and 20
        ]
        assert dns.queries()[:2] == ["NAPTR pbx.test", "SRV _sip._tcp.pbx.test"]


async def test_naptr_records_of_transports_we_do_not_listen_on_are_skipped(tmp_path: Path) -> None:
    async with Dnsmasq(tmp_path, srv=SRV, naptr=NAPTR, hosts=HOSTS) as dns:
        hops = await resolver(dns).locate(name("sip:2000@pbx.test"), {"UDP"})
        assert hops == [Hop("UDP", ("127.0.0.1", 5070)), Hop("UDP", ("127.0.0.2", 5071))]
        assert "SRV _sip._tcp.pbx.test" not in dns.queries()


async def test_without_naptr_the_srv_of_our_transports(tmp_path: Path) -> None:
    async with Dnsmasq(tmp_path, srv=SRV, hosts=HOSTS) as dns:
        hops = await resolver(dns).locate(name("sip:2000@plain.test"), {"UDP"})
        assert hops == [Hop("UDP", ("127.0.0.2", 5090))]
        assert dns.queries()[:2] == ["NAPTR plain.test", "SRV _sip._udp.plain.test"]


async def test_a_transport_parameter_skips_naptr(tmp_path: Path) -> None:
    async with Dnsmasq(tmp_path, srv=SRV, naptr=NAPTR, hosts=HOSTS) as dns:
        hops = await resolver(dns).locate(name("sip:2000@pbx.test;transport=udp"), {"UDP", "TCP"})
        assert hops == [Hop("UDP", ("127.0.0.1", 5070)), Hop("UDP", ("127.0.0.2", 5071))]
        assert dns.queries()[0] == "SRV _sip._udp.pbx.test"


async def test_an_explicit_port_or_an_ip_skips_naptr_and_srv(tmp_path: Path) -> None:
    async with Dnsmasq(tmp_path, srv=SRV, naptr=NAPTR, hosts=HOSTS) as dns:
        located = resolver(dns)
        assert await located.locate(name("sip:2000@a.pbx.test:6000"), {"UDP"}) == [
            Hop("UDP", ("127.0.0.1", 6000))
        ]
        assert await located.locate(name("sip:2000@127.0.0.9"), {"UDP"}) == [Hop("UDP", ("127.0.0.9", 5060))]
        assert not any(q.startswith(("NAPTR", "SRV")) for q in dns.queries())


async def test_no_srv_falls_back_to_a_records_with_the_default_port(tmp_path: Path) -> None:
    async with Dnsmasq(tmp_path, hosts=HOSTS) as dns:
        assert await resolver(dns).locate(name("sip:2000@a.pbx.test"), {"UDP"}) == [
            Hop("UDP", ("127.0.0.1", 5060))
        ]


async def test_an_unknown_name_is_a_transport_error(tmp_path: Path) -> None:
    async with Dnsmasq(tmp_path, hosts=HOSTS) as dns:
        with pytest.raises(TransportError, match=r"nowhere\.test"):
            await resolver(dns).locate(name("sip:2000@nowhere.test"), {"UDP"})


async def test_answers_are_cached_for_their_ttl(tmp_path: Path) -> None:
    clock = [1000.0]
    async with Dnsmasq(tmp_path, srv=SRV, naptr=NAPTR, hosts=HOSTS, ttl=30) as dns:
        located = resolver(dns, clock)
        first = await located.locate(name("sip:2000@pbx.test"), {"UDP"})
        asked = len(dns.queries())
        clock[0] += 29
        assert await located.locate(name("sip:2000@pbx.test"), {"UDP"}) == first
        assert len(dns.queries()) == asked  # all from the cache
        clock[0] += 2
        await located.locate(name("sip:2000@pbx.test"), {"UDP"})
        assert len(dns.queries()) == 2 * asked  # expired: asked again


async def test_the_cache_is_bounded(tmp_path: Path) -> None:
    async with Dnsmasq(tmp_path, hosts=HOSTS) as dns:
        located = Resolver(DnsSettings(servers=(dns.server,), cache_size=2))
        for host in HOSTS:
            await located.addresses(host, 5060)
        assert len(located._cache.entries) == 2


def test_dns_servers_and_the_pbx_target_from_gateway_yaml() -> None:
    config = config_from_mapping(
        {"pbx": {"address": "pbx.test"}, "dns": {"servers": ["127.0.0.53:5353", "127.0.0.1"], "timeout": 1}},
        {},
    )
    settings = UASettings.from_config(config)
    assert settings.dns.servers == (("127.0.0.53", 5353), ("127.0.0.1", 53))
    assert settings.outbound is not None and not settings.outbound.port_given
    assert not settings.outbound.transport_given  # NAPTR may choose among what we listen on
    assert configured_target("TLS", "pbx.test", None, 5061).transport_given  # TLS is never traded
    assert configured_target("UDP", "pbx.test", 5080, 5060).port_given


def test_a_dns_server_must_be_an_ip() -> None:
    with pytest.raises(Exception, match=r"dns\.servers\[0\]"):
        config_from_mapping({"dns": {"servers": ["ns.example.com"]}}, {})
