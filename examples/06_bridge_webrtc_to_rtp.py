"""Example 6: bridge a WebRTC peer to a plain RTP phone, without SIP.

An aiortc peer plays the browser (1000 Hz tone), a small UDP peer plays the desk phone (600 Hz tone, PCMU).
The MediaBridge takes SDP in and gives SDP out, exactly as the SIP layer will use it:

    plain_offer = await bridge.offer_to_sip(browser_offer)    # goes into the INVITE
    browser_answer = await bridge.answer_from_sip(phone_answer)

Run it from anywhere:  python examples/06_bridge_webrtc_to_rtp.py   (about 5 seconds, everything on 127.0.0.1)
"""

from __future__ import annotations

import asyncio
import logging
import sys

import sdp
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.events import CodecChosen, MediaConnected, MediaEvent
from gateway.media.rtp.ports import PortRange, RtpPortAllocator
from peers.audio import RtpTonePeer
from peers.webpeer import WebPeer


def short(text: str, keep: tuple[str, ...]) -> str:
    lines = [line for line in text.splitlines() if line.startswith(keep)]
    return "\n".join("     " + line for line in lines)


async def one_call(title: str, browser_codecs: tuple[str, ...] | None) -> bool:
    print(f"== {title}")
    events: list[MediaEvent] = []
    settings = BridgeSettings(
        RtpPortAllocator(PortRange(41000, 41999)),
        host_addresses=("127.0.0.1",),  # tests and demos on loopback only; production gathers real interfaces
        call_id="demo",
    )
    bridge = MediaBridge(settings, events.append)
    browser, phone = WebPeer(1000, codecs=browser_codecs), RtpTonePeer()
    try:
        _, phone_port = await phone.start()
        offer = await browser.offer()
        print(f"1. the browser offers:\n{short(offer, ('m=audio', 'a=rtpmap'))}")
        plain = await bridge.offer_to_sip(offer)
        print(
            f"2. the bridge offers the phone (plain RTP/AVP, browser's codecs first):\n{short(plain, ('c=', 'm=', 'a=rtpmap'))}"
        )
        plain_offer = sdp.parse(plain)
        answer = sdp.answer(
            plain_offer, codecs=["PCMU"], transport=sdp.PlainTransport("127.0.0.1", phone_port)
        )
        print(f"3. the phone answers PCMU only:\n{short(sdp.write(answer), ('m=',))}")
        phone.remote = (
            plain_offer.connection.address if plain_offer.connection else "127.0.0.1",
            plain_offer.media[0].port,
        )
        web_answer = await bridge.answer_from_sip(sdp.write(answer))
        print(
            f"4. the bridge answers the browser (ICE, DTLS):\n{short(web_answer, ('m=audio', 'a=rtpmap', 'a=setup', 'a=candidate'))}"
        )
        await browser.accept(web_answer)
        await browser.connected()
        for _ in range(100):  # the bridge's own MediaConnected may come a moment after the browser's
            if any(isinstance(e, MediaConnected) for e in events):
                break
            await asyncio.sleep(0.05)
        else:
            print("5. the bridge never reported its WebRTC leg connected")
            return False
        chosen = next(e for e in events if isinstance(e, CodecChosen))
        mode = "transcoding" if chosen.transcoding else "pass-through (payloads forwarded without decoding)"
        print(
            f"5. media connected (ICE and DTLS done); codecs: browser {chosen.web}, phone {chosen.sip}: {mode}"
        )
        await phone.send_tone(600, 1.5)
        await asyncio.sleep(0.2)
        browser_ok, phone_ok = browser.heard(600, last=0.75), phone.heard(1000)
        stats = bridge.stats()
        heard = {True: "heard", False: "did NOT hear"}
        print(f"6. the browser {heard[browser_ok]} the phone's 600 Hz tone; "
              f"the phone {heard[phone_ok]} the browser's 1000 Hz tone")  # fmt: skip
        print(f"   forwarded web->sip {stats.web_to_sip.forwarded}, sip->web {stats.sip_to_web.forwarded}; "
              f"lost {stats.web_to_sip.lost + stats.sip_to_web.lost}; transcoded {stats.web_to_sip.transcoded + stats.sip_to_web.transcoded}\n")  # fmt: skip
        return browser_ok and phone_ok
    finally:
        await bridge.close()
        await browser.close()
        phone.close()


async def main() -> int:
    ok = await one_call("A browser offering PCMU among its codecs: pass-through", None)
    ok &= await one_call(
        "A browser offering Opus only: Opus <-> PCMU transcoding", ("opus", "telephone-event")
    )
    print("all tones heard both ways" if ok else "SOMETHING WAS NOT HEARD")
    return 0 if ok else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main()))
