"""Benchmark of the sdp package: microseconds per parse, write and translation, on real samples.

Run: python bench/sdp_bench.py   (about 5 seconds; numbers depend on the machine, compare ratios)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import sdp

ROOT = Path(__file__).resolve().parent.parent


DATA = ROOT / "tests" / "data" / "sdp"
BUDGET_S = 0.6  # per measurement; 8 measurements stay well under 20 s


def per_call_us(function: Callable[[], object]) -> tuple[float, int]:
    """Mean microseconds per call over about BUDGET_S seconds (after a short warm-up)."""
    for _ in range(20):
        function()
    count, start = 0, time.perf_counter()
    deadline = start + BUDGET_S
    while True:
        for _ in range(50):
            function()
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            return (now - start) / count * 1e6, count


def main() -> int:
    chromium_text = (DATA / "chromium-offer-audio.sdp").read_bytes().decode()
    video_text = (DATA / "chromium-offer-audio-video.sdp").read_bytes().decode()
    pjsua2_text = (DATA / "pjsua2-answer-pcmu-g722.sdp").read_bytes().decode()
    chromium, pjsua2 = sdp.parse(chromium_text), sdp.parse(pjsua2_text)
    ice = sdp.IceParameters("gWay", "gatewaypassword0123456789")
    dtls = sdp.DtlsParameters((sdp.Fingerprint("sha-256", ":".join(["AB"] * 32)),), sdp.Setup.ACTIVE)
    host = sdp.Candidate("1", 1, "udp", 2130706431, "192.0.2.10", 50000)
    codecs = ["PCMU", "PCMA", "G722", "opus"]

    def chromium_to_plain() -> str:
        offer = sdp.parse(chromium_text)
        return sdp.write(sdp.to_plain(offer, address="192.0.2.10", port=40000, codecs=codecs))

    def plain_answer_to_webrtc() -> str:
        answer = sdp.parse(pjsua2_text)
        return sdp.write(sdp.to_webrtc(answer, ice=ice, dtls=dtls, candidates=[host], mids=["0"]))

    cases: list[tuple[str, Callable[[], object]]] = [
        ("translate Chromium offer -> plain (parse+to_plain+write)", chromium_to_plain),
        ("translate plain answer -> WebRTC (parse+to_webrtc+write)", plain_answer_to_webrtc),
        ("parse Chromium offer (audio, 42 lines)", lambda: sdp.parse(chromium_text)),
        ("parse Chromium offer (audio+video, 169 lines)", lambda: sdp.parse(video_text)),
        ("parse pjsua2 answer (15 lines)", lambda: sdp.parse(pjsua2_text)),
        ("write Chromium offer", lambda: sdp.write(chromium)),
        ("write pjsua2 answer", lambda: sdp.write(pjsua2)),
        (
            "answer Chromium offer (RFC 3264, WebRTC transport)",
            lambda: sdp.answer(chromium, codecs=codecs, transport=sdp.WebRtcTransport(ice, dtls, (host,))),
        ),
    ]
    print(f"sdp benchmark, Python {sys.version.split()[0]}, about {BUDGET_S} s per line")
    for label, function in cases:
        microseconds, count = per_call_us(function)
        print(f"  {label:<58} {microseconds:9.1f} us/call  ({count} calls)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
