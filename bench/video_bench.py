"""Benchmark of video pass-through (issue 19): N concurrent audio+video calls through the media bridge.

The gateway side (N MediaBridges, `codecs.video: [VP8]`, the fast lane on for audio) runs in one process,
the peers in another: N "browsers" (the gateway's own WebRtcLeg with its video transceiver, sending
pre-encoded payloads: PCMU every 20 ms and VP8 at about ``--kbps`` kbit/s, 30 frames a second, encoded
once at start-up by libvpx) and N plain RTP "phones" sending the same both ways. Printed: CPU seconds per
call-second of the gateway process over the media period, packets forwarded, video packets received at
each end. ``--modes audio,video`` runs the audio-only calls too, so the cost of the video shows as a
ratio measured in the same run.

``--paths python,fast`` compares the Python path (no fast lane) with the native engines (audio and, since
the video lanes, video too); the load average after each case is printed (the machine is shared).

Run: python bench/video_bench.py [10,50] [--seconds 5] [--kbps 1000] [--modes audio,video] [--paths python,fast]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import multiprocessing
import os
import random
import struct
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FPS = 30
_HEADER = struct.Struct("!BBHII")


async def _recv(conn: Connection) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


def _encoded_frames(kbps: int, count: int = 60) -> list[list[bytes]]:
    """``count`` VP8 frames of a noisy 640x480 picture at about ``kbps``, packetized by aiortc."""
    import av
    from aiortc.codecs.vpx import Vp8Encoder

    encoder = Vp8Encoder()
    encoder.target_bitrate = kbps * 1000
    rng = random.Random(19)
    frames = []
    for number in range(count):
        frame = av.VideoFrame(width=640, height=480, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes(rng.getrandbits(8) >> 3 for _ in range(plane.buffer_size)))
        frame.pts, frame.time_base = number * 3000, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=number == 0)
        frames.append(payloads)
    return frames


class _Phone(asyncio.DatagramProtocol):
    """One plain RTP video socket of a phone: sends the frames, counts what comes back."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.remote: tuple[str, int] | None = None
        self.received = self.sent = 0
        self.pt = 96  # the VP8 payload type of the offer
        self.ssrc, self.seq = random.getrandbits(32), random.getrandbits(16)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received += 1

    def send_frame(self, payloads: list[bytes], timestamp: int, pt: int) -> None:
        for i, payload in enumerate(payloads):
            marker = 0x80 if i == len(payloads) - 1 else 0
            self.transport.sendto(
                _HEADER.pack(0x80, marker | pt, self.seq, timestamp, self.ssrc) + payload, self.remote
            )
            self.seq = (self.seq + 1) & 0xFFFF
            self.sent += 1


async def _peers(conn: Connection, count: int, video: bool, seconds: float, kbps: int) -> None:
    import sdp
    from gateway.media.codecs import codec_choice
    from gateway.media.video.forward import VideoOut
    from gateway.media.webrtc.web_leg_state import WebLegState
    from gateway.media.webrtc.webrtc_leg import WebLegOptions, WebRtcLeg
    from peers.audio import RtpTonePeer, encode_tone

    frames = _encoded_frames(kbps) if video else []
    loop = asyncio.get_running_loop()
    got = {"audio": [0] * count, "video": [0] * count}

    def counter(kind: str, index: int) -> Any:
        def on_rtp(*_: Any) -> None:
            got[kind][index] += 1

        return on_rtp

    options = WebLegOptions(host_addresses=("127.0.0.1",))
    browsers = [WebRtcLeg(options, on_rtp=counter("audio", i), on_event=lambda e: None) for i in range(count)]
    videos = (
        [b.enable_video(counter("video", i), lambda: None) for i, b in enumerate(browsers)] if video else []
    )
    phones = [RtpTonePeer(record=False) for _ in range(count)]
    cameras = [
        (await loop.create_datagram_endpoint(_Phone, local_addr=("127.0.0.1", 0)))[1] for _ in range(count)
    ]
    vp8 = [sdp.Codec(96, "VP8", 90000)] if video else []
    offers = []
    for browser, phone, camera in zip(browsers, phones, cameras, strict=True):
        await phone.start()
        offer = await browser.create_offer([codec_choice.known("PCMU")], vp8)
        offers.append((sdp.write(offer), phone.address[1], camera.transport.get_extra_info("sockname")[1]))
    conn.send(offers)
    answers = await _recv(conn)
    for browser, phone, camera, (answer, audio, picture) in zip(
        browsers, phones, cameras, answers, strict=True
    ):
        phone.remote = tuple(audio)
        camera.remote = (picture[0], picture[1]) if picture else None
        camera.pt = picture[2] if picture else 96
        await browser.accept_answer(sdp.parse(answer))
    for _ in range(300):
        if all(b.state is WebLegState.CONNECTED for b in browsers):
            break
        await asyncio.sleep(0.1)
    conn.send("ready")
    await _recv(conn)  # go
    web_pt = [
        next(
            (
                c.payload_type
                for c in (b.local.media[1].codecs if b.local and len(b.local.media) > 1 else ())
                if c.name == "VP8"
            ),
            96,
        )
        for b in browsers
    ]
    tone = encode_tone(600, "pcmu")

    async def browser_audio(browser: WebRtcLeg) -> None:
        timestamp = random.getrandbits(32)
        for packet in range(int(seconds * 50)):
            browser.send(tone[packet % len(tone)], timestamp)
            timestamp += 160
            await asyncio.sleep(0.02)

    async def video_both_ways(index: int) -> None:
        camera, timestamp, seq = cameras[index], random.getrandbits(32), random.getrandbits(16)
        for number in range(int(seconds * FPS)):
            payloads = frames[number % len(frames)]
            if camera.remote is not None:
                camera.send_frame(payloads, timestamp, camera.pt)
            for i, payload in enumerate(payloads):
                videos[index].send(VideoOut(web_pt[index], seq, timestamp, i == len(payloads) - 1, payload))
                seq = (seq + 1) & 0xFFFF
            timestamp = (timestamp + 90000 // FPS) & 0xFFFFFFFF
            await asyncio.sleep(1 / FPS)

    async def later(start: Any) -> None:
        await asyncio.sleep(random.uniform(0, 0.02))
        await start()

    cpu = time.process_time()
    await asyncio.gather(
        *(later(lambda p=p: p.send_encoded(tone, seconds)) for p in phones),
        *(later(lambda b=b: browser_audio(b)) for b in browsers),
        *(later(lambda i=i: video_both_ways(i)) for i in range(count) if video),
    )
    conn.send("sent")
    await _recv(conn)
    await asyncio.sleep(1.0)
    peer_cpu = (time.process_time() - cpu) / (seconds + 1.0)
    video_sent = sum(c.sent for c in cameras) + sum(v.sender.packets_sent for v in videos)
    video_received = sum(c.received for c in cameras) + sum(got["video"])
    conn.send((video_sent, video_received, sum(got["audio"]) + sum(p.received for p in phones), peer_cpu))
    await _recv(conn)
    for browser, phone, camera in zip(browsers, phones, cameras, strict=True):
        await browser.close()
        phone.close()
        camera.transport.close()


def peer_main(conn: Connection, count: int, video: bool, seconds: float, kbps: int) -> None:
    asyncio.run(_peers(conn, count, video, seconds, kbps))


async def _gateway(peer: Connection, report: Connection, count: int, video: bool, fast: bool) -> None:
    import sdp
    from gateway.media import fastlane
    from gateway.media.bridge import MediaBridge
    from gateway.media.bridge_settings import BridgeSettings
    from gateway.media.rtp.ports import PortRange, RtpPortAllocator
    from sdp import video as sdp_video

    allocator = RtpPortAllocator(PortRange(50000, 53999))
    pool = fastlane.EnginePool() if fast and fastlane.available() else None
    bridges, answers = [], []
    for index, (offer, audio_port, video_port) in enumerate(await _recv(peer)):
        settings = BridgeSettings(
            allocator, host_addresses=("127.0.0.1",), call_id=f"v{index}", inactivity_timeout=None,
            fast_lane=pool, video_codecs=("VP8",) if video else (),
        )  # fmt: skip
        bridge = MediaBridge(settings, lambda event: None)
        plain = sdp.parse(await bridge.offer_to_sip(offer))
        answer = sdp.answer(plain, codecs=["PCMU"], transport=sdp.PlainTransport("127.0.0.1", audio_port))
        picture = None
        if len(plain.media) > 1 and not plain.media[1].rejected:
            vp8 = [c for c in plain.media[1].codecs if c.name == "VP8"][:1]
            section = sdp_video.answer_section(
                plain.media[1], vp8, port=video_port, address="127.0.0.1", direction=sdp.Direction.SENDRECV
            )
            answer = answer.with_media([answer.media[0], section])
            picture = ("127.0.0.1", plain.media[1].port, vp8[0].payload_type)
        web_answer = await bridge.answer_from_sip(sdp.write(answer))
        bridges.append(bridge)
        answers.append((web_answer, ("127.0.0.1", plain.media[0].port), picture))
    peer.send(answers)
    await _recv(peer)  # ready
    await asyncio.sleep(0.3)
    cpu, wall = time.process_time(), time.monotonic()
    peer.send("go")
    await _recv(peer)  # sent
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    await asyncio.sleep(0.5)
    peer.send("report")
    video_sent, video_received, audio_received, peer_cpu = await _recv(peer)
    stats = [b.stats() for b in bridges]
    videos = [b.video.stats() for b in bridges if b.video is not None]
    links = [b.fast_lane.link for b in bridges if b.fast_lane is not None and b.fast_lane.link is not None]
    linked = len(links)
    video_engine = sum(sum(link.native.video_counters()[:2]) for link in links)
    for bridge in bridges:
        await bridge.close()
    if pool is not None:
        pool.close()
    peer.send("bye")
    report.send(
        {
            "cpu_per_call_second": cpu / (count * wall),
            "audio_forwarded": sum(s.web_to_sip.forwarded + s.sip_to_web.forwarded for s in stats),
            "video_forwarded": sum(v.web_to_sip.forwarded + v.sip_to_web.forwarded for v in videos),
            "video_sent": video_sent,
            "video_received": video_received,
            "audio_received": audio_received,
            "linked": linked,
            "video_engine": video_engine,
            "peer_cpu": peer_cpu,
        }
    )


def gateway_main(peer: Connection, report: Connection, count: int, video: bool, fast: bool) -> None:
    asyncio.run(_gateway(peer, report, count, video, fast))


def run_case(count: int, video: bool, seconds: float, kbps: int, fast: bool = True) -> dict[str, Any]:
    """One case: the peers' and the gateway's processes (spawned), the gateway's report."""
    context = multiprocessing.get_context("spawn")
    gateway_end, peer_end = context.Pipe()
    report_out, report_in = context.Pipe()
    processes = [
        context.Process(target=peer_main, args=(peer_end, count, video, seconds, kbps)),
        context.Process(target=gateway_main, args=(gateway_end, report_in, count, video, fast)),
    ]
    for process in processes:
        process.start()
    try:
        if report_out.poll(120 + 3 * seconds + count):
            report: dict[str, Any] = report_out.recv()
            return report
        raise TimeoutError(f"x{count}: no result")
    finally:
        _end(processes)


def _end(processes: list[Any]) -> None:
    """Wait for each process, killing (by its own handle) one that does not end."""
    for process in processes:
        process.join(timeout=20)
        if process.is_alive():
            process.kill()
            process.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", nargs="?", default="10", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--kbps", type=int, default=1000, help="video bit rate each way")
    parser.add_argument("--modes", default="audio,video")
    parser.add_argument(
        "--paths", default="python,fast", help="python (no fast lane), fast (the native engines), or both"
    )
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"video bench: {os.cpu_count()} CPUs (load average {load} before start), {args.seconds:g} s per case, "
        f"VP8 at ~{args.kbps} kbit/s each way, peers in another process"
    )
    print(
        f"{'path':<8}{'mode':<7}{'calls':>6}{'CPU s/call-s':>14}{'audio fwd':>11}{'video fwd':>11}"
        f"{'by engine':>11}{'video sent':>12}{'video got':>11}{'load':>7}"
    )
    results: dict[str, float] = {}
    for count in (int(c) for c in args.calls.split(",")):
        for path in args.paths.split(","):
            for mode in args.modes.split(","):
                r = run_case(count, mode == "video", args.seconds, args.kbps, fast=path == "fast")
                results[f"{path}-{mode}{count}"] = r["cpu_per_call_second"]
                load = Path("/proc/loadavg").read_text().split()[0]
                print(
                    f"{path:<8}{mode:<7}{count:>6}{r['cpu_per_call_second']:>14.4f}{r['audio_forwarded']:>11}"
                    f"{r['video_forwarded']:>11}{r['video_engine']:>11}{r['video_sent']:>12}"
                    f"{r['video_received']:>11}{load:>7}   (linked {r['linked']}/{count}; peer process "
                    f"{100 * r['peer_cpu']:.0f}% of a core)"
                )
        for mode in args.modes.split(","):
            python, fast = results.get(f"python-{mode}{count}"), results.get(f"fast-{mode}{count}")
            if python and fast:
                print(
                    f"{'':8}{mode} x{count}: the fast lane costs {fast / python:.2f}x the Python path's CPU"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
