"""Example 1: read a real Chromium offer and see what the gateway sees in it.

Run it from anywhere:  python examples/01_inspect_browser_offer.py
It parses examples/data/chromium-offer-audio.sdp (captured from Chromium 156), tells what kind of
description it is, and walks through the parts that matter to a SIP-to-WebRTC gateway.
"""

from __future__ import annotations

from pathlib import Path

import sdp

HERE = Path(__file__).resolve().parent


def main() -> int:
    text = (HERE / "data" / "chromium-offer-audio.sdp").read_bytes().decode()  # keep the CRLF line ends
    offer = sdp.parse(text)

    print("1. Parsing keeps everything: writing the description back gives the same text, byte for byte.")
    print(f"   write(parse(text)) == text: {sdp.write(offer) == text}")
    print(
        f"   {len(offer.attributes)} session-level and {len(offer.media[0].attributes)} media-level attributes,"
        " in their original order.\n"
    )

    print(f"2. What kind of peer wrote it? classify() says: {sdp.classify(offer).name}")
    print("   (UDP/TLS/RTP/SAVPF with ICE credentials and a DTLS fingerprint: a browser.)\n")

    audio = offer.media[0]
    print(f"3. The m-line: m={audio.m_line}")
    print("   Its codecs, in the browser's order of preference:")
    for codec in audio.codecs:
        extra = f"  fmtp {codec.fmtp}" if codec.fmtp else ""
        print(
            f"     PT {codec.payload_type:>3}  {codec.name}/{codec.clock_rate}"
            + (f"/{codec.channels}" if codec.channels > 1 else "")
            + extra
        )
    print("   Two telephone-events (48000 and 8000 Hz): the SIP side will get the 8000 Hz one.\n")

    ice = offer.ice_for(0)
    dtls = offer.dtls_for(0)
    if ice is None or dtls is None:
        print("This offer has no ICE or DTLS parameters: not a browser's.")
        return 1
    print("4. Transport security, all of which the SIP side never sees:")
    print(f"   ICE ufrag {ice.ufrag!r}, trickle supported: {ice.trickle}")
    print(
        f"   DTLS setup {dtls.setup.value}, fingerprint {dtls.fingerprints[0].algorithm} {dtls.fingerprints[0].value[:23]}..."
    )
    print(f"   BUNDLE group over mids {offer.bundle_mids()}, rtcp-mux: {audio.rtcp_mux}\n")

    print("5. Candidates (RFC 8839), including TCP ones with their tcptype (RFC 6544):")
    for candidate in audio.candidates:
        tcp = f" tcptype {candidate.tcptype}" if candidate.tcptype else ""
        print(f"   {candidate.protocol} {candidate.address}:{candidate.port} typ {candidate.type}{tcp}")
    print("\n6. The same candidate as the browser's JSON, ready for a WebSocket message:")
    print(f"   {sdp.candidate_to_json(audio.candidates[2], mid=audio.mid, index=0, ufrag=ice.ufrag)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
