"""Fails when an aiortc/aioice upgrade changes an internal the media bridge relies on.

Each private hook of ``gateway.media.aiortc_hooks`` is checked twice: that the attribute or call shape
still exists, and that it still behaves (two aiortc peers on 127.0.0.1, raw payloads through them).
"""

from __future__ import annotations

import asyncio
import inspect

import aioice
import aiortc
from aioice import Connection
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import CODECS
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtpPacket as AiortcRtpPacket

from gateway.media import aiortc_hooks


def test_pinned_versions() -> None:
    assert aiortc.__version__.startswith("1.16."), aiortc.__version__
    assert aioice.__version__.startswith("0.13."), aioice.__version__


def test_receiver_internals_exist() -> None:
    handler = RTCRtpReceiver._handle_rtp_packet
    assert inspect.iscoroutinefunction(handler)
    assert list(inspect.signature(handler).parameters) == ["self", "packet", "arrival_time_ms"]
    source = inspect.getsource(RTCRtpReceiver.__init__)
    assert "self.__remote_streams" in source
    assert "receiver._handle_rtp_packet(packet, arrival_time_ms=" in inspect.getsource(
        aiortc.rtcdtlstransport.RTCDtlsTransport._handle_rtp_data
    )
    stats = StreamStatistics(8000)
    stats.add(AiortcRtpPacket(payload_type=0, sequence_number=1, timestamp=160, ssrc=1))
    assert stats.packets_received == 1


def test_sender_internals_exist() -> None:
    source = inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "await self.__track.recv()" in source
    assert "self.__encoder.pack(data)" in source
    run = inspect.getsource(RTCRtpSender._run_rtp)
    # the payload type is read from the codec object for every packet, after _next_encoded_frame
    assert "payload_type=codec.payloadType" in run
    assert "self._next_encoded_frame(codec)" in run
    assert "self._run_rtp(parameters.codecs[0])" in inspect.getsource(RTCRtpSender.send)


def test_ice_internals_exist() -> None:
    params = inspect.signature(Connection.get_component_candidates).parameters
    assert "addresses" in params
    assert "addresses=addresses" in inspect.getsource(Connection.gather_candidates)
    assert "127.0.0.1" in inspect.getsource(aioice.ice.get_host_addresses)  # still skips loopback
    assert "self._connection = gatherer._connection" in inspect.getsource(aiortc.RTCIceTransport.__init__)


def test_telephone_event_registration_is_idempotent() -> None:
    aiortc_hooks.register_telephone_event()
    aiortc_hooks.register_telephone_event()
    events = [c for c in CODECS["audio"] if c.mimeType.lower() == "audio/telephone-event"]
    assert sorted((c.clockRate, c.payloadType) for c in events) == [(8000, 126), (48000, 110)]
    names = [c.mimeType for c in RTCRtpSender.getCapabilities("audio").codecs]
    assert names.count("audio/telephone-event") == 2


async def test_hooks_carry_raw_payloads_and_telephone_events_between_two_peers() -> None:
    aiortc_hooks.register_telephone_event()
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        ta = a.addTransceiver("audio", "sendrecv")
        tb = b.addTransceiver("audio", "sendrecv")
        caps = RTCRtpSender.getCapabilities("audio").codecs
        ta.setCodecPreferences(
            [c for c in caps if c.name in ("PCMU", "telephone-event") and c.clockRate == 8000]
        )
        for pc in (a, b):
            aiortc_hooks.restrict_host_addresses(pc, ["127.0.0.1"])
        track = aiortc_hooks.PacketTrack(8000)
        aiortc_hooks.attach_packet_track(ta.sender, track)
        got: list[AiortcRtpPacket] = []
        aiortc_hooks.tap_receiver(tb.receiver, lambda p: got.append(p) or True)
        await a.setLocalDescription(await a.createOffer())
        assert "a=candidate:" in a.localDescription.sdp and " 127.0.0.1 " in a.localDescription.sdp
        assert "telephone-event/8000" in a.localDescription.sdp
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        for _ in range(200):
            if track.started:
                break
            await asyncio.sleep(0.01)
        assert track.started and track.payload_type == 0
        for i in range(10):
            track.push(bytes([i]) * 160, 1000 + 160 * i, 126 if i == 4 else None)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)
        assert [p.payload[0] for p in got] == list(range(10))  # raw bytes, not re-encoded
        assert [p.payload_type for p in got] == [0, 0, 0, 0, 126, 0, 0, 0, 0, 0]
        assert {(p.timestamp - got[0].timestamp) % 2**32 for p in got} == {160 * i for i in range(10)}
        assert [(p.sequence_number - got[0].sequence_number) % 65536 for p in got] == list(range(10))
        streams = tb.receiver._RTCRtpReceiver__remote_streams
        assert streams[got[0].ssrc].packets_received == 10  # receiver reports still have statistics
    finally:
        await a.close()
        await b.close()


async def test_without_the_loopback_knob_aioice_gathers_no_loopback_candidate() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        assert " 127.0.0.1 " not in pc.localDescription.sdp
    finally:
        await pc.close()
