"""Work the first call of a gateway process did for every later one, done when the gateway starts.

The first offer -> answer of a run took 25-57 ms where the next ones took ~7 (issue 14 goal 3,
``bench/setup_bench.py`` at 1 call/s, where it is the p99); the first call's profile showed why, each
made once and reused by every later call:

* the process's DTLS certificate for web legs (``DtlsCertificates.current``: an ECDSA key, a signature,
  and cryptography's OpenSSL backend imported on the way, ~10 ms) and aiortc's object for it;
* the fast lane's codec tables (``EnginePool.transcoding``: G.711 run through FFmpeg both ways, libopus
  looked up, ~11 ms);
* the SDP grammar's regular expressions, compiled at their first match (~4 ms);
* the host's interfaces for ICE gathering (``aiortc_hooks.cache_host_addresses``, ~2 ms; then once a
  minute).
"""

from __future__ import annotations

import logging
import time

import aioice.ice

import sdp
from gateway.media import bridge_settings
from gateway.media.fastlane.engine import EnginePool
from gateway.media.rtp.dtls_srtp import DtlsCertificates
from gateway.media.webrtc import aiortc_hooks

logger = logging.getLogger(__name__)

# A browser's audio offer, as Chromium writes it (every line kind the grammar meets in a call's offer).
SAMPLE_OFFER = "\r\n".join(
    (
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host generation 0 network-id 1",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=sendrecv",
        "a=msid:- 5a6b",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:126 telephone-event/8000",
        "a=ssrc:1111 cname:abcd",
        "",
    )
)


def warm_up(certificates: DtlsCertificates | None, fast_lane: EnginePool | None) -> float:
    """Make the once-per-process parts of a call's setup now; the seconds it took."""
    started = time.perf_counter()
    certificate = bridge_settings.web_certificate(certificates)
    if certificate is not None:
        aiortc_hooks.make_shared_context(certificate)  # what the first DTLS start made (~6 ms)
    if fast_lane is not None:
        fast_lane.transcoding  # noqa: B018  # a property that loads the codecs once
    sdp.parse(SAMPLE_OFFER)
    aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)  # cached when start() asked for it
    took = time.perf_counter() - started
    logger.info("call setup warmed up in %.1f ms", 1000 * took)
    return took
