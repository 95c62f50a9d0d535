"""Fails when an aiortc/aioice upgrade changes an internal the media bridge relies on.

Each private hook of ``gateway.media.webrtc.aiortc_hooks`` is checked twice: that the attribute or call shape
still exists, and that it still behaves (two aiortc peers on 127.0.0.1, raw payloads through them).
"""

from __future__ import annotations

import asyncio
import inspect
import struct
import threading
import time
import types
from typing import Any

import aioice
import aiortc
import aiortc.rtcrtpreceiver
import pylibsrtp
import pytest
from aioice import Connection
from aioice.ice import StunProtocol
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import CODECS, HEADER_EXTENSIONS
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtcpSdesPacket, RtcpSrPacket
from aiortc.rtp import RtpPacket as AiortcRtpPacket

from gateway.media.fastlane.engine import SerializedSrtp
from gateway.media.fastlane.native import STATS_AIORTC, available, replay
from gateway.media.webrtc import aiortc_direct, aiortc_hooks, aiortc_receive, aiortc_rtcp, ice_consent
from peers.binaries import in_ci, unavailable


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


def test_direct_sender_internals_exist() -> None:
    # what _run_rtp writes for audio: the codec's payload type, one payload per frame, extensions: mid only
    run = inspect.getsource(RTCRtpSender._run_rtp)
    assert "packet.extensions.mid = self.__mid" in run
    assert "packet.serialize(self.__rtp_header_extensions_map)" in run
    assert "if enc_frame.audio_level is not None" in run  # None for packets that are not encoded here
    assert [e.uri for e in HEADER_EXTENSIONS["audio"]] == [
        "urn:ietf:params:rtp-hdrext:sdes:mid",
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    ]  # so abs_send_time, also set by _run_rtp, is never written for audio
    assert "self.__rtp_header_extensions_map.configure(parameters)" in inspect.getsource(RTCRtpSender.send)
    # what RTCDtlsTransport._send_rtp and aioice do with it
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "self._state != State.CONNECTED" in send_rtp
    assert "data = self._tx_srtp.protect(data)" in send_rtp
    assert "await self.transport._send(data)" in send_rtp
    assert "self._send = self._connection.send" in inspect.getsource(aiortc.RTCIceTransport.__init__)
    assert "await self.sendto(data, 1)" in inspect.getsource(Connection.send)
    sendto = inspect.getsource(Connection.sendto)
    assert "active_pair = self._nominated.get(component)" in sendto
    assert "await active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert "self.transport.sendto(data, addr)" in inspect.getsource(StunProtocol.send_data)
    # sender reports: built from private counters, sent through the (wrapped) _send_rtcp
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    assert "packet_count=self.__packet_count & 0xFFFFFFFF" in rtcp
    assert "self.__lsr = ((self.__ntp_timestamp) >> 16) & 0xFFFFFFFF" in rtcp
    assert "await self._send_rtcp(packets)" in rtcp
    init = inspect.getsource(RTCRtpSender.__init__)
    for name in ("packet_count", "octet_count", "rtp_timestamp", "ntp_timestamp", "lsr"):
        assert f"self.__{name}: " in init or f"self.__{name} = " in init, name
    assert "self.__octet_count += len(payload)" in run  # octet count: payload octets only
    assert "if not self._enabled:" in inspect.getsource(RTCRtpSender._next_encoded_frame)


def test_direct_receiver_internals_exist() -> None:
    recv_next = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "elif first_byte > 127 and first_byte < 192 and self._rx_srtp:" in recv_next
    assert "data = self._rx_srtp.unprotect(data)" in recv_next
    # SRTCP: unprotected and handed to _handle_rtcp_data directly, counted as _recv_next counts it
    assert (
        "data = self._rx_srtp.unprotect_rtcp(data)\n                    await self._handle_rtcp_data(data)"
        in recv_next
    )
    assert "self.__rx_bytes += len(data)" in recv_next and "self.__rx_packets += 1" in recv_next
    assert inspect.getsource(aiortc.rtp.is_rtcp).count("msg[1] >= 192 and msg[1] <= 208") == 1
    assert "self.receiver.data_received(data, self.local_candidate.component)" in inspect.getsource(
        StunProtocol.datagram_received
    )
    assert "self._queue.put_nowait((data, component))" in inspect.getsource(Connection.data_received)
    assert "self._protocols: list[StunProtocol] = []" in inspect.getsource(Connection.__init__)
    receive = inspect.getsource(RTCRtpReceiver.receive)
    assert "self.__decoder_thread.start()" in receive
    # _IdleDecoderThread stands in for threading.Thread of aiortc.rtcrtpreceiver while receive() runs:
    # keyword arguments, the track's queue third in args, no await before it; the worker ends the track
    assert "self.__decoder_thread = threading.Thread(\n                target=decoder_worker," in receive
    assert "self.__decoder_queue,\n                    self._track._queue," in receive
    assert "await" not in receive.split("self.__started = True")[0].split('"""')[-1]
    assert "asyncio.run_coroutine_threadsafe(output_q.put(None), loop)" in inspect.getsource(
        aiortc.rtcrtpreceiver.decoder_worker
    )
    assert "self.__transport._register_rtp_receiver(self, parameters)" in receive
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "if not self._enabled:" in handle
    assert "if encoded_frame is not None and self.__decoder_thread:" in handle
    stop_decoder = RTCRtpReceiver._RTCRtpReceiver__stop_decoder  # type: ignore[attr-defined]
    assert "if self.__decoder_thread:" in inspect.getsource(stop_decoder)


def _aioice_host_addresses() -> Any:
    """aioice's own get_host_addresses, under the cache a gateway started earlier in this process may
    have put over it (aiortc_hooks.cache_host_addresses is process-wide)."""
    current = aioice.ice.get_host_addresses
    return getattr(current, "original", current)


def test_ice_internals_exist() -> None:
    params = inspect.signature(Connection.get_component_candidates).parameters
    assert "addresses" in params
    assert "addresses=addresses" in inspect.getsource(Connection.gather_candidates)
    assert "127.0.0.1" in inspect.getsource(_aioice_host_addresses())  # still skips loopback
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

        def keep(packet: AiortcRtpPacket) -> bool:
            got.append(packet)
            return True

        aiortc_hooks.tap_receiver(tb.receiver, keep)
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
        streams = tb.receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        assert streams[got[0].ssrc].packets_received == 10  # receiver reports still have statistics
        assert streams[got[0].ssrc]._clockrate == 8000  # PCMU's rate, as aiortc's own (not 48 kHz)
    finally:
        await a.close()
        await b.close()


async def test_direct_paths_carry_raw_payloads_and_sender_reports_between_two_peers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[str] = []  # the threads started meanwhile
    start = threading.Thread.start

    def counted(self: threading.Thread) -> None:
        started.append(self.name)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", counted)
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
        sender = aiortc_direct.attach_direct_sender(ta.sender)
        got: list[tuple[int, int, int, int, bool, bytes]] = []
        receiver = aiortc_receive.attach_direct_receiver(tb.receiver, lambda *fields: got.append(fields))
        slow: list[AiortcRtpPacket] = []

        def keep(packet: AiortcRtpPacket) -> bool:
            slow.append(packet)
            return True

        aiortc_hooks.tap_receiver(tb.receiver, keep)
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        for _ in range(200):
            if sender.started and receiver.started:
                break
            await asyncio.sleep(0.01)
        assert sender.started and receiver.started and sender.payload_type == 0
        decoder_thread = tb.receiver._RTCRtpReceiver__decoder_thread  # type: ignore[attr-defined]
        assert decoder_thread is None  # stopped: nothing to decode
        decoders = [name for name in started if name.endswith("-decoder")]
        assert len(decoders) == 1, started  # a's own receiver's: b's direct one never started one
        with pytest.raises(MediaStreamError):  # the track ended, as a stopped decoder thread ends it
            await asyncio.wait_for(tb.receiver.track.recv(), 1)
        assert sender.send(b"", 0)  # an empty payload is still a packet (aiortc would send it too)
        await asyncio.sleep(0.1)
        assert len(got) == 1 and got[0][5] == b""
        got.clear()
        for i in range(10):
            assert sender.send(bytes([i]) * 160, 1000 + 160 * i, 126 if i == 4 else None, marker=i in (0, 4))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        assert not slow  # nothing took aiortc's queue and receiver path
        assert [g[5][0] for g in got] == list(range(10)) and all(len(g[5]) == 160 for g in got)
        assert [g[3] for g in got] == [0, 0, 0, 0, 126, 0, 0, 0, 0, 0]
        assert [g[4] for g in got] == [i in (0, 4) for i in range(10)]
        assert [g[2] for g in got] == [1000 + 160 * i for i in range(10)]
        assert [(g[1] - got[0][1]) % 65536 for g in got] == list(range(10))
        assert {g[0] for g in got} == {ta.sender._ssrc}
        streams = tb.receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        assert streams[ta.sender._ssrc].packets_received == 11  # receiver reports still have statistics
        # the sender report carries our counts (RTCP every 0.5-1.5 s): the far end's stats show them
        for _ in range(40):
            report = await tb.receiver.getStats()
            remote = [s for s in report.values() if s.type == "remote-outbound-rtp"]
            if remote and remote[0].packetsSent == 11:
                break
            await asyncio.sleep(0.1)
        assert remote and remote[0].packetsSent == 11 and remote[0].bytesSent == 1600
        outbound = [s for s in (await ta.sender.getStats()).values() if s.type == "outbound-rtp"]
        assert outbound[0].packetsSent == 11 and outbound[0].bytesSent == 1600
    finally:
        await a.close()
        await b.close()
    assert not sender.send(b"x", 0)  # closed: nothing goes


async def test_without_the_loopback_knob_aioice_gathers_no_loopback_candidate() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        assert " 127.0.0.1 " not in pc.localDescription.sdp
    finally:
        await pc.close()


def fed(
    monkeypatch: pytest.MonkeyPatch, stats: StreamStatistics, packets: list[tuple[int, int, float]]
) -> None:
    """``stats.add`` each (sequence, timestamp, wall-clock arrival) of SSRC 7, PCMU, at its arrival
    (add reads the wall clock: patched to the packets' times)."""
    clock = types.SimpleNamespace(time=time.time)
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "time", clock)
    for seq, timestamp, arrival in packets:
        clock.time = lambda arrival=arrival: arrival
        stats.add(AiortcRtpPacket(payload_type=0, sequence_number=seq, timestamp=timestamp, ssrc=7))


def test_fast_lane_statistics_mirror_stream_statistics_add(monkeypatch: pytest.MonkeyPatch) -> None:
    # the fast lane's engine replays StreamStatistics.add for packets it forwarded (its aiortc flavour)
    add = inspect.getsource(StreamStatistics.add)
    assert "arrival = int(time.time() * self._clockrate)" in add  # wall clock: the engine reads it too
    for line in (
        "self.packets_received += 1",
        "self.base_seq = packet.sequence_number",
        "self.cycles += 1 << 16",
        "self.max_seq = packet.sequence_number",
        "self._jitter_q4 += diff - ((self._jitter_q4 + 8) >> 4)",
        "self._last_arrival = arrival",
        "self._last_timestamp = packet.timestamp",
    ):
        assert line in add, line
    assert "if in_order:" in add and "uint16_gt(" in add
    init = inspect.getsource(StreamStatistics.__init__)
    for name in ("base_seq", "max_seq", "cycles", "packets_received", "_jitter_q4", "_last_arrival"):
        assert f"self.{name}" in init, name
    # and both give the same statistics for the same packets (a wrap, a reordering, a loss, jitter):
    # the engine's aiortc flavour replayed from a state taken mid-stream, copied back by restore_reception
    if not available():
        assert not in_ci(), "CI must build gateway.media.fastlane._fastlane (pip install -e .)"
        unavailable("the fast lane is not built")
    wall = 1.7e9
    sequences = [65533, 65534, 65535, 1, 0, 3]
    arrivals = [wall + 0.02 * i + 0.004 * (i % 2) for i in range(len(sequences))]
    packets = [(seq, 5000 + 160 * i, arrivals[i]) for i, seq in enumerate(sequences)]
    mirrored, original = StreamStatistics(8000), StreamStatistics(8000)
    fed(monkeypatch, original, packets)
    receiver = aiortc_receive.DirectReceiver.__new__(aiortc_receive.DirectReceiver)
    receiver._streams, receiver._clock_rates = {7: mirrored}, {0: 8000}
    fed(monkeypatch, mirrored, packets[:1])
    state = receiver.reception_state(7)
    assert state is not None
    replayed, _ = replay(STATS_AIORTC, 8000, state, packets[1:])
    receiver.restore_reception(7, replayed, 0)
    fields = (
        "base_seq",
        "max_seq",
        "cycles",
        "packets_received",
        "_jitter_q4",
        "_last_arrival",
        "_last_timestamp",
    )
    assert [getattr(mirrored, f) for f in fields] == [getattr(original, f) for f in fields]
    assert original._jitter_q4 > 0 and original.cycles == 1 << 16 and original.packets_lost == 1
    assert mirrored.packets_lost == original.packets_lost and mirrored.jitter == original.jitter


def test_a_source_counted_in_another_rate_is_handed_to_the_engine_in_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a PCMU source whose statistics began at 48 kHz (the first packets before the direct path): the
    # engine, at 8 kHz, must continue from the same instant, not from one six times later (a jitter
    # of ~10^11 that no RTCP report can carry)
    if not available():
        assert not in_ci(), "CI must build gateway.media.fastlane._fastlane (pip install -e .)"
        unavailable("the fast lane is not built")
    wall = 1.7e9
    arrivals = [wall + 0.02 * i + 0.004 * (i % 2) for i in range(6)]
    packets = [(100 + i, 5000 + 160 * i, arrivals[i]) for i in range(6)]
    counted_wrong, original = StreamStatistics(48000), StreamStatistics(8000)
    fed(monkeypatch, original, packets)
    receiver = aiortc_receive.DirectReceiver.__new__(aiortc_receive.DirectReceiver)
    receiver._streams, receiver._clock_rates = {7: counted_wrong}, {0: 8000}
    fed(monkeypatch, counted_wrong, packets[:1])
    state = receiver.reception_state(7, 8000)
    assert state is not None and state.arrival == int(wall * 8000)
    replayed, _ = replay(STATS_AIORTC, 8000, state, packets[1:])
    receiver.restore_reception(7, replayed, 0)
    assert counted_wrong._clockrate == 8000  # what Python adds next counts in the engine's rate
    assert counted_wrong._jitter_q4 == original._jitter_q4 and 0 < counted_wrong.jitter < 100
    assert counted_wrong._last_arrival == original._last_arrival


def test_fast_lane_srtp_stand_in_matches_what_aiortc_calls() -> None:
    # the fast lane's SerializedSrtp replaces RTCDtlsTransport._rx_srtp/_tx_srtp while linked: the same methods
    recv_next = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "data = self._rx_srtp.unprotect_rtcp(data)" in recv_next
    assert "data = self._rx_srtp.unprotect(data)" in recv_next
    assert "except pylibsrtp.Error" in recv_next  # SerializedSrtp raises pylibsrtp.Error
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "data = self._tx_srtp.protect_rtcp(data)" in send_rtp
    assert "data = self._tx_srtp.protect(data)" in send_rtp
    for name in ("protect", "unprotect", "protect_rtcp", "unprotect_rtcp"):
        assert callable(getattr(SerializedSrtp, name)), name
    # the sessions the engine uses are pylibsrtp Sessions made by _setup_srtp
    setup = inspect.getsource(RTCDtlsTransport._setup_srtp)
    assert "self._rx_srtp = Session(rx_policy)" in setup
    assert "self._tx_srtp = Session(tx_policy)" in setup
    assert aiortc.rtcdtlstransport.Session is pylibsrtp.Session  # type: ignore[attr-defined]
    # srtp_sessions / replace_srtp_sessions / restore_srtp_sessions use exactly those two attributes
    dtls = RTCDtlsTransport.__new__(RTCDtlsTransport)
    key = bytes(range(30))
    rx, tx = (pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=t)) for t in (
        pylibsrtp.Policy.SSRC_ANY_INBOUND, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))  # fmt: skip
    dtls._rx_srtp, dtls._tx_srtp = rx, tx
    assert aiortc_hooks.srtp_sessions(dtls) == (rx, tx)
    stand_ins = SerializedSrtp(None, rx), SerializedSrtp(None, tx)  # type: ignore[arg-type]
    aiortc_hooks.replace_srtp_sessions(dtls, *stand_ins)
    assert (dtls._rx_srtp, dtls._tx_srtp) == stand_ins and aiortc_hooks.srtp_sessions(dtls) is None
    aiortc_hooks.restore_srtp_sessions(dtls, rx, tx, replaced=SerializedSrtp)
    assert aiortc_hooks.srtp_sessions(dtls) == (rx, tx)


def test_consent_expiry_is_what_aioice_reads_at_each_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """``set_consent_expiry`` works because aioice's ``query_consent`` reads CONSENT_INTERVAL and
    CONSENT_FAILURES from its module at each check (a changed aioice fails here)."""
    source = inspect.getsource(Connection.query_consent)
    assert "CONSENT_INTERVAL" in source and "CONSENT_FAILURES" in source and "retransmissions=0" in source
    # on_consent_expired: the loop returns only when consent expired, closing the connection then
    assert "while True:" in source and "return await self.close()" in source
    # _query_consent (with media_count) is this loop with checks skipped while media flow
    assert "request = self.build_request(pair, nominate=False)" in source
    assert "self._query_consent_task = None" in source and "except stun.TransactionError:" in source
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", aioice.ice.CONSENT_INTERVAL)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", aioice.ice.CONSENT_FAILURES)
    ice_consent.set_consent_expiry(5.0)
    assert (aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES) == (1, 3)  # ~4.5 s without answers
    ice_consent.set_consent_expiry(0.5)
    assert aioice.ice.CONSENT_FAILURES == 2
    with pytest.raises(ValueError):
        ice_consent.set_consent_expiry(0)


async def test_video_keyframe_internals_exist() -> None:
    """The browser's PLI and FIR reach RTCRtpSender._send_keyframe; RTCRtpReceiver._send_rtcp_pli sends
    one (aiortc_hooks.on_keyframe_request, send_picture_loss; issue 19)."""
    handler = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "RTCP_PSFB_FIR" in handler and "RTCP_PSFB_PLI" in handler and "self._send_keyframe()" in handler
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == ["self", "media_ssrc"]
    assert inspect.iscoroutinefunction(RTCRtpReceiver._send_rtcp_pli)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender = pc.addTransceiver("video").sender
    called: list[bool] = []
    aiortc_hooks.on_keyframe_request(sender, lambda: called.append(True))
    sender._send_keyframe()
    assert called == [True]
    await pc.close()
    with pytest.raises(aiortc_hooks.HookError):
        aiortc_hooks.on_keyframe_request(types.SimpleNamespace(), lambda: None)  # type: ignore[arg-type]


async def test_peer_connection_takes_the_given_certificate_and_puts_aiortc_back() -> None:
    """aiortc makes a certificate in RTCPeerConnection's constructor (a key generation per call):
    ``peer_connection`` hands it ours instead, for the constructor only."""
    assert "RTCCertificate.generateCertificate()" in inspect.getsource(RTCPeerConnection.__init__)
    original = RTCCertificate.__dict__["generateCertificate"]
    mine = RTCCertificate.generateCertificate()
    pcs = [aiortc_hooks.peer_connection(RTCConfiguration(iceServers=[]), mine) for _ in range(2)]
    own = aiortc_hooks.peer_connection(RTCConfiguration(iceServers=[]))
    try:
        assert RTCCertificate.__dict__["generateCertificate"] is original
        for pc in pcs:
            assert getattr(pc, aiortc_hooks.CERTIFICATES) == [mine]
        assert getattr(own, aiortc_hooks.CERTIFICATES) != [mine]
        pcs[0].addTransceiver("audio")
        await pcs[0].setLocalDescription(await pcs[0].createOffer())
        fingerprint = next(f for f in mine.getFingerprints() if f.algorithm == "sha-256")
        assert f"a=fingerprint:sha-256 {fingerprint.value}" in pcs[0].localDescription.sdp
    finally:
        for pc in (*pcs, own):
            await pc.close()


def test_host_addresses_are_enumerated_once_per_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "ifaddr.get_adapters()" in inspect.getsource(_aioice_host_addresses())
    assert "get_host_addresses(" in inspect.getsource(Connection.gather_candidates)  # looked up at each call
    calls: list[tuple[bool, bool]] = []

    def enumerate_interfaces(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        calls.append((use_ipv4, use_ipv6))
        return ["192.0.2.7"]

    monkeypatch.setattr(aioice.ice, "get_host_addresses", enumerate_interfaces)
    aiortc_hooks.cache_host_addresses(60)
    aiortc_hooks.cache_host_addresses(60)  # idempotent: never a cache of a cache
    found = [aioice.ice.get_host_addresses(True, True) for _ in range(3)]
    assert found == [["192.0.2.7"]] * 3 and calls == [(True, True)]
    found[0].append("mutated")  # each caller gets its own list
    assert aioice.ice.get_host_addresses(True, False) == ["192.0.2.7"]
    assert calls == [(True, True), (True, False)]
    aiortc_hooks.cache_host_addresses(0)
    assert aioice.ice.get_host_addresses is enumerate_interfaces
    with pytest.raises(ValueError):
        aiortc_hooks.cache_host_addresses(-1)


async def test_bandwidth_hint_internals_exist() -> None:
    """The browser's REMB reaches RTCRtpSender._handle_rtcp_packet (routed by its FCI's SSRCs); a REMB goes
    out through RTCRtpReceiver._send_rtcp from its private __rtcp_ssrc (aiortc_hooks.on_bitrate_limit,
    send_remb; issue 19)."""
    from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

    assert "unpack_remb_fci(packet.fci)" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert inspect.iscoroutinefunction(RTCRtpReceiver._send_rtcp)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver("video")
    limits: list[tuple[int, tuple[int, ...]]] = []
    aiortc_hooks.on_bitrate_limit(transceiver.sender, lambda bitrate, ssrcs: limits.append((bitrate, ssrcs)))
    fci = pack_remb_fci(250_000, [transceiver.sender._ssrc])
    await transceiver.sender._handle_rtcp_packet(
        RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=5, media_ssrc=0, fci=fci)
    )
    assert limits == [(250_000, (transceiver.sender._ssrc,))]
    receiver = transceiver.receiver
    own = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    assert isinstance(own, int)
    sent: list[bytes] = []

    async def capture(packet: Any) -> None:
        sent.append(bytes(packet))

    receiver._send_rtcp = capture  # type: ignore[method-assign]
    assert await aiortc_hooks.send_remb(receiver, 100_000, [1])
    assert sent == [
        bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=own, media_ssrc=0, fci=pack_remb_fci(100_000, [1])))
    ]
    await pc.close()
    with pytest.raises(aiortc_hooks.HookError):
        aiortc_hooks.on_bitrate_limit(types.SimpleNamespace(), lambda bitrate, ssrcs: None)  # type: ignore[arg-type]


def test_direct_rtcp_internals_exist() -> None:
    for owner, names in (
        (RTCRtpSender, ("rtcp_started", "rtcp_exited", "cname", "lsr", "lsr_time")),
        (RTCRtpReceiver, ("rtcp_started", "rtcp_exited", "rtcp_ssrc", "lsr", "lsr_time")),
    ):
        source = inspect.getsource(owner)
        assert "self.__rtcp_task = asyncio.ensure_future(self._run_rtcp())" in source
        for name in names:
            assert f"self.__{name}" in source, (owner, name)
    rr = inspect.getsource(RTCRtpReceiver._run_rtcp)
    assert "fraction_lost=stream.fraction_lost" in rr and "delay = time.time() - self.__lsr_time[ssrc]" in rr
    assert "self.__tx_bytes += len(data)" in inspect.getsource(RTCDtlsTransport._send_rtp)


def pcmu_pair() -> tuple[RTCPeerConnection, RTCPeerConnection, Any, Any]:
    """Two peer connections on 127.0.0.1 with one audio transceiver each, PCMU preferred by the first."""
    peers = (
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
    )
    transceivers = [pc.addTransceiver("audio", "sendrecv") for pc in peers]
    caps = RTCRtpSender.getCapabilities("audio").codecs
    transceivers[0].setCodecPreferences([c for c in caps if c.name == "PCMU" and c.clockRate == 8000])
    for pc in peers:
        aiortc_hooks.restrict_host_addresses(pc, ["127.0.0.1"])
    return peers[0], peers[1], transceivers[0], transceivers[1]


async def test_direct_rtcp_sends_one_compound_report_per_interval_with_the_receivers_blocks() -> None:
    a, b, ta, tb = pcmu_pair()
    try:
        sender = aiortc_direct.attach_direct_sender(ta.sender)
        receiver = aiortc_receive.attach_direct_receiver(ta.receiver, lambda *fields: None)
        rtcp = aiortc_rtcp.attach_direct_rtcp(sender, receiver, interval=0.3)
        far = aiortc_direct.attach_direct_sender(tb.sender)
        seen: list[Any] = []  # what b's aiortc objects get from a: SRs only, never aiortc's own RR
        for owner in (tb.sender, tb.receiver):
            original = owner._handle_rtcp_packet

            async def handle(packet: Any, original: Any = original) -> None:
                seen.append(packet)
                await original(packet)

            owner._handle_rtcp_packet = handle
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        for _ in range(200):
            if sender.started and far.started and receiver.started:
                break
            await asyncio.sleep(0.01)
        for i in range(5):
            assert sender.send(b"\xff" * 160, 160 * i) and far.send(b"\xff" * 160, 160 * i)
            await asyncio.sleep(0.005)
        start = time.monotonic()
        await asyncio.sleep(1.5)
        elapsed = time.monotonic() - start
        # interval 0.3 s over [0.5, 1.5] x: 1.5 s holds 2 to 10 reports, aiortc's 1 s loops would send
        # 1-3 SRs and as many RRs
        assert 2 <= rtcp.reports_sent <= 10 * elapsed / 1.5, rtcp.reports_sent
        reports = [p for p in seen if not isinstance(p, RtcpSdesPacket)]
        assert reports and all(isinstance(p, RtcpSrPacket) and p.ssrc == ta.sender._ssrc for p in reports)
        last = reports[-1]
        assert last.sender_info.packet_count == 5 and last.sender_info.octet_count == 800
        (block,) = last.reports  # the receiver's block about b's stream, in the SR (RFC 3550 §6.4.1)
        assert block.ssrc == tb.sender._ssrc and block.packets_lost == 0
        assert block.highest_sequence == (far.next_sequence - 1) & 0xFFFF
        stats = [s for s in (await tb.sender.getStats()).values() if s.type == "remote-inbound-rtp"]
        assert stats and stats[0].packetsLost == 0  # b read the block
    finally:
        await a.close()
        await b.close()
    assert rtcp._timer is None  # stopped with the transceiver


async def test_consent_checks_are_fewer_while_the_browsers_media_flow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """on_consent_expired(media_count=): while the count grows a check goes out every CONSENT_WHILE_MEDIA
    (RFC 7675's 5 s, shortened here), else every CONSENT_INTERVAL as aioice's loop does; ``answered`` is
    called at each answer (the bridge's sign that a browser on hold is there)."""
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.1)
    monkeypatch.setattr(ice_consent, "CONSENT_WHILE_MEDIA", 0.6)
    checks: list[Any] = []
    request = StunProtocol.request

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        checks.append(self)
        return await request(self, *args, **kwargs)

    monkeypatch.setattr(StunProtocol, "request", counted)
    a, b, _, _ = pcmu_pair()
    media = [0]
    expired: list[bool] = []
    answers: list[bool] = []
    ice_consent.on_consent_expired(
        a, lambda: expired.append(True), media_count=lambda: media[0], answered=lambda: answers.append(True)
    )
    try:
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        ours = aiortc_hooks.ice_connection(a)._protocols
        for _ in range(200):
            if a.connectionState == "connected" and b.connectionState == "connected":
                break
            await asyncio.sleep(0.01)

        def from_a() -> int:
            return sum(1 for protocol in checks if protocol in ours)

        start = from_a()
        for _ in range(30):  # 1.5 s of media arriving: a check every 0.48-0.72 s
            media[0] += 5
            await asyncio.sleep(0.05)
        flowing = from_a() - start
        start, answered = from_a(), len(answers)
        await asyncio.sleep(1.5)  # media stopped: a check every 0.1-0.12 s
        stopped, answered = from_a() - start, len(answers) - answered
        assert 1 <= flowing <= 4 and stopped >= 9, (flowing, stopped)
        assert stopped - 1 <= answered <= stopped + 1, (stopped, answered)  # (one in flight at either end)
        assert not expired and a.connectionState == "connected"  # b answered every check
    finally:
        await a.close()
        await b.close()


def test_reports_are_handled_at_once_feedback_in_a_task() -> None:
    """Which decrypted SRTCP from the browser the direct receiver hands to aiortc at once (no task):
    compounds of SR, RR, SDES and BYE whose lengths add up; feedback (PLI, NACK, REMB) and anything
    malformed keep aiortc's task."""
    sr = struct.pack("!BBHIQIII", 0x80, 200, 6, 0x1234, 0, 0, 0, 0)  # RFC 3550 §6.4.1, no block
    rr = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)
    sdes = struct.pack("!BBHIBB", 0x81, 202, 2, 0x1234, 1, 0) + b"\x00\x00"  # CNAME "", padded
    bye = struct.pack("!BBHI", 0x81, 203, 1, 0x1234)
    pli = struct.pack("!BBHII", 0x81, 206, 2, 0x1234, 0x5678)  # RFC 4585 §6.3.1
    assert all(aiortc_receive._reports_only(c) for c in (sr, rr, sr + sdes, rr + sdes + bye))
    assert not aiortc_receive._reports_only(sr + pli)
    assert not aiortc_receive._reports_only(pli)
    assert not aiortc_receive._reports_only(sr[:-4])  # shorter than its length says
    assert not aiortc_receive._reports_only(sr + b"\x00")
    assert not aiortc_receive._reports_only(b"")


def test_the_shared_certificate_computes_its_fingerprints_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc asks for the certificate's fingerprints at every offer and answer: the process's
    certificate answers with those aiortc computes, made once (a renewed certificate has its own)."""
    from gateway.media.rtp.dtls_srtp import DtlsCertificate

    first, renewed = DtlsCertificate(), DtlsCertificate()
    expected = RTCCertificate(first.key, first.certificate).getFingerprints()
    digest = aiortc.rtcdtlstransport.certificate_digest
    digests: list[str] = []

    def counting_digest(certificate: Any, algorithm: str) -> str:
        digests.append(algorithm)
        return digest(certificate, algorithm)

    monkeypatch.setattr(aiortc.rtcdtlstransport, "certificate_digest", counting_digest)
    shared = aiortc_hooks.rtc_certificate(first.key, first.certificate)
    assert shared.getFingerprints() == expected and len(expected) == len(digests) == 3
    assert shared.getFingerprints() == expected and len(digests) == 3  # not hashed again
    assert shared.getFingerprints() is not shared.getFingerprints()  # a list of its own each time
    assert aiortc_hooks.rtc_certificate(renewed.key, renewed.certificate).getFingerprints() != expected


async def test_a_stale_host_list_answers_at_once_and_is_renewed_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the event loop a list older than the ttl answers the call setup that finds it so (no
    enumeration on its path: ~0.5-3 ms), and a new one is made right after it."""
    answers = iter([["192.0.2.7"], ["192.0.2.8"]])
    calls: list[tuple[bool, bool]] = []

    def enumerate_interfaces(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        calls.append((use_ipv4, use_ipv6))
        return next(answers)

    monkeypatch.setattr(aioice.ice, "get_host_addresses", enumerate_interfaces)
    aiortc_hooks.cache_host_addresses(0.01)
    try:
        assert aioice.ice.get_host_addresses(True, True) == ["192.0.2.7"]  # none yet: made at once
        await asyncio.sleep(0.02)  # stale now
        assert aioice.ice.get_host_addresses(True, True) == ["192.0.2.7"]
        assert aioice.ice.get_host_addresses(True, True) == ["192.0.2.7"]  # one renewal under way
        assert calls == [(True, True)]
        await asyncio.sleep(0.1)
        assert calls == [(True, True)] * 2
        assert aioice.ice.get_host_addresses(True, True) == ["192.0.2.8"]
    finally:
        aiortc_hooks.cache_host_addresses(0)


async def test_the_leg_reserving_its_ports_reads_the_cached_host_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ice_ports took aioice's function at import, before the gateway's cache replaced it: every call
    enumerated the interfaces again (3 ms of an HTTP offer's 10 with gateway.yaml's every-interface
    default, issue 38)."""
    from gateway.media.rtp.ports import PortRange, RtpPortAllocator
    from gateway.media.webrtc.ice_ports import IceSockets

    seen: list[tuple[bool, bool]] = []

    def enumerate_interfaces(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        seen.append((use_ipv4, use_ipv6))
        return ["127.0.0.1"]

    monkeypatch.setattr(aioice.ice, "get_host_addresses", enumerate_interfaces)
    aiortc_hooks.cache_host_addresses(60)
    legs = [
        IceSockets(RTCPeerConnection(), ports=RtpPortAllocator(PortRange(45100, 45199)), owner=f"call{i}")
        for i in range(3)
    ]
    try:
        for leg in legs:
            leg.reserve()
        assert [len(leg.ports) for leg in legs] == [1, 1, 1]
        assert seen == [(True, True)]  # once for the three legs
    finally:
        for leg in legs:
            leg.release()
        aiortc_hooks.cache_host_addresses(0)
