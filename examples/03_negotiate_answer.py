"""Example 3: answer an offer by RFC 3264, and trickle ICE candidates by RFC 8840.

Run it from anywhere:  python examples/03_negotiate_answer.py
"""

from __future__ import annotations

from pathlib import Path

import sdp

HERE = Path(__file__).resolve().parent


def main() -> int:
    offer = sdp.parse((HERE / "data" / "chromium-offer-audio-video.sdp").read_text())
    ice = sdp.IceParameters("gWay", "gatewaypassword0123456789")
    dtls = sdp.DtlsParameters((sdp.Fingerprint("sha-256", ":".join(["CD"] * 32)),))
    host = sdp.Candidate("1", 1, "udp", 2130706431, "192.0.2.10", 50000)
    web = sdp.WebRtcTransport(ice, dtls, (host,))

    print("1. Answering the browser with opus and G.711 allowed:")
    reply = sdp.answer(offer, codecs=["opus", "PCMU", "PCMA"], transport=web)
    audio, video = reply.media
    print(f"   m={audio.m_line}")
    print("   opus keeps the OFFER's payload type 111 (RFC 3264 §6.1); telephone-event is answered at")
    print("   48000 Hz (110, for opus) and 8000 Hz (126, for G.711), the rates of the chosen codecs.")
    print(f"   DTLS role: {audio.setup.value if audio.setup else '?'} (the offer said actpass, RFC 5763 §5).")
    print(f"   m={video.m_line[:40]}...  video rejected with port 0, same media, proto and position.\n")

    print("2. The answerer's preference instead of the offerer's:")
    mine = sdp.answer(offer, codecs=["PCMA", "PCMU"], transport=web, preference=sdp.Preference.ANSWERER)
    print(f"   m={mine.media[0].m_line}\n")

    print("3. Directions follow RFC 3264 §6.1; a plain offer on hold (a=sendonly) is answered recvonly:")
    hold = sdp.parse((HERE / "data" / "pjsua2-offer-hold.sdp").read_text())
    held = sdp.answer(hold, codecs=["PCMU"], transport=sdp.PlainTransport("192.0.2.10", 40000))
    print(
        f"   offer a={hold.direction_for(0).value} -> answer a={held.media[0].direction.value if held.media[0].direction else '?'}\n"
    )

    print("4. Nothing in common is a 488 for the SIP layer:")
    try:
        sdp.answer(offer, codecs=["G729"], transport=web)
    except sdp.SdpUnacceptable as exc:
        print(f"   SdpUnacceptable, sip_status={exc.sip_status}: {str(exc)[:90]}...\n")

    print("5. Trickle ICE: a candidate gathered late, as an INFO body (application/trickle-ice-sdpfrag)")
    late = sdp.Candidate("2", 1, "udp", 1694498815, "203.0.113.9", 50000, "srflx", "192.0.2.10", 50000)
    fragment = sdp.TrickleFragment(ice, (sdp.TrickleMedia("0", (late,), end_of_candidates=True),))
    body = sdp.encode_sdpfrag(fragment)
    print("   " + body.replace("\r\n", "\n   ").rstrip())
    print("   ...and as the browser's JSON for addIceCandidate():")
    for item in sdp.fragment_to_json(sdp.decode_sdpfrag(body), mids=["0", "1"]):
        print(f"   {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
