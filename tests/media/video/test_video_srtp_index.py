"""No two video packets reach the browser under one SRTP index (RFC 3711 §9.1, RFC 7714 §9.1), on the Python
path and through the fast lane's engine: the browser is aiortc (peers.webpeer.WebPeer with a camera, video
added mid-call as a page does), the phone a plain RTP/AVP VP8 phone (peers.video_phone.PlainVideoPeer).

Video's stream lets a packet go again under its index (the phone's answer to the browser's NACK is the same
packet), so a duplicate of one of the phone's numbers with another payload (a spoofed plain RTP packet, here
sent from the phone's own address) would be encrypted under the index its first copy took: the XOR of the
two payloads, and with GCM the key, for whoever sees the browser's traffic. The send guard
(gateway/media/rtp/send_guard.py) drops it; the same packet again still goes, the very same bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import sdp
from peers.video_phone import PlainVideoPeer
from tests.media.bridge_harness import Call
from tests.media.fastlane.test_passthrough_sequence import tap_wire
from tests.media.video.test_video_escalation import audio_call, call, check_video_both_ways, reoffer, until

__all__ = ["call"]  # the fixture: an aiortc browser with a camera, with and without the fast lane


async def test_a_spoofed_duplicate_of_the_phones_video_never_reaches_the_browser_under_its_index(
    call: Call,
) -> None:
    camera = PlainVideoPeer("VP8")
    await camera.start()
    sent: list[bytes] = []
    try:
        phone_sdp = await audio_call(call, "browser")
        call.web.add_video()
        ours = sdp.parse(await call.bridge.reoffer_sip_for_web(await call.web.offer()))
        with_video = reoffer(phone_sdp, camera.answer(ours.media[1], "127.0.0.1"))
        await call.web.accept(await call.bridge.answer_web_reoffer(with_video))
        await check_video_both_ways(call, camera)
        transport, remote = camera._rtp, camera.remote
        assert transport is not None and remote is not None
        original = transport.sendto

        def recording(data: bytes, address: Any = None) -> None:
            sent.append(bytes(data))
            original(data, address)

        transport.sendto = recording  # type: ignore[method-assign,assignment]
        wire = tap_wire(call.web)
        await camera.send_video(1.0)  # what the duplicates copy: the phone's latest packets
        recent = sent[-8:-2]
        for packet in recent:  # each again with another payload (its VP8 descriptor kept), then the same
            original(packet[:13] + bytes(b ^ 0x5A for b in packet[13:]), remote)
            original(packet, remote)
        await camera.send_video(0.5)  # and the call goes on
        await asyncio.sleep(0.3)
        ours_ssrc = call.bridge.video.web.sender.ssrc if call.bridge.video and call.bridge.video.web else None
        by_index: dict[int, set[bytes]] = {}
        for datagram in wire:
            if int.from_bytes(datagram[8:12], "big") == ours_ssrc:
                by_index.setdefault(int.from_bytes(datagram[2:4], "big"), set()).add(datagram)
        repeated = [n for n, copies in by_index.items() if len(copies) > 1]
        assert len(by_index) > 20 and not repeated, repeated
        counts: dict[int, int] = {}
        for datagram in wire:
            if int.from_bytes(datagram[8:12], "big") == ours_ssrc:
                number = int.from_bytes(datagram[2:4], "big")
                counts[number] = counts.get(number, 0) + 1
        assert sum(1 for n in counts.values() if n >= 2) >= len(recent) - 1, counts  # the same packets again
        assert await until(lambda: len(call.web.pictures) > 0)
    finally:
        camera.close()
