"""Next hops, response addresses, the source policy and configuration; and the layer's timers on
an injected clock (no waiting for Timer B)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.config.loader import config_from_mapping
from gateway.sip.transactions.layer import TransactionLayer
from gateway.sip.transactions.policy import Accept, AcceptAll, Reject, TrustedSources
from gateway.sip.transports.resolver import resolve
from gateway.sip.transports.transport import Source, UdpTransport
from peers.ports import free_port
from sipcore import Request, make_response, parse_message, parse_via
from sipcore.errors import TransportError
from sipcore.location.locate import Hop
from sipcore.location.routing import Target, request_target, response_address
from sipcore.transaction import Notice, TimerConfig
from tests.sip.layer_ua import TestUA, make_request
from tests.sip.transactions.test_layer import RawUdp, raw


def request(uri: str, *routes: str) -> Request:
    return make_request("OPTIONS", uri, headers=tuple(("Route", route) for route in routes))


@pytest.mark.parametrize(
    ("uri", "routes", "expected"),
    [
        ("sip:bob@pbx.example.org", (), Target("UDP", "pbx.example.org", 5060)),
        ("sip:bob@10.0.0.1:5070;transport=tcp", (), Target("TCP", "10.0.0.1", 5070)),
        ("sip:bob@[2001:db8::1]", (), Target("UDP", "2001:db8::1", 5060)),
        ("sips:bob@pbx.example.org", (), Target("TLS", "pbx.example.org", 5061)),
        ("sip:bob@pbx", ("<sip:proxy.example.org:5080;lr;transport=TCP>", "<sip:second;lr>"),
         Target("TCP", "proxy.example.org", 5080)),
    ],
)  # fmt: skip
def test_request_target(uri: str, routes: tuple[str, ...], expected: Target) -> None:
    assert request_target(request(uri, *routes)) == expected


def test_tel_uri_has_no_target() -> None:
    with pytest.raises(TransportError):
        request_target(request("tel:+15551234"))


class FakeTransport:
    name = "UDP"
    reliable = False


@pytest.mark.parametrize(
    ("via", "expected"),
    [
        ("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa;received=192.0.2.1;rport=4000", ("192.0.2.1", 4000)),
        ("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa;received=192.0.2.1", ("192.0.2.1", 5070)),
        ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa", ("192.0.2.1", 5060)),
        # Never a third party, whatever the Via claims (received, sent-by).
        ("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa;received=203.0.113.9", ("192.0.2.1", 5070)),
        ("SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bKa", ("192.0.2.1", 5070)),
    ],
)
def test_response_address(via: str, expected: tuple[str, int]) -> None:
    source = Source(FakeTransport(), "192.0.2.1", 4000)  # type: ignore[arg-type]
    assert response_address(parse_via(via), source) == expected
    FakeTransport.reliable = True
    try:  # reliable: back over the connection, whatever the Via says
        assert response_address(parse_via(via), source) == ("192.0.2.1", 4000)
    finally:
        FakeTransport.reliable = False


async def test_resolve_names_and_literals() -> None:
    assert await resolve(Target("UDP", "127.0.0.1", 5060)) == [("127.0.0.1", 5060)]
    assert ("127.0.0.1", 5062) in await resolve(Target("UDP", "localhost", 5062))
    with pytest.raises(TransportError):
        await resolve(Target("UDP", "no-such-host.invalid", 5060))


def test_trusted_sources() -> None:
    policy = TrustedSources([ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")])
    options = request("sip:x@gw")
    for host, decision in [
        ("10.1.2.3", Accept()),
        ("::ffff:10.1.2.3", Accept()),  # IPv4-mapped, from a dual-stack socket
        ("2001:db8::5", Accept()),
        ("192.0.2.1", Reject(403, "Forbidden")),
    ]:
        assert policy.check(options, Source(FakeTransport(), host, 5060)) == decision  # type: ignore[arg-type]
    in_dialog = TrustedSources([], in_dialog=lambda r: r.method == "BYE")
    bye = make_request("BYE", "sip:x@gw")
    assert in_dialog.check(bye, Source(FakeTransport(), "192.0.2.1", 5060)) == Accept()  # type: ignore[arg-type]


async def test_empty_trusted_sources_mean_only_the_pbx() -> None:
    config = config_from_mapping({"pbx": {"address": "localhost:5060"}}, {}, Path("."))
    policy = await TrustedSources.from_config(config.sip, config.pbx)
    assert policy.trusts("127.0.0.1") and not policy.trusts("192.0.2.1")
    config = config_from_mapping({"sip": {"trusted_sources": ["192.0.2.0/24"]}}, {}, Path("."))
    policy = await TrustedSources.from_config(config.sip, config.pbx)
    assert policy.trusts("192.0.2.1") and not policy.trusts("127.0.0.1")


async def test_layer_from_config() -> None:
    port = free_port()
    config = config_from_mapping(
        {
            "sip": {
                "listen": [
                    {"transport": "udp", "host": "127.0.0.1", "port": port},
                    {"transport": "tcp", "host": "127.0.0.1", "port": port},
                ],
                "public_address": "gw.example.org:5999",
                "user_agent": "gw-test",
            },
            "pbx": {"address": "127.0.0.1"},
        },
        {},
        Path("."),
    )
    tu = TestUA()
    layer = await TransactionLayer.from_config(config, tu)
    peer = await RawUdp.open()
    try:
        assert [(t.name, t.local) for t in layer.transports] == [
            ("UDP", ("127.0.0.1", port)),
            ("TCP", ("127.0.0.1", port)),
        ]
        peer.send(raw("OPTIONS"), ("127.0.0.1", port))  # 127.0.0.1 is the PBX: trusted
        await peer.response(200)
        via = layer.via_for(layer.transports[0])
        assert (via.host, via.port, via.param("rport")) == ("gw.example.org", 5999, "")
        handle = await layer.request(make_request("OPTIONS", f"sip:x@127.0.0.1:{peer.port}"))
        sent = await peer.recv()
        assert isinstance(sent, Request) and sent.headers.get("User-Agent") == "gw-test"
        assert sent.headers.get("Max-Forwards") == "70" and handle.final is None
    finally:
        peer.close()
        await layer.close()


class ManualScheduler:
    """A clock the test moves by hand."""

    class Handle:
        def __init__(self) -> None:
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.time = 1000.0
        self._heap: list[tuple[float, int, Callable[[], None], ManualScheduler.Handle]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def call_at(self, when: float, callback: Callable[[], None]) -> ManualScheduler.Handle:
        handle = self.Handle()
        heapq.heappush(self._heap, (when, next(self._order), callback, handle))
        return handle

    def advance(self, seconds: float) -> None:
        end = self.time + seconds
        while self._heap and self._heap[0][0] <= end:
            when, _, callback, handle = heapq.heappop(self._heap)
            self.time = max(self.time, when)
            if not handle.cancelled:
                callback()
        self.time = end


async def test_timers_run_on_the_injected_clock() -> None:
    """Timer A doubles from T1, Timer B gives 408 at 64*T1 = 32 s: seven INVITEs (0, 0.5, 1.5, 3.5,
    7.5, 15.5, 31.5 s), all without waiting."""
    scheduler = ManualScheduler()
    layer = TransactionLayer(TestUA(), policy=AcceptAll(), scheduler=scheduler, timers=TimerConfig())
    layer.attach(await UdpTransport.bind("127.0.0.1", 0, layer.receive))
    peer = await RawUdp.open()
    try:
        handle = await layer.request(make_request("INVITE", f"sip:x@127.0.0.1:{peer.port}"))
        for _ in range(63):
            scheduler.advance(0.5)
        await asyncio.sleep(0.1)
        assert handle.final is None and len(peer.raw) == 7
        scheduler.advance(0.5)
        final = await asyncio.wait_for(handle.final_response(), 1)
        assert final.status == 408 and handle.failure is Notice.TIMEOUT
        assert all(parse_message(data) == parse_message(peer.raw[0]) for data in peer.raw)
        assert layer.pending == 0
    finally:
        peer.close()
        await layer.close()


class TwoHops:
    """A resolver whose every name locates to the same two hops, in this order (a first and a second
    SRV target)."""

    def __init__(self, *ports: int) -> None:
        self.hops = [Hop("UDP", ("127.0.0.1", port)) for port in ports]

    async def locate(self, target: Target, supported: object) -> list[Hop]:
        return list(self.hops)


@contextlib.asynccontextmanager
async def two_hops() -> AsyncIterator[tuple[TransactionLayer, ManualScheduler, RawUdp, RawUdp]]:
    """A layer on an injected clock whose every name locates to a first hop and a second one (raw
    sockets that answer only when the test says so)."""
    scheduler = ManualScheduler()
    layer = TransactionLayer(TestUA(), policy=AcceptAll(), scheduler=scheduler, timers=TimerConfig())
    layer.attach(await UdpTransport.bind("127.0.0.1", 0, layer.receive))
    first, second = await RawUdp.open(), await RawUdp.open()
    layer.resolver = TwoHops(first.port, second.port)  # type: ignore[assignment]
    try:
        yield layer, scheduler, first, second
    finally:
        first.close()
        second.close()
        await layer.close()


async def got(peer: RawUdp, answer: int | None = None) -> Request:
    """The next request ``peer`` received, answered with ``answer`` (None: silence)."""
    message = await asyncio.wait_for(peer.queue.get(), 1)
    assert isinstance(message, Request) and message.top_via is not None
    if answer is not None:
        via = message.top_via
        peer.send(make_response(message, answer).serialize(), (via.host, via.port or 5060))
    return message


async def test_a_hop_that_let_an_invite_time_out_is_tried_last_for_a_minute() -> None:
    """A silent first target (no ICMP: blackholed) costs one Timer B before the failover; the requests
    after it go to the second target first, until the blocklist entry expires (60 s)."""
    async with two_hops() as (layer, scheduler, silent, live):
        first = await layer.request(make_request("INVITE", "sip:pbx.test"))
        assert (await got(silent)).method == "INVITE" and live.queue.empty()
        scheduler.advance(32)  # Timer B: the same INVITE goes to the second target (RFC 3263 §4.3)
        assert (await got(live, 486)).call_id == first.request.call_id
        assert (await first.final_response()).status == 486
        assert (await got(live)).method == "ACK"
        second = await layer.request(make_request("OPTIONS", "sip:pbx.test"))
        assert (await got(live, 200)).call_id == second.request.call_id  # straight to the live one
        assert (await second.final_response()).status == 200
        assert second.alternatives == [(layer.transports[0], ("127.0.0.1", silent.port))]  # still there
        scheduler.advance(59)  # 91 s: still blocklisted (since 32 s, for 60 s)
        third = await layer.request(make_request("OPTIONS", "sip:pbx.test"))
        assert (await got(live, 200)).call_id == third.request.call_id
        assert (await third.final_response()).status == 200
        scheduler.advance(2)  # 93 s: expired, DNS's order again
        fourth = await layer.request(make_request("OPTIONS", "sip:pbx.test"))
        assert fourth.destination == ("127.0.0.1", silent.port)
        await asyncio.sleep(0.05)
        seen = [silent.queue.get_nowait() for _ in range(silent.queue.qsize())]
        assert {message.call_id for message in seen} == {first.request.call_id, fourth.request.call_id}


async def test_a_non_invite_timeout_does_not_blocklist_its_hop() -> None:
    """A proxy sends no 100 for a MESSAGE or BYE it forwards to a dead UA: Timer F there says nothing
    about the proxy (Kamailio's blst_methods_add default: INVITE only)."""
    async with two_hops() as (layer, scheduler, first, second):
        request = await layer.request(make_request("OPTIONS", "sip:pbx.test"))
        await got(first)
        scheduler.advance(32)  # Timer F: failover all the same
        await got(second, 200)
        assert (await request.final_response()).status == 200
        again = await layer.request(make_request("OPTIONS", "sip:pbx.test"))
        assert again.destination == ("127.0.0.1", first.port) and not layer.client.blocklist


async def test_a_response_from_a_suspected_hop_takes_it_off_the_blocklist() -> None:
    """The keep-alive gave up on a slow answer (UserAgent.probe): its late 200 clears the entry."""
    async with two_hops() as (layer, _, slow, second):
        request = await layer.request(make_request("OPTIONS", "sip:pbx.test"))
        message = await got(slow)
        layer.client.suspect(layer.transports[0], ("127.0.0.1", slow.port))
        assert layer.client.blocked(layer.transports[0], ("127.0.0.1", slow.port))
        next_one = await layer.request(make_request("OPTIONS", "sip:pbx.test"))
        assert next_one.destination == ("127.0.0.1", second.port)
        assert message.top_via is not None
        slow.send(
            make_response(message, 200).serialize(), (message.top_via.host, message.top_via.port or 5060)
        )
        assert (await request.final_response()).status == 200
        assert not layer.client.blocked(layer.transports[0], ("127.0.0.1", slow.port))
        last = await layer.request(make_request("OPTIONS", "sip:pbx.test"))
        assert last.destination == ("127.0.0.1", slow.port)
