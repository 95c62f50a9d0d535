"""A pool of peer processes for side-by-side media benchmarks (bench/vs_rtpengine.py; issue 14 goal 5).

Each call is a pair of peers in one process: a "browser" (aiortc ``WebPeer`` sending pre-encoded payloads,
as media_bench.py does) or, for the floor relay, a second RTP phone - SRTP with the fixed keys
``FLOOR_KEYS`` (legs "srtp": AES_CM_128_HMAC_SHA1_80, "srtp-gcm": AEAD_AES_128_GCM, "srtp-gcm256":
AEAD_AES_256_GCM; it protects what it
sends and unprotects what arrives with pylibsrtp, as the floor's --srtp modes expect) or plain (legs
"rtp", the old plain floor); and a plain RTP "phone"
(pre-encoded PCMU, or G.722 in mode "transcoding-g722"). The calls are spread over several processes so
that at 100+ calls the benchmark measures the middle box and not its own peers.

Every peer stamps each packet it sends (``time.monotonic()``) and each one it receives (with the RTP
timestamp). End-to-end latency is matched through the RTP timestamp: a middle box may rewrite the origin of
timestamps and sequence numbers (and transcoding changes the clock rate), but keeps the media time, so the
received packet of media time ``m`` (from the first packet it delivered) is the sent packet ``m / 20 ms +
o``, with ``o`` the number of sent packets that did not come out before it: the largest ``o`` that makes
no latency negative. (A box that holds packets longer than 20 ms would make this under-read by 20 ms.)
The figure includes both peers' own send and receive paths (aiortc's SRTP, the event loops), the same for
every middle box.

Protocol with the orchestrator over a Pipe: -> offers (list of (offer, port)); <- answers; -> "ready";
<- "go"; -> "sent"; <- "report"; -> (results, peer CPU seconds); <- "bye".
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import random
import time
from multiprocessing.connection import Connection
from typing import Any

FRAME = 0.02
PCMU_PT = 0
# The phone's codec in each mode: its SDP name and RTP payload type. Its RTP clock is 8000 Hz either way
# (G.722's 16 kHz audio runs under an 8000 Hz clock, RFC 3551 §4.5.2), so latencies() matches it alike.
PHONE_CODECS: dict[str, tuple[str, int]] = {
    "passthrough": ("PCMU", PCMU_PT),
    "transcoding": ("PCMU", PCMU_PT),
    "transcoding-g722": ("G722", 9),
}
# The floor's SRTP master keys (key + salt, 30 octets): the browser side protects with the first and
# unprotects with the second (bench/floor_relay.c --srtp reads them in that order; GCM: their first 28).
FLOOR_KEYS = (bytes(range(1, 45)), bytes(range(101, 145)))  # cut to the profile's key + salt length
_FLOOR_KEY_SIZES = {"srtp": 30, "srtp-gcm": 28, "srtp-gcm256": 44}
# libsrtp's profile numbers (pylibsrtp.Policy.SRTP_PROFILE_*) of those legs
FLOOR_PROFILES = {"srtp": 1, "srtp-gcm": 7, "srtp-gcm256": 8}


async def _recv(conn: Connection) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


def latencies(sent: list[float], arrivals: list[tuple[float, int]], rate: int) -> list[float]:
    """Seconds from send to arrival of each delivered packet (module docstring: matched by media time)."""
    if not arrivals or not sent:
        return []
    first = arrivals[0][1]
    indexed = [(t, round(((ts - first) % 2**32) / rate / FRAME)) for t, ts in arrivals]
    best: list[float] = []
    for offset in range(16):
        found = [t - sent[k + offset] for t, k in indexed if 0 <= k + offset < len(sent)]
        if not found or min(found) < -0.001:
            break
        best = found
    return best


def transcodes(mode: str) -> bool:
    """Whether the browser leg speaks Opus in ``mode`` (the box transcodes it to and from the phone's codec)."""
    return mode.startswith("transcoding")


@functools.cache
def phone_tone(freq: float, codec: str) -> list[bytes]:
    """One second of 20 ms payloads of a tone in the phone's ``codec`` (PHONE_CODECS' names): PCMU as
    encode_tone makes it, G.722 by FFmpeg's encoder at 16 kHz (peers.audio.G722: 160 octets a frame)."""
    from peers.audio import G722, encode_tone, sine

    if codec == "PCMU":
        return encode_tone(freq, "pcmu")
    encoder, size = G722(), 320
    return [
        encoder.encode(sine(freq, 16000, FRAME, phase=2 * math.pi * freq * i * size / 16000))
        for i in range(50)
    ]


def summary(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class _Counter(asyncio.DatagramProtocol):
    """A plain RTP phone: sends pre-encoded PCMU (or G.722: ``payload_type``), stamps what it sends and what
    arrives (RTP of that payload type only)."""

    def __init__(self, payload_type: int = PCMU_PT) -> None:
        self.payload_type = payload_type
        self.tx: Any = None  # pylibsrtp sessions: an SRTP phone (the SRTP floor's browser side)
        self.rx: Any = None
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.sent: list[float] = []
        self.arrivals: list[tuple[float, int]] = []
        self.ssrc = random.getrandbits(32)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.rx is not None:
            try:
                data = self.rx.unprotect(data)
            except Exception:  # pylibsrtp.Error: not authentic
                return
        rtp = len(data) >= 12 and not 192 <= data[1] <= 223  # not RTCP: RFC 5761 §4
        if rtp and data[1] & 0x7F == self.payload_type:
            self.arrivals.append((time.monotonic(), int.from_bytes(data[4:8], "big")))

    async def play(self, payloads: list[bytes], seconds: float) -> None:
        assert self.transport is not None and self.remote is not None
        sequence, timestamp = random.getrandbits(16), random.getrandbits(32)
        start = time.monotonic()
        for index in range(round(seconds / FRAME)):
            header = bytes([0x80, self.payload_type | (0x80 if index == 0 else 0)])
            header += ((sequence + index) & 0xFFFF).to_bytes(2, "big")
            header += ((timestamp + 160 * index) & 0xFFFFFFFF).to_bytes(4, "big")
            header += self.ssrc.to_bytes(4, "big")
            self.sent.append(time.monotonic())
            packet = header + payloads[index % len(payloads)]
            self.transport.sendto(packet if self.tx is None else self.tx.protect(packet), self.remote)
            delay = start + (index + 1) * FRAME - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)


def floor_keys(legs: str) -> tuple[bytes, bytes]:
    """The floor's two master keys for ``legs`` "srtp", "srtp-gcm" or "srtp-gcm256" (key + salt: 30, 28 or
    44 octets)."""
    size = _FLOOR_KEY_SIZES[legs]
    return FLOOR_KEYS[0][:size], FLOOR_KEYS[1][:size]


async def _phone(legs: str = "rtp", payload_type: int = PCMU_PT) -> tuple[_Counter, int]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Counter(payload_type), local_addr=("127.0.0.1", 0)
    )
    if legs.startswith("srtp"):
        from pylibsrtp import Policy, Session

        profile = FLOOR_PROFILES[legs]
        keys = floor_keys(legs)
        protocol.tx = Session(Policy(keys[0], Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        protocol.rx = Session(Policy(keys[1], Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
    return protocol, transport.get_extra_info("sockname")[1]


async def _run(conn: Connection, count: int, mode: str, legs: str, seconds: float) -> None:
    from peers.audio import encode_tone
    from peers.webpeer import WebPeer

    class Browser(WebPeer):
        """WebPeer in raw mode that also stamps each audio packet it hears and each one it hands aiortc."""

        arrivals: list[tuple[float, int]]
        stamps: list[float]

        def _tap(self, packet: Any) -> bool:
            if packet.payload_type not in (126, 110, 101):
                self.arrivals.append((time.monotonic(), packet.timestamp))
            return super()._tap(packet)

        async def play_stamped(self, seconds: float) -> None:
            codec = "opus" if "opus" in self.codecs else "pcmu"
            frames, ticks = encode_tone(self.freq, codec), (960 if codec == "opus" else 160)
            start = time.monotonic()
            for index in range(round(seconds / FRAME)):
                self.stamps.append(time.monotonic())
                self._packets.push(frames[index % len(frames)], index * ticks)
                delay = start + (index + 1) * FRAME - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    transcoding = transcodes(mode)
    codec, payload_type = PHONE_CODECS[mode]
    phones = [await _phone(payload_type=payload_type) for _ in range(count)]
    browsers: list[Browser] = []
    others: list[tuple[_Counter, int]] = []
    if legs == "web":
        codecs = ("opus", "telephone-event") if transcoding else ("PCMU", "telephone-event")
        browsers = [Browser(1000, codecs=codecs, raw=True) for _ in range(count)]
        for browser in browsers:
            browser.arrivals, browser.stamps = [], []
        offers: list[tuple[Any, int]] = [
            (await b.offer(), p[1]) for b, p in zip(browsers, phones, strict=True)
        ]
    else:  # the floor: SRTP ("srtp") or plain RTP ("rtp") on the browser's leg, plain RTP on the other
        others = [await _phone(legs) for _ in range(count)]
        offers = [(o[1], p[1]) for o, p in zip(others, phones, strict=True)]
    conn.send(offers)
    answers = await _recv(conn)
    for index, (answer, address) in enumerate(answers):
        phones[index][0].remote = tuple(address)
        if legs == "web":
            await browsers[index].accept(answer)
        else:
            others[index][0].remote = tuple(answer)
    if browsers:
        await asyncio.gather(*(b.connected(timeout=60) for b in browsers))
    # the calls' objects live until the end: out of the collector's walk, as the gateway's GC tuning does,
    # so that full collections over 25 peer connections do not stall this loop (and read as the box's latency)
    gc.collect()
    gc.freeze()
    conn.send("ready")
    await _recv(conn)  # go
    cpu_start = time.process_time()
    tone = phone_tone(600, codec)

    async def later(start: Any) -> None:  # real calls are not in phase: spread them over a 20 ms frame
        await asyncio.sleep(random.uniform(0, FRAME))
        await start()

    await asyncio.gather(
        *(later(lambda p=p: p[0].play(tone, seconds)) for p in phones),
        *(later(lambda b=b: b.play_stamped(seconds)) for b in browsers),
        *(later(lambda o=o: o[0].play(encode_tone(1000, "pcmu"), seconds)) for o in others),
    )
    conn.send("sent")
    await _recv(conn)  # report
    previous = -1
    for _ in range(12):  # until nothing more arrives (late is not lost)
        await asyncio.sleep(0.25)
        total = sum(len(p[0].arrivals) for p in phones) + sum(len(b.arrivals) for b in browsers)
        total += sum(len(o[0].arrivals) for o in others)
        if total == previous:
            break
        previous = total
    cpu = time.process_time() - cpu_start
    web_rate = 48000 if transcoding else 8000
    results = []  # per call: (web sent, web received, phone sent, phone received, latencies)
    for index, (phone, _) in enumerate(phones):
        if legs == "web":
            browser = browsers[index]
            web_sent, web_arrivals, web_in_rate = browser.stamps, browser.arrivals, web_rate
        else:
            web_sent, web_arrivals, web_in_rate = others[index][0].sent, others[index][0].arrivals, 8000
        delays = latencies(web_sent, phone.arrivals, 8000) + latencies(phone.sent, web_arrivals, web_in_rate)
        results.append((len(web_sent), len(web_arrivals), len(phone.sent), len(phone.arrivals), delays))
    conn.send((results, cpu))
    await _recv(conn)  # bye
    for browser in browsers:
        await browser.close()
    for protocol, _ in [*phones, *others]:
        if protocol.transport is not None:
            protocol.transport.close()


def peer_main(conn: Connection, count: int, mode: str, legs: str, seconds: float) -> None:
    asyncio.run(_run(conn, count, mode, legs, seconds))
