"""Peer processes whose media is pumped in C (bench/native_peer.c), for bench/scale_bench.py (issue 14 goal 5).

The gateway's work is the same as with bench/peer_pool.py's peers: each call's "browser" is an aiortc
``WebPeer`` (real ICE, DTLS-SRTP, consent, RTCP), connected in waves before the media period; each
"phone" is plain RTP. Only the media period changes: the browser's UDP socket (the nominated ICE pair's)
and two libsrtp sessions keyed like aiortc's own (the DTLS exporter, RFC 5764 §4.2) are handed to
native_peer.c, which sends and receives every call's RTP in one thread (sendmmsg for the phones, all
of which share one socket: the SIP leg latches each call's port to its first packet's source, RFC 4961).
What is not SRTP on a browser's socket (consent, DTLS, SRTCP) comes back over a socketpair and goes to
aioice's protocol as if read by asyncio, so consent is answered and aiortc's RTCP goes on (aiortc's
sender still sends its SR every 0.5-1.5 s; its receiver sees no RTP, so it sends no receiver reports).

Latency is from the sender's CLOCK_REALTIME at send to the kernel's arrival stamp (SO_TIMESTAMPNS) at the
receiving peer: the gateway and the loopback, not the peers' own scheduling. Loss is by the stamp's
sequence number (sent - delivered), and the peers' sockets' own drops (SO_RXQ_OVFL) are counted apart.

Transcoding (``mode`` "transcoding"): the browsers offer only Opus and send a canned Opus tone
(``peers.audio.encode_tone``, encoded once), the phones a canned PCMU one, and the box is told to
answer the SIP side with PCMU only, so it decodes and encodes every packet; latency is then matched
through the RTP timestamp (native_peer.c's module comment says how).

Protocol with the orchestrator over a Pipe: -> offers (list of (offer, port)); <- answers; -> "ready";
<- "go"; -> "sent"; <- "report"; -> ``Report``; <- "bye".
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import random
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

BUCKETS = 20001  # native_peer.c: 10 us buckets up to 200 ms, then one overflow bucket
BUCKET_S = 10e-6
LATE_SECONDS = 64  # native_peer.c: pump_late's seconds
WAVE = 25  # browsers connecting at once per process
LINGER = 0.5  # seconds of receiving after the last send (late is not lost)
ERRORS = (
    "back",
    "back_errors",
    "send_errors",
    "srtp_errors",
    "foreign",
    "phone_drops",
    "web_drops",
    "pump_cpu_ns",
)


@dataclass(frozen=True)
class Report:
    counts: list[tuple[int, int, int, int]]  # per call: web sent, web delivered, phone sent, phone delivered
    histograms: tuple[list[int], list[int]]  # latency, web -> phone and phone -> web
    errors: dict[str, int]
    cpu: float  # the process's CPU seconds over the media period (pump thread and event loop)
    wall: float  # the media period's seconds (warm-up included)
    late: list[int]  # per measured second: deliveries more than 5 ms after their send


def build(workdir: Path) -> Path:
    library = workdir / "native_peer.so"
    source = Path(__file__).resolve().parent / "native_peer.c"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def _load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    p, i, u32, d, u64p = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_double, ctypes.c_void_p
    lib.pump_new.restype = p
    lib.pump_new.argtypes = [i, i, i, p, p, d]
    lib.pump_call.restype = i
    lib.pump_call.argtypes = [p, i, i, u32, i, p, p, u32, u32, i, u32, d, d]
    lib.pump_media.restype = i
    lib.pump_media.argtypes = [p, i, p, p, i, p, i]
    lib.pump_run.restype = i
    lib.pump_run.argtypes = [p, d, d, d]
    for name in ("pump_counts", "pump_histogram", "pump_errors", "pump_late"):
        getattr(lib, name).restype = None
    lib.pump_counts.argtypes = [p, i, u64p]
    lib.pump_histogram.argtypes = [p, i, u64p]
    lib.pump_errors.argtypes = [p, u64p]
    lib.pump_late.argtypes = [p, u64p]
    lib.pump_free.argtypes = [p]
    return lib


def _ip(address: str) -> int:
    """An IPv4 address in network order, as a native u32 (what sin_addr.s_addr holds)."""
    value: int = struct.unpack("=I", socket.inet_aton(address))[0]
    return value


def srtp_sessions(dtls: Any) -> tuple[Any, Any]:
    """New libsrtp sessions keyed as aiortc's ``RTCDtlsTransport._setup_srtp`` keys its own (rx, tx)."""
    from pylibsrtp import Policy, Session

    selected = dtls._ssl.get_selected_srtp_profile()
    profile = next(p for p in dtls._srtp_profiles if p.openssl_profile == selected)
    view = dtls._ssl.export_keying_material(
        b"EXTRACTOR-dtls_srtp", 2 * (profile.key_length + profile.salt_length)
    )
    tx_key = profile.get_key_and_salt(view, 1 if dtls._role == "server" else 0)
    rx_key = profile.get_key_and_salt(view, 0 if dtls._role == "server" else 1)
    sessions = []
    for key, kind in ((rx_key, Policy.SSRC_ANY_INBOUND), (tx_key, Policy.SSRC_ANY_OUTBOUND)):
        policy = Policy(key=key, ssrc_type=kind, srtp_profile=profile.libsrtp_profile)
        policy.window_size = 1024
        sessions.append(Session(policy))
    return sessions[0], sessions[1]


def floor_sessions(legs: str) -> tuple[Any, Any]:
    """(rx, tx) libsrtp sessions of the floor's "browser" side for ``legs`` ("srtp", "srtp-gcm",
    "srtp-gcm256"): it protects with the first of ``peer_pool.floor_keys`` and unprotects with the second,
    as bench/floor_relay.c expects."""
    from peer_pool import FLOOR_PROFILES, floor_keys
    from pylibsrtp import Policy, Session

    profile = FLOOR_PROFILES[legs]
    tx_key, rx_key = floor_keys(legs)
    rx = Session(Policy(rx_key, Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
    tx = Session(Policy(tx_key, Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
    return rx, tx


async def _recv(conn: Connection) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    return sock


def opus_payload_type(offer: str) -> int:
    """The payload type of Opus in a browser's offer (``a=rtpmap:<pt> opus/48000/2``)."""
    for line in offer.splitlines():
        if line.startswith("a=rtpmap:") and line.split(" ", 1)[1].lower().startswith("opus/"):
            return int(line[len("a=rtpmap:") :].split(" ", 1)[0])
    raise ValueError("no Opus in the offer")


def max_playback_rate(answer: str, opus_pt: int) -> int | None:
    """The ``maxplaybackrate`` the box's answer gives the browsers' Opus (RFC 7587 §6.1), if any."""
    import sdp

    for section in sdp.parse(answer).media:
        for codec in section.codecs:
            if codec.payload_type == opus_pt:
                value = codec.parameters.get("maxplaybackrate") or ""
                return int(value) if value.isascii() and value.isdigit() else None
    return None


# BENCH_BROWSER_OPUS=chromium: the browsers' Opus as Chromium encodes it (tests/media/test_bridge_chromium.py
# sees it): libopus's VOIP application, no wider than the box's maxplaybackrate; otherwise (the default)
# FFmpeg's fullband CELT whatever the box says, the same traffic for every box
BROWSER_OPUS = "BENCH_BROWSER_OPUS"


def canned_media(lib: ctypes.CDLL, pump: Any, opus_pt: int, playback_rate: int | None = None) -> None:
    """Transcoding: a second of a 1 kHz Opus tone for the browsers, 600 Hz PCMU for the phones;
    ``playback_rate``: the box's ``maxplaybackrate``, honoured with BENCH_BROWSER_OPUS=chromium."""
    from peers.audio import encode_tone

    chromium = os.environ.get(BROWSER_OPUS) == "chromium"
    opus = encode_tone(1000, "opus", max_playback_rate=playback_rate if chromium else None, voip=chromium)
    pcmu = encode_tone(600, "pcmu")
    configurations = sorted({frame[0] >> 3 for frame in opus})  # RFC 6716 §3.1
    print(
        f"peers: Opus configurations {configurations} (the box's maxplaybackrate {playback_rate})",
        file=sys.stderr,
    )
    lengths = (ctypes.c_int * len(opus))(*map(len, opus))
    opus_blob, pcmu_blob = b"".join(opus), b"".join(pcmu)
    if any(len(frame) != 160 for frame in pcmu):
        raise ValueError("PCMU frames of 160 bytes expected")
    if lib.pump_media(pump, opus_pt, opus_blob, lengths, len(opus), pcmu_blob, len(pcmu)) != 0:
        raise RuntimeError("pump_media failed")


async def _run(
    conn: Connection,
    count: int,
    legs: str,
    seconds: float,
    warmup: float,
    ramp: float,
    library: str,
    mode: str = "passthrough",
    spread: float = 1.0,
) -> None:
    from gateway.media.native_hooks import srtp_functions, srtp_session_pointer
    from gateway.media.webrtc import aiortc_hooks
    from peers.webpeer import WebPeer

    lib = _load(library)
    loop = asyncio.get_running_loop()
    phone = _socket()
    phone_port = phone.getsockname()[1]
    browsers: list[WebPeer] = []
    others: list[socket.socket] = []  # the floor: a plain RTP socket per call in the browser's place
    if legs == "web":
        codecs = ("opus", "telephone-event") if mode == "transcoding" else ("PCMU", "telephone-event")
        browsers = [WebPeer(1000, codecs=codecs, raw=True) for _ in range(count)]
        offers: list[tuple[Any, int]] = [(await b.offer(), phone_port) for b in browsers]
    else:  # a floor: its "browser" a socket per call, plain RTP ("rtp") or SRTP with the fixed keys
        others = [_socket() for _ in range(count)]
        offers = [(o.getsockname()[1], phone_port) for o in others]
    conn.send(offers)
    answers = await _recv(conn)
    for start in range(0, len(browsers), WAVE):  # the handshakes, in waves
        wave = list(zip(browsers[start : start + WAVE], answers[start : start + WAVE], strict=True))
        for browser, (answer, _) in wave:
            await browser.accept(answer)
        await asyncio.gather(*(browser.connected(timeout=120) for browser, _ in wave))
    conn.send("ready")
    await _recv(conn)  # go

    protect, unprotect, _, _ = srtp_functions()
    back, back_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    back.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    back.setblocking(False)
    pump = lib.pump_new(count, phone.fileno(), back_peer.fileno(), protect, unprotect, warmup + seconds)
    if mode == "transcoding":
        opus_pt = opus_payload_type(offers[0][0])
        canned_media(lib, pump, opus_pt, max_playback_rate(answers[0][0], opus_pt) if legs == "web" else None)
    keep: list[Any] = []  # the libsrtp sessions: alive while the pump uses them
    pairs: list[Any] = []
    for index in range(count):
        sip_address, sip_port = answers[index][1]
        if legs == "web":
            browser = browsers[index]
            pair = aiortc_hooks.ice_connection(browser.pc)._nominated[1]
            rx, tx = srtp_sessions(browser.transceiver.sender.transport)
            keep += [rx, tx]
            fd = pair.protocol.transport.get_extra_info("socket").fileno()
            web_address, web_port = pair.remote_addr
            tx_pointer, rx_pointer = srtp_session_pointer(tx), srtp_session_pointer(rx)
            ssrc = browser.transceiver.sender._ssrc
            pair.protocol.transport.pause_reading()  # type: ignore[attr-defined]  # the pump reads this socket from now on
            pairs.append(pair)
        else:
            fd, tx_pointer, rx_pointer, ssrc = others[index].fileno(), 0, 0, random.getrandbits(32)
            web_address, web_port = answers[index][0]
            if legs != "rtp":  # the floor's SRTP modes: the sessions peer_pool's phones key the same way
                rx, tx = floor_sessions(legs)
                keep += [rx, tx]
                tx_pointer, rx_pointer = srtp_session_pointer(tx), srtp_session_pointer(rx)
        if lib.pump_call(
            pump, index, fd, _ip(web_address), web_port, tx_pointer or None, rx_pointer or None, ssrc,
            _ip(sip_address), sip_port, random.getrandbits(32), spread * random.random(), random.uniform(0, ramp),
        ) != 0:  # fmt: skip
            raise RuntimeError(f"pump_call {index} failed")

    def on_back() -> None:  # STUN, DTLS, SRTCP from the gateway: to aioice as if asyncio had read it
        while True:
            try:
                data = back.recv(2048)
            except BlockingIOError:
                return
            index, address, port = struct.unpack("!I4sH", data[:10])  # native_peer.c: network order
            pairs[index].protocol.datagram_received(data[10:], (socket.inet_ntoa(address), port))

    loop.add_reader(back.fileno(), on_back)
    cpu_start, wall_start = time.process_time(), time.monotonic()
    await loop.run_in_executor(None, lib.pump_run, pump, warmup + seconds, 0.0, warmup)
    cpu, wall = time.process_time() - cpu_start, time.monotonic() - wall_start
    conn.send("sent")
    await _recv(conn)  # report
    await loop.run_in_executor(None, lib.pump_run, pump, 0.0, LINGER, 0.0)  # what is still on its way
    loop.remove_reader(back.fileno())
    on_back()
    for pair in pairs:
        pair.protocol.transport.resume_reading()
    counts = []
    out = (ctypes.c_uint64 * 4)()
    for index in range(count):
        lib.pump_counts(pump, index, out)
        counts.append((out[0], out[1], out[2], out[3]))
    histograms = []
    buckets = (ctypes.c_uint64 * BUCKETS)()
    for direction in (0, 1):
        lib.pump_histogram(pump, direction, buckets)
        histograms.append(list(buckets))
    errors = (ctypes.c_uint64 * len(ERRORS))()
    lib.pump_errors(pump, errors)
    late = (ctypes.c_uint64 * LATE_SECONDS)()
    lib.pump_late(pump, late)
    conn.send(
        Report(
            counts,
            (histograms[0], histograms[1]),
            dict(zip(ERRORS, errors, strict=True)),
            cpu,
            wall,
            list(late)[: math.ceil(seconds)],
        )
    )
    await _recv(conn)  # bye
    lib.pump_free(pump)
    del keep
    for browser in browsers:
        await browser.close()
    for sock in [phone, back, back_peer, *others]:
        sock.close()


def peer_main(
    conn: Connection,
    count: int,
    legs: str,
    seconds: float,
    warmup: float,
    ramp: float,
    library: str,
    mode: str = "passthrough",
    spread: float = 1.0,
) -> None:
    """``spread``: the share of the 20 ms frame the calls' phases are drawn from (1: at random over the
    whole frame, as real calls; 0: lock-step, every call's packets in the same millisecond)."""
    asyncio.run(_run(conn, count, legs, seconds, warmup, ramp, library, mode, spread))


def percentile(histogram: list[int], share: float) -> float:
    """Seconds: the upper edge of the bucket holding the ``share`` quantile (nan when empty)."""
    total = sum(histogram)
    if total == 0:
        return float("nan")
    wanted, seen = share * total, 0
    for bucket, n in enumerate(histogram):
        seen += n
        if seen >= wanted:
            return (bucket + 1) * BUCKET_S
    return len(histogram) * BUCKET_S
