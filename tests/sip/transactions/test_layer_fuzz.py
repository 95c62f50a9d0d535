"""Whatever arrives from the network, the layer answers or drops it and never fails: mutated and
reordered messages fed to a layer over an in-memory transport (hypothesis)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sip.transactions.layer import TransactionLayer
from gateway.sip.transactions.policy import AcceptAll
from gateway.sip.transports.transport import ErrorCallback, Source
from sipcore import parse_message
from sipcore.location.routing import Address
from sipcore.syntax.parser import Framing
from tests.conftest import examples
from tests.sip.layer_ua import TestUA
from tests.sip.transactions.test_layer_routing import ManualScheduler


class MemoryTransport:
    name = "UDP"
    reliable = False
    framing = Framing.DATAGRAM
    local: Address = ("127.0.0.1", 5060)

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address]] = []

    def send(self, data: bytes, destination: Address, on_error: ErrorCallback | None = None) -> None:
        self.sent.append((data, destination))

    async def close(self) -> None:
        pass


BASE = {
    "INVITE": "INVITE sip:uas@127.0.0.1 SIP/2.0",
    "ACK": "ACK sip:uas@127.0.0.1 SIP/2.0",
    "CANCEL": "CANCEL sip:uas@127.0.0.1 SIP/2.0",
    "BYE": "BYE sip:uas@127.0.0.1 SIP/2.0",
    "OPTIONS": "OPTIONS sip:uas@127.0.0.1 SIP/2.0",
    "200": "SIP/2.0 200 OK",
    "180": "SIP/2.0 180 Ringing",
}


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(sorted(BASE)))
    method = kind if not kind.isdigit() else draw(st.sampled_from(["INVITE", "BYE"]))
    branch = draw(st.sampled_from(["z9hG4bK1", "z9hG4bK2", "z9hG4bK", "old-style", ""]))
    to_tag = draw(st.sampled_from(["", ";tag=t1"]))
    lines = [
        BASE[kind],
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch={branch}",
        f"Max-Forwards: {draw(st.sampled_from(['70', '0', 'x']))}",
        "From: <sip:a@127.0.0.1>;tag=f1",
        f"To: <sip:uas@127.0.0.1>{to_tag}",
        f"Call-ID: {draw(st.sampled_from(['c1', 'c2']))}",
        f"CSeq: {draw(st.sampled_from(['1', '2']))} {method}",
    ]
    lines = draw(st.permutations(lines[1:]).map(lambda rest: [lines[0], *rest]))
    dropped = draw(st.integers(min_value=-1, max_value=len(lines) - 1))
    if dropped > 0:
        del lines[dropped]
    data = ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()
    if draw(st.booleans()):
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data = data[:position] + draw(st.binary(min_size=1, max_size=3)) + data[position + 1 :]
    return data


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(st.tuples(messages(), st.floats(min_value=0, max_value=40)), min_size=1, max_size=8))
def test_layer_never_fails_on_network_input(
    batch: list[tuple[bytes, float]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()

    async def feed() -> None:
        scheduler = ManualScheduler()
        tu = TestUA()
        layer = TransactionLayer(tu, policy=AcceptAll(), scheduler=scheduler)
        transport = MemoryTransport()
        layer.attach(transport)
        tu.layer = layer
        for data, delay in batch:
            layer.receive(data, Source(transport, "127.0.0.1", 5070))
            await asyncio.sleep(0)  # let the TU answer
            scheduler.advance(delay)
        for data, _ in transport.sent:
            if not data.startswith(b"SIP/2.0 400 "):  # a 400 copies the broken header it names
                parse_message(data)
        await layer.close()

    with caplog.at_level(logging.ERROR):
        asyncio.run(feed())
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
