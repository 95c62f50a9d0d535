"""A seeded mutator over real browser offers, and the path an offer takes after the gateway dialled.

`mutants(seed, count)` yields offers made from the WebRTC offers of tests/data/sdp by a few line-level
mutations each (a line dropped, duplicated or moved, a token replaced by an odd value, an attribute
added from a pool of malformed ones): what a buggy or hostile browser may send.

`after_dial(text)` runs what the media path does with an offer once the SIP side answered: the web
leg's pruning (gateway/media/webrtc/web_sdp.py) and aiortc's ``setRemoteDescription`` and
``createAnswer`` in a throwaway RTCPeerConnection (no ICE gathering), then the answer restored. Any
exception there is a call that was placed and then died.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

import sdp
from gateway.media.codecs import codec_choice
from gateway.media.webrtc import aiortc_hooks, web_sdp
from gateway.media.webrtc.webrtc_leg import capabilities
from tests.sdp.samples import DATA

WEB_CODECS = ("opus", "PCMU", "PCMA", "G722")
SEEDS = tuple(
    (DATA / f"{name}.sdp").read_text()
    for name in (
        "chromium-offer-audio",
        "chromium-offer-audio-pcmu",
        "chromium-offer-audio-video",
        "chromium-offer-audio-video-datachannel",
        "chromium-offer-datachannel",
        "aiortc-offer-audio",
        "baresip-offer-dtls-ice",
    )
)
ODD_TOKENS = (
    "", "x", "-1", "0", "65536", "99999999999999999999", "1.5", ":", "::", "/", "é", "IN", "IP4",
    "UDP/TLS/RTP/SAVPF", "audio", "video", "application", "111", "a=b", "\t", "256", "-", "*",
)  # fmt: skip
ODD_LINES = (
    "a=fingerprint:md5 00:11", "a=fingerprint:sha-256", "a=fingerprint:", "a=fingerprint:sha-256 zz",
    "a=setup:", "a=setup:bogus", "a=setup:holdconn", "a=ice-ufrag:", "a=ice-pwd:", "a=ice-ufrag",
    "a=candidate:", "a=candidate:1 1 udp", "a=candidate:1 1 udp x 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 x typ host", "a=candidate:1 x udp 1 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 9 typ", "a=candidate:1 1 sctp 1 127.0.0.1 9 typ host",
    "a=rtpmap:111", "a=rtpmap:111 opus", "a=rtpmap:x opus/48000/2", "a=rtpmap:111 opus/x/2",
    "a=rtpmap:111 opus/48000/x", "a=fmtp:111", "a=fmtp:x y", "a=rtcp-fb:x nack", "a=rtcp-fb:111",
    "a=extmap:x urn:x", "a=extmap:1", "a=extmap:", "a=ssrc:x cname:y", "a=ssrc:1", "a=ssrc-group:FID x",
    "a=ssrc-group:FID", "a=msid:", "a=group:BUNDLE", "a=group:BUNDLE 9", "a=group:", "a=mid:",
    "a=mid:0", "a=mid:1", "a=rtcp:x", "a=rtcp:9 IN", "a=sctp-port:x", "a=sctp-port:", "a=max-message-size:x",
    "a=sctpmap:x webrtc-datachannel", "a=ice-lite", "a=ice-options:", "a=end-of-candidates",
    "a=direction:x", "a=recvonly", "a=inactive", "a=rtcp-mux", "c=IN IP4", "c=IN IP7 1.2.3.4", "c=",
    "b=AS:x", "b=", "t=x y", "a=framerate:x", "a=ptime:x", "a=maxptime:", "a=rid:", "a=simulcast:x",
    "a=imageattr:x", "a=rtcp-rsize", "a=tls-id:", "a=identity:x",
)  # fmt: skip


def _mutate(rng: random.Random, lines: list[str]) -> None:
    i = rng.randrange(len(lines))
    kind = rng.randrange(6)
    if kind == 0 and len(lines) > 1:
        del lines[i]
    elif kind == 1:
        lines.insert(rng.randrange(len(lines) + 1), lines[i])
    elif kind == 2:
        lines.insert(rng.randrange(len(lines) + 1), lines.pop(i))
    elif kind in (3, 4):
        tokens = lines[i].replace(":", " : ", 1).split(" ")
        j = rng.randrange(len(tokens))
        tokens[j] = rng.choice(ODD_TOKENS)
        lines[i] = " ".join(tokens).replace(" : ", ":", 1)
    else:
        lines.insert(rng.randrange(1, len(lines) + 1), rng.choice(ODD_LINES))


def mutants(seed: int, count: int) -> Iterator[str]:
    """``count`` offers mutated from the real ones, the same for the same ``seed``."""
    rng = random.Random(seed)
    for _ in range(count):
        lines = rng.choice(SEEDS).splitlines()
        for _ in range(rng.randint(1, 3)):
            _mutate(rng, lines)
        yield "\r\n".join(lines) + "\r\n"


def before_dial_legacy(text: str) -> None:
    """What the gateway checked before dialling until issue 32: the parse and the bridge's first look
    (``MediaBridge.take_web_offer``)."""
    offer = sdp.parse(text)
    section = web_sdp.prune_offer(offer).description.media[0]
    if not codec_choice.offered(section, WEB_CODECS):
        raise sdp.SdpUnacceptable("no codec")


async def after_dial(text: str, *, video: bool = False, data_channel: bool = True) -> None:
    """What the web leg does with the offer once the SIP side answered (``WebRtcLeg.accept_offer``)."""
    aiortc_hooks.register_telephone_event()
    offer = sdp.parse(text)
    pc = RTCPeerConnection(RTCConfiguration())
    try:
        transceiver = pc.addTransceiver("audio", direction="sendrecv")
        if video:
            pc.addTransceiver("video", direction="sendrecv")
        pruned = web_sdp.prune_offer(offer, video=video, data_channel=data_channel)
        usable = codec_choice.offered(pruned.description.media[0], WEB_CODECS)
        transceiver.setCodecPreferences(capabilities(usable))
        await pc.setRemoteDescription(RTCSessionDescription(sdp.write(pruned.description), "offer"))
        answer = await pc.createAnswer()
        web_sdp.restore_answer(pruned, sdp.parse(answer.sdp))
    finally:
        await pc.close()
