"""The web leg's ICE sockets in the configured range (gateway/media/webrtc/ice_ports.py, issue 36).

A real aiortc peer (``WebPeer``) connects to the web leg; what is checked is what aioice holds: the
local candidates of every ICE connection of the leg's peer connection, and the sockets' own addresses.
A TURN allocation over UDP against a real coturn runs from a socket of the range too (coturn sees the
allocation come from that port: the relayed candidate's related address). The ranges are small and
this test's own: a pair held elsewhere is refused by the allocator's bind, as for another process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCIceServer

import sdp
from gateway.config.errors import ConfigError
from gateway.config.loader import config_from_mapping
from gateway.media.errors import PortAllocationError
from gateway.media.events import MediaConnected, MediaEvent
from gateway.media.rtp.ports import PortRange, RtpPortAllocator
from gateway.media.webrtc import aiortc_hooks
from gateway.media.webrtc.web_leg_state import IceSocketsError, WebLegState
from peers.coturn import running_coturn
from peers.ports import free_range
from peers.webpeer import WebPeer
from tests.e2e.media.test_media_ports import all_free
from tests.gateway.test_config import DATA as DATA_CONFIG
from tests.gateway.test_config import run_check
from tests.media.webrtc.test_webrtc_leg import AUDIO, PCMU, make_leg, with_data_channel

PAIRS = 4


def small_range() -> RtpPortAllocator:
    start = free_range(2 * PAIRS)
    return RtpPortAllocator(PortRange(start, start + 2 * PAIRS - 1))


def in_range(ports: RtpPortAllocator, port: int) -> bool:
    return ports.port_range.minimum <= port <= ports.port_range.maximum


def local_ports(leg: object) -> list[int]:
    """The ports of every local candidate of every ICE connection of the leg's peer connection."""
    pc = leg._pc  # type: ignore[attr-defined]
    return [c.port for conn in aiortc_hooks.ice_connections(pc) for c in conn.local_candidates]


def bindable(ports: RtpPortAllocator) -> bool:
    return all_free(range(ports.port_range.minimum, ports.port_range.maximum + 1))


async def connected(events: list[MediaEvent]) -> None:
    for _ in range(500):
        if MediaConnected() in events:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the web leg did not connect: {events}")


async def test_the_leg_answers_and_connects_from_a_port_of_the_range_and_gives_it_back() -> None:
    ports, events = small_range(), list[MediaEvent]()
    leg = make_leg(events, ports=ports)
    peer = WebPeer()
    try:
        answer = await leg.accept_offer(sdp.parse(await peer.offer()), PCMU)
        candidates = [c.port for c in answer.media[0].candidates]
        assert candidates and all(in_range(ports, p) for p in candidates), candidates
        assert local_ports(leg) == candidates == list(leg.ice_sockets.ports)
        assert ports.held_by("t") == 1 and len(ports.held) == 1  # one host address, one pair
        await peer.accept(sdp.write(answer))
        await connected(events)
        # the browser's checks and DTLS came to that socket: its nominated pair is the leg's one port
        pair = aiortc_hooks.ice_connection(leg._pc)._nominated[1]
        assert pair.protocol.transport.get_extra_info("sockname")[1] == candidates[0]
        # an ICE restart in place (a browser's new credentials) keeps the socket: nothing new leased
        fragment = leg.restart_ice(sdp.IceParameters("rstrt", "restartrestartrestart01"))
        assert [c.port for _, c in fragment.candidates()] == candidates and len(ports.held) == 1
    finally:
        await peer.close()
        await leg.close()
    assert not ports.held and ports.available == PAIRS and leg.ice_sockets.ports == ()
    assert bindable(ports)


async def test_every_transport_of_our_offer_gathers_in_the_range() -> None:
    """Our offer with a data channel (calls to a web user): aiortc gathers one ICE transport per m-line
    until the answer bundles them; each is in the range, the unbundled one gives its pair back."""
    ports = small_range()
    leg = make_leg([], ports=ports, data_channel=True)
    peer = WebPeer()
    try:
        offer = await leg.create_offer(PCMU)
        assert len(offer.media) == 2
        gathered = local_ports(leg)
        assert len(gathered) == 2 and all(in_range(ports, p) for p in gathered), gathered
        assert len(ports.held) == 2
        await leg.accept_answer(sdp.parse(await peer.answer(sdp.write(offer))))
        await asyncio.sleep(0)  # aiortc stops the bundled-away transport
        assert len(ports.held) == 1 and local_ports(leg) == list(leg.ice_sockets.ports)
    finally:
        await peer.close()
        await leg.close()
    assert not ports.held


async def test_a_full_range_fails_the_answer_with_503_and_keeps_nothing() -> None:
    ports = small_range()
    others = [ports.allocate("127.0.0.1", owner="other") for _ in range(PAIRS)]
    leg = make_leg([], ports=ports)
    try:
        with pytest.raises(IceSocketsError, match="cannot open ICE sockets: no free RTP port pair") as info:
            await leg.accept_offer(sdp.parse(AUDIO), PCMU)
        assert info.value.sip_status == 503
        assert leg.ice_sockets.ports == () and ports.held_by("t") == 0
    finally:
        await leg.close()
        for lease in others:
            lease.release()
    assert not ports.held


async def test_reserve_takes_the_pair_before_gathering_which_then_uses_it() -> None:
    ports = small_range()
    leg = make_leg([], ports=ports)
    try:
        leg.ice_sockets.reserve()
        (reserved,) = leg.ice_sockets.ports
        leg.ice_sockets.reserve()  # once
        assert ports.held == {reserved}
        answer = await leg.accept_offer(sdp.parse(with_data_channel(AUDIO)), PCMU)
        assert [c.port for c in answer.media[0].candidates] == [reserved] and ports.held == {reserved}
    finally:
        await leg.close()
    assert not ports.held
    others = [ports.allocate("127.0.0.1") for _ in range(PAIRS)]
    leg = make_leg([], ports=ports)
    try:
        with pytest.raises(PortAllocationError, match="no free RTP port pair"):  # 503 for the call
            leg.ice_sockets.reserve()
        assert leg.state is WebLegState.NEW
    finally:
        await leg.close()
        for lease in others:
            lease.release()


async def test_without_a_range_the_os_picks_as_before() -> None:
    leg = make_leg([])
    try:
        answer = await leg.accept_offer(sdp.parse(AUDIO), PCMU)
        assert answer.media[0].candidates and leg.ice_sockets.ports == ()
    finally:
        await leg.close()


async def test_a_turn_allocation_over_udp_runs_from_a_port_of_the_range(tmp_path: Path) -> None:
    secret = "ice-ports-turn-secret-0123456789"
    username = f"{int(time.time()) + 600}:gateway"
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    ports = small_range()
    with running_coturn(tmp_path, secret) as turn:
        leg = make_leg([], ports=ports, ice_servers=(RTCIceServer(turn.url, username, password),))
        try:
            answer = await leg.accept_offer(sdp.parse(AUDIO), PCMU)
            relayed = [c for c in answer.media[0].candidates if c.type == "relay"]
            assert relayed, [c.to_sdp() for c in answer.media[0].candidates]
            # coturn saw the allocation come from the leased client socket (XOR-MAPPED-ADDRESS)
            assert in_range(ports, relayed[0].related_port or 0), relayed[0].to_sdp()
            assert relayed[0].related_port in leg.ice_sockets.ports and len(ports.held) == 2
            assert turn.allocations() >= 1
        finally:
            await leg.close()
    assert not ports.held


def test_web_ports_is_checked_against_rtp_ports() -> None:
    base: dict[str, Any] = {
        "pbx": {"address": "pbx.example.org"},
        "media": {"rtp_ports": {"start": 20000, "end": 20999}},
    }
    config = config_from_mapping(
        {**base, "media": {**base["media"], "web_ports": {"start": 30000, "end": 30099}}}, {}
    )
    assert (config.media.web_ports.start, config.media.web_ports.end) == (30000, 30099)  # type: ignore[union-attr]
    assert config_from_mapping(base, {}).media.web_ports is None
    env = {"GATEWAY_MEDIA__WEB_PORTS__START": "40000", "GATEWAY_MEDIA__WEB_PORTS__END": "40099"}
    assert config_from_mapping(base, env).media.web_ports.start == 40000  # type: ignore[union-attr]
    for web, error in (
        ({"start": 20900, "end": 21999}, "media.web_ports: 20900-21999 overlaps media.rtp_ports 20000-20999"),
        ({"start": 30001, "end": 30099}, "media.web_ports.start: must be even"),
        ({"start": 30000, "end": 30009}, "media.web_ports: range 30000-30009 holds 5 RTP/RTCP pairs"),
    ):
        with pytest.raises(ConfigError) as info:
            config_from_mapping({**base, "media": {**base["media"], "web_ports": web}}, {})
        assert any(line.startswith(error) for line in info.value.errors), info.value.errors


def test_check_names_the_ranges_media_uses(tmp_path: Path) -> None:
    base = (DATA_CONFIG / "minimal.yaml").read_text()
    for media, lines in (
        ("", ["RTP ports:         10000-20000 (5000 RTP/RTCP pairs) for all media, the browsers' ICE too"]),
        (
            "media: {web_ports: {start: 30000, end: 30099}}\n",
            ["RTP ports:         10000-20000 (5000 RTP/RTCP pairs)\n", "web media ports:   30000-30099"],
        ),
    ):
        path = tmp_path / "gateway.yaml"
        path.write_text(base + media)
        code, out, _ = run_check(path, {})
        assert code == 0 and all(line in out for line in lines), out
