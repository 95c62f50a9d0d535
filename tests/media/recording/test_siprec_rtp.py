"""`SiprecStreams` (gateway/media/recording/siprec_rtp.py) over real loopback UDP sockets: each channel's
PCM as 20 ms PCMU RTP to its own destination, one SSRC and running sequence and timestamp per stream,
16 kHz halved to 8 kHz, a pause dropping what was pending and marking the next packet, nothing sent to a
stream without a destination or after close."""

from __future__ import annotations

import array
import socket

from gateway.media.recording.siprec_rtp import SiprecStreams
from gateway.media.rtp.packet import RtpPacket
from peers.audio import detect_tone, sine, ulaw_decode


def _receiver() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    return sock


def _drain(sock: socket.socket) -> list[RtpPacket]:
    packets = []
    sock.settimeout(0.2)
    try:
        while True:
            packets.append(RtpPacket.parse(sock.recv(2048)))
    except TimeoutError:
        return packets


def test_each_channel_goes_to_its_destination_as_pcmu_frames() -> None:
    first, second = _receiver(), _receiver()
    streams = SiprecStreams("127.0.0.1", 8000)
    try:
        assert len(set(streams.ports)) == 2 and all(streams.ports)
        streams.send_to((first.getsockname(), second.getsockname()))
        tone = sine(1000.0, 8000, 1.0).tobytes()
        for offset in range(0, len(tone), 2 * 100):  # fed in uneven pieces, as decoders give them
            streams.pcm(0, tone[offset : offset + 2 * 100])
        streams.pcm(1, sine(440.0, 8000, 0.5).tobytes())
        web, sip = _drain(first), _drain(second)
        assert len(web) == 50 and len(sip) == 25 and streams.sent == (50, 25)
        assert {p.payload_type for p in web + sip} == {0} and {len(p.payload) for p in web + sip} == {160}
        assert len({p.ssrc for p in web}) == 1 and web[0].ssrc != sip[0].ssrc
        assert [(p.sequence_number - web[0].sequence_number) & 0xFFFF for p in web] == list(range(50))
        assert [(p.timestamp - web[0].timestamp) & 0xFFFFFFFF for p in web] == [160 * i for i in range(50)]
        assert web[0].marker and not any(p.marker for p in web[1:])
        assert detect_tone(ulaw_decode(b"".join(p.payload for p in web)), 8000, 1000.0)
        assert detect_tone(ulaw_decode(b"".join(p.payload for p in sip)), 8000, 440.0)

        streams.pcm(0, tone[:200])  # 100 samples pending...
        streams.pause()  # ...dropped
        streams.pcm(0, tone[:320])
        [after] = _drain(first)
        assert after.marker and after.timestamp == (web[-1].timestamp + 160) & 0xFFFFFFFF
    finally:
        streams.close()
        first.close()
        second.close()


def test_16_khz_is_halved_and_no_destination_or_closed_sends_nothing() -> None:
    receiver = _receiver()
    streams = SiprecStreams("127.0.0.1", 16000)
    try:
        streams.send_to((receiver.getsockname(), None))
        streams.pcm(1, sine(440.0, 16000, 0.2).tobytes())  # label 2 refused by the server
        streams.pcm(0, sine(440.0, 16000, 0.4).tobytes())
        packets = _drain(receiver)
        assert len(packets) == 20 and streams.sent == (20, 0)
        samples = ulaw_decode(b"".join(p.payload for p in packets))
        assert isinstance(samples, array.array) and detect_tone(samples, 8000, 440.0)
        streams.close()
        streams.pcm(0, sine(440.0, 16000, 0.4).tobytes())
        assert _drain(receiver) == []
    finally:
        streams.close()
        receiver.close()
