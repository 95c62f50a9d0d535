"""Example 2: carry a browser's call to a PBX, and the PBX's answer back to the browser.

Run it from anywhere:  python examples/02_translate_for_pbx.py
The gateway sits between the two: it offers the PBX plain RTP on its own address, and gives the
browser an answer with its own ICE credentials and DTLS fingerprint. The ICE/DTLS values below are
made up for the example; the gateway's media layer (aiortc) provides the real ones.
"""

from __future__ import annotations

from pathlib import Path

import sdp

HERE = Path(__file__).resolve().parent


GATEWAY_RTP = ("192.0.2.10", 40000)  # where the gateway receives RTP from the PBX
PBX_RTP = ("198.51.100.7", 4000)  # where the PBX receives RTP
PBX_CODECS = ["PCMU", "PCMA", "G722"]  # what a typical PBX trunk allows


def main() -> int:
    browser_offer = sdp.parse((HERE / "data" / "chromium-offer-audio-video.sdp").read_text())
    print(
        f"The browser offers {len(browser_offer.media)} streams: "
        + ", ".join(m.media for m in browser_offer.media)
    )

    print("\nStep 1. to_plain(): the offer the gateway sends the PBX in its INVITE.")
    address, port = GATEWAY_RTP
    origin = sdp.Origin(
        "gateway", "4242", 1, address
    )  # the gateway's own o= line (else the browser's is kept)
    pbx_offer = sdp.to_plain(browser_offer, address=address, port=port, codecs=PBX_CODECS, origin=origin)
    print(sdp.write(pbx_offer))
    print("Notice: RTP/AVP, the gateway's own address, only the codecs the PBX allows in the browser's")
    print("order, telephone-event/8000 with fmtp 0-16, no ICE, DTLS, BUNDLE, msid, ssrc or extmap.")
    print("The video m-line stays, with port 0, so the PBX's answer lines up with the browser's offer.\n")

    print("Step 2. The PBX answers (simulated here with sdp.answer on the PBX's side):")
    pbx_answer = sdp.answer(pbx_offer, codecs=PBX_CODECS, transport=sdp.PlainTransport(*PBX_RTP))
    print(sdp.write(pbx_answer))

    print("Step 3. to_webrtc(): the answer the browser gets, with the gateway's ICE and DTLS.")
    ice = sdp.IceParameters("gWay", "gatewaypassword0123456789")
    fingerprint = sdp.Fingerprint("sha-256", ":".join(["AB"] * 32))
    dtls = sdp.DtlsParameters((fingerprint,), sdp.Setup.ACTIVE)  # an answerer is active or passive
    candidate = sdp.Candidate("1", 1, "udp", 2130706431, "192.0.2.10", 50000)
    mids = [m.mid or str(i) for i, m in enumerate(browser_offer.media)]
    browser_answer = sdp.to_webrtc(
        pbx_answer,
        ice=ice,
        dtls=dtls,
        candidates=[candidate],
        mids=mids,
        end_of_candidates=True,
        origin=origin,
    )
    print(sdp.write(browser_answer))
    print(f"It mirrors the browser's mids {mids}; the rejected video stays out of the BUNDLE group.\n")

    print("Step 4. Hold from the PBX side: pjsua2 sends a=sendonly in a re-INVITE.")
    hold = sdp.parse((HERE / "data" / "pjsua2-offer-hold.sdp").read_text())
    web_hold = sdp.to_webrtc(hold, ice=ice, dtls=dtls, candidates=[candidate])
    print(
        f"The browser is told: a={web_hold.media[0].direction.value if web_hold.media[0].direction else '?'}"
        " (an old-style c=0.0.0.0 hold would become the same, since WebRTC ignores c=)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
