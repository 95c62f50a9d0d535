"""Chat on a gateway call (issue 17 item 6): the browser's data channel and the SIP side's MESSAGE in the
call's dialog (RFC 3428 §4), with real peers:

- an aiortc browser stand-in (peers/webpeer.py) opens a data channel `chat` on its call to the pjsua2
  desk phone: its text reaches the phone as MESSAGE (text/plain) in the dialog, the phone's MESSAGE comes
  back on the channel and as a `message {call_id, body}` event on /ws, while audio flows both ways (the
  fast lane carries RTP and leaves the channel's DTLS records to aiortc);
- on a call the phone places to the web user, the gateway's offer opens the channel (m=application): the
  aiortc page answers it, and chat goes both ways on it as on calls the page places;
- `message {call_id, body}` on /ws goes the same way and the browser learns the phone's answer
  (`message_result`); a MESSAGE body the gateway does not relay gets 415 at the phone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from peers.audio import detect_tone, read_wav
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway


def config(pbx: str) -> object:
    # RTP in this branch's range (34000-35999)
    return gateway_config(pbx, media={"rtp_ports": {"start": free_range()}})


async def test_chat_on_the_data_channel_and_the_websocket_both_ways(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(config(phone.address)) as gateway,  # type: ignore[arg-type]
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000, chat=True)
        try:
            offer = await peer.offer()
            assert "m=application" in offer
            call_id = await alice.call("2000", offer)
            answer = (await alice.wait_for("connected", call_id=call_id))["sdp"]
            assert "m=application 0 " not in answer and "webrtc-datachannel" in answer, answer
            await peer.accept(answer)
            number = (await phone.wait_for("incoming"))["call"]
            await phone.wait_for("state", call=number, state="CONFIRMED")

            # browser -> phone: the channel's text as MESSAGE in the dialog
            await peer.say("Hello from the page")
            got = await phone.wait_for("message", call=number)
            assert got["body"] == "Hello from the page" and got["content_type"].startswith("text/plain"), got
            assert (await alice.wait_for("message_result", call_id=call_id))["status"] == 200

            # phone -> browser: on the channel and as a `message` event
            await phone.send("message", call=number, body="Hello from the desk ☎")
            await peer.wait_text("Hello from the desk ☎")
            event = await alice.wait_for("message", call_id=call_id)
            assert event["body"] == "Hello from the desk ☎", event
            assert (await phone.wait_for("message_status", call=number))["code"] == 200

            # the same over /ws, for clients without a data channel
            await alice.request({"type": "message", "call_id": call_id, "body": "typed in the softphone"})
            got = await phone.wait_for("message", call=number, body="typed in the softphone")
            assert (await alice.wait_for("message_result", call_id=call_id))["status"] == 200
            with pytest.raises(WebUserError, match="to"):
                await alice.request({"type": "message", "call_id": call_id, "to": "2000", "body": "x"})
            with pytest.raises(WebUserError, match="call_id"):
                await alice.request({"type": "message", "call_id": "nope", "body": "x"})

            # a body the gateway does not relay: 415 at the phone, nothing on the channel
            await phone.send("message", call=number, content_type="text/html", body="<b>hi</b>")
            assert (await phone.wait_for("message_status", call=number, code=415))["code"] == 415

            # audio went both ways all along: the phone's 440 Hz in the page, the page's 1 kHz at the phone
            await asyncio.sleep(1.0)
            assert peer.heard(440), "the phone's tone did not reach the page"
            assert "<b>" not in " ".join(peer.texts)
            await alice.request({"type": "hangup", "call_id": call_id})
            await phone.wait_for("state", call=number, state="DISCONNECTED")
            rate, samples = read_wav(await phone.wait_for_recording(number))
        finally:
            await peer.close()
    assert detect_tone(samples[-rate:], rate, 1000), "the page's tone did not reach the phone"


async def test_chat_on_a_call_the_web_user_receives(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(config(phone.address)) as gateway,  # type: ignore[arg-type]
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)  # opens no channel of its own: it answers the gateway's
        try:
            host, port = gateway.sip_address
            number = await phone.call(f"sip:1001@{host}:{port}")
            call_id = (await alice.wait_for("incoming"))["call_id"]
            offers: list[str] = []

            async def answer(offer: str) -> str:
                offers.append(offer)
                return await peer.answer(offer)

            await alice.answer(call_id, answer)
            await phone.wait_for("state", call=number, state="CONFIRMED")
            assert "m=application" in offers[0] and "webrtc-datachannel" in offers[0], offers
            assert offers[0].index("m=audio") < offers[0].index("m=application")

            # phone -> web user: MESSAGE in the dialog the phone set up, on the gateway's channel
            await phone.send("message", call=number, body="Can you hear me? ☎")
            await peer.wait_text("Can you hear me? ☎")
            assert peer.channel is not None and peer.channel.label == "chat"
            event = await alice.wait_for("message", call_id=call_id)
            assert event["body"] == "Can you hear me? ☎", event
            assert (await phone.wait_for("message_status", call=number))["code"] == 200

            # web user -> phone: the channel's text as MESSAGE in that dialog
            await peer.say("Loud and clear")
            got = await phone.wait_for("message", call=number)
            assert got["body"] == "Loud and clear" and got["content_type"].startswith("text/plain"), got
            assert (await alice.wait_for("message_result", call_id=call_id))["status"] == 200

            await asyncio.sleep(1.0)
            assert peer.heard(440), "the phone's tone did not reach the page"
            await phone.hangup(number)
            assert (await alice.wait_for("ended", call_id=call_id))["reason"] == "remote_hangup"
            rate, samples = read_wav(await phone.wait_for_recording(number))
        finally:
            await peer.close()
    assert detect_tone(samples[-rate:], rate, 1000), "the page's tone did not reach the phone"
