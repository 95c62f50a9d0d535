"""The browser nominates another ICE pair while the fast lane is linked (RFC 8445 §8.1.1: the controlling
agent may nominate again; Chromium does when one of its other candidates' checks succeeds late, e.g. its
127.0.0.1 candidate beside its host address on a loaded machine): its media then come from another
address, which the armed lanes refuse (a lane takes packets from the address it was armed with only).
The controller must follow the pair aioice now has nominated: link again with it and carry the browser's
media on the engine, not leave every packet after the move to the Python path for the rest of the call.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
from aioice.candidate import Candidate

from gateway.media.rtp.ports import RtpPortAllocator
from gateway.media.webrtc import aiortc_hooks
from peers.video_phone import PlainVideoPeer
from peers.webpeer import WebPeer
from tests.media.bridge_harness import WEB_TONE, Call
from tests.media.fastlane.test_fastpath import TO_SIP, TO_WEB, counters, linked, ports, until
from tests.media.video.test_video_escalation import audio_call, check_video_both_ways, escalate

__all__ = ["ports"]  # the fixture


async def browser_moves(call: Call) -> tuple[str, int]:
    """The browser checks a new candidate pair from a socket of its own and nominates it (aggressive
    nomination, as aioice's controlling agent does): its media leave from there and the bridge's aioice
    nominates the pair too (a peer-reflexive candidate, its triggered check). The new address."""
    client = aiortc_hooks.ice_connection(call.web.pc)
    server = aiortc_hooks.ice_connection(call.bridge._web._pc)
    old = client._nominated[1]
    _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: aioice.ice.StunProtocol(client), local_addr=("127.0.0.1", 0)
    )
    host, port = protocol.transport.get_extra_info("sockname")[:2]
    protocol.local_candidate = Candidate(
        foundation="moved", component=1, transport="udp", priority=2**24, host=host, port=port, type="host"
    )
    client._protocols.append(protocol)  # closed with the connection
    pair = aioice.ice.CandidatePair(protocol, old.remote_candidate)
    client._check_list.append(pair)
    await client.check_start(pair)
    assert client._nominated[1] is pair, "the browser's check of the new pair failed"
    await until(
        lambda: tuple(server._nominated[1].remote_addr) == (host, port), what="the new pair nominated"
    )
    return host, port


async def test_the_lanes_follow_a_pair_the_browser_nominates_after_the_link(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await call.play(0.5)
        assert counters(call)[TO_SIP] >= 15  # the engine carries the browser's media

        moved = await browser_moves(call)
        await asyncio.sleep(0.1)  # the browser's first packets from the new address: the Python path's
        link, before, heard = call.link, counters(call)[TO_SIP], call.phone.frames
        await call.play(1.0)  # 50 packets of the browser's tone meanwhile

        fast = call.bridge.fast_lane
        assert fast is not None and call.link is not None
        # the engine carries them again (a new link counts from 0)
        carried = counters(call)[TO_SIP] - (before if call.link is link else 0)
        frames = call.phone.frames - heard
        assert carried >= 0.8 * frames >= 32, (carried, frames, call.link is link, fast.remote, moved)
        assert fast.remote == moved  # with the pair now nominated
        assert call.phone.heard(WEB_TONE)
    finally:
        await call.close()


async def test_the_video_lane_follows_a_pair_the_browser_nominates_after_the_link(
    ports: RtpPortAllocator,
) -> None:
    """The same with video (what Chromium's fast-lane test saw: the browser's video lane forwarded a few
    packets, then every later one went the Python way): an audio call escalated to VP8 both ways."""
    call = Call(ports, call_id="pair-video", video_codecs=("VP8",))
    call.web = WebPeer(WEB_TONE, camera=True)
    camera = PlainVideoPeer("VP8")
    await camera.start()
    try:
        phone_sdp = await audio_call(call, "browser")
        await escalate(call, camera, phone_sdp)
        await linked(call)
        await check_video_both_ways(call, camera)

        await browser_moves(call)
        await asyncio.sleep(0.1)
        link, video = call.link, call.bridge.video
        assert link is not None and video is not None
        before, forwarded = link.native.video_counters()[0], video.to_sip.forwarded
        await check_video_both_ways(call, camera)

        assert call.link is not None
        carried = call.link.native.video_counters()[0] - (before if call.link is link else 0)
        sent = video.to_sip.forwarded - forwarded
        assert carried >= 0.8 * sent >= 20, (carried, sent, call.link is link)
    finally:
        camera.close()
        await call.close()


class _Counting(aioice.ice.StunProtocol):
    """A socket of an aioice connection that counts the media (not STUN) it receives."""

    media = 0

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if not (isinstance(data, bytes) and data and data[0] < 4):  # RFC 7983: 0-3 is STUN
            self.media += 1
        super().datagram_received(data, addr)


async def _socket(connection: aioice.ice.Connection, foundation: str) -> _Counting:
    """A new host socket of ``connection`` on 127.0.0.1, as if gathered (closed with the connection)."""
    _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Counting(connection), local_addr=("127.0.0.1", 0)
    )
    host, port = protocol.transport.get_extra_info("sockname")[:2]
    protocol.local_candidate = Candidate(
        foundation=foundation, component=1, transport="udp", priority=2**24, host=host, port=port, type="host"
    )
    connection._protocols.append(protocol)
    return protocol


async def test_the_lanes_follow_a_pair_on_another_gateway_socket(ports: RtpPortAllocator) -> None:
    """Chromium switches its selected pair to one on another of the gateway's sockets (its IPv6 pair after
    an IPv4 one, the CI failure of test_softphone_ice_restart): no packet reaches the linked socket from
    the new address, so nothing is punted to Python; the nomination itself (no restart before it) must
    move the link to the new pair, and the phone's audio to the browser's new address. The browser sends
    no RTP at all (a raw peer that plays nothing), so nothing but the nomination can move the link."""
    call = Call(ports)
    call.web = WebPeer(WEB_TONE, raw=True)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        client = aiortc_hooks.ice_connection(call.web.pc)
        server = aiortc_hooks.ice_connection(call.bridge._web._pc)
        old = server._nominated[1]
        assert call.bridge.web_media_address() == tuple(old.remote_addr)

        gateway, browser = await _socket(server, "gateway2"), await _socket(client, "browser2")
        remote = Candidate(
            foundation="gateway2", component=1, transport="udp", priority=2**24,
            host=gateway.local_candidate.host, port=gateway.local_candidate.port, type="host",
        )  # fmt: skip
        remote._network_host = remote.host
        pair = aioice.ice.CandidatePair(browser, remote)
        client._check_list.append(pair)
        await asyncio.wait_for(client.check_start(pair), 5)  # its check nominates the pair (USE-CANDIDATE)
        assert client._nominated[1] is pair, "the browser's check of the new pair failed"
        await until(lambda: server._nominated[1].protocol is gateway, what="the gateway's new pair nominated")
        moved = tuple(browser.transport.get_extra_info("sockname")[:2])

        await until(lambda: call.bridge.web_media_address() == moved, 2.0, "the fast lane to follow the pair")
        fast = call.bridge.fast_lane
        assert fast is not None and fast._pair is server._nominated[1] and call.link is not None
        before = counters(call)[TO_WEB]
        await call.play(0.5)
        assert counters(call)[TO_WEB] >= before + 15  # on the engine, from the gateway's new socket
        assert browser.media >= 15, browser.media  # to the browser's new address
    finally:
        await call.close()
