"""WHEP playback of a call (issue 17) through a whole gateway: an aiortc WHIP client publishes to the
pjsua2 desk phone (its 1 kHz to the phone, the phone's 440 Hz back), and aiortc WHEP players hear the
phone's 440 Hz: one named by the WHIP session's id, one by its call's id. While a player listens the
call's RTP goes the Python path (the fast lane gives the sockets back) and links again when the last one
is gone; DELETE ends a player (then 404); the WHIP client's DELETE ends the call and the players it had.
Errors: an unknown id 403 (no room alice may watch), an offer that is not SDP 400, no credentials 401."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from yarl import URL

from gateway.media.bridge import MediaBridge
from peers.audio import detect_tone, read_wav
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_whip import WhipClient
from tests.e2e.harness import gateway_config, running_gateway, wait_until

API_KEY = "e2e-whep-call-key-0123456789"
BEARER = {"Authorization": f"Bearer {API_KEY}"}
SDP_HEADERS = {**BEARER, "Content-Type": "application/sdp"}


async def play(http: aiohttp.ClientSession, endpoint: str, player: WebPeer) -> str:
    """POST the player's offer; the player's resource URL once its answer is applied."""
    async with http.post(endpoint, data=await player.offer(), headers=SDP_HEADERS) as r:
        assert r.status == 201, await r.text()
        assert r.content_type == "application/sdp"
        resource = str(r.url.join(URL(r.headers["Location"])))
        answer = await r.text()
    assert "/whep/sessions/" in resource and "a=sendonly" in answer, answer
    await player.accept(answer)
    return resource


async def test_whep_players_hear_the_far_end_of_a_whip_call(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = gateway_config(
            phone.address,
            alice_extra={"api_keys": [{"key": API_KEY}]},
            media={"rtp_ports": {"start": free_range()}},  # this branch's range
        )
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            base = gateway.http_url
            whip = WhipClient(http, f"{base}/whip/2000", API_KEY)
            publisher = WebPeer(freq=1000)
            players = [WebPeer(direction="recvonly") for _ in range(3)]  # the last one only offers
            try:
                spare = await players[2].offer()
                await publisher.accept(await whip.publish(await publisher.offer()))
                number = (await phone.wait_for("incoming"))["call"]
                await phone.wait_for("state", call=number, state="CONFIRMED")
                await wait_until(lambda: publisher.heard(440, last=1.0), timeout=10)
                assert whip.resource is not None
                session_id = whip.resource.rsplit("/", 1)[1]
                async with http.get(f"{base}/webrtc/sessions/{session_id}", headers=BEARER) as r:
                    call_id = (await r.json())["call_id"]
                (runtime,) = gateway.driver.runtimes
                bridge = runtime.bridge
                assert isinstance(bridge, MediaBridge)
                lane = bridge.fast_lane
                if lane is not None:
                    await wait_until(lambda: lane.link is not None, timeout=5)

                # a player named by the WHIP session, one by its call: both hear the phone
                first = await play(http, f"{base}/whep/{session_id}", players[0])
                second = await play(http, f"{base}/whep/{call_id}", players[1])
                assert lane is None or lane.link is None, "the fast lane kept the packets from the players"
                await wait_until(lambda: players[0].heard(440, last=1.0), timeout=10)
                await wait_until(lambda: players[1].heard(440, last=1.0), timeout=10)
                assert not players[0].heard(1000, last=1.0)  # the far end only, not the publisher

                async with http.delete(first) as r:
                    assert r.status == 401
                async with http.delete(first, headers=BEARER) as r:
                    assert r.status == 200
                async with http.delete(first, headers=BEARER) as r:
                    assert r.status == 404
                await wait_until(lambda: publisher.heard(440, last=1.0), timeout=5)  # the call goes on

                async with http.post(f"{base}/whep/h-nope", data=spare, headers=SDP_HEADERS) as r:
                    # neither a session of alice's nor a room she may watch (rooms.rules): 403, as for a
                    # room that is open (no oracle of which rooms are)
                    assert (r.status, (await r.json())["reason"]) == (403, "forbidden")
                async with http.post(f"{base}/whep/{session_id}", data="not sdp", headers=SDP_HEADERS) as r:
                    assert (r.status, (await r.json())["field"]) == (400, "sdp")
                headers = {"Content-Type": "application/sdp"}
                async with http.post(f"{base}/whep/{session_id}", data=spare, headers=headers) as r:
                    assert r.status == 401

                # the WHIP client hangs up: the call's player goes with it
                assert await whip.delete() == 200
                await phone.wait_for("state", call=number, state="DISCONNECTED")
                async with http.delete(second, headers=BEARER) as r:
                    assert r.status == 404
                rate, samples = read_wav(await phone.wait_for_recording(number))
            finally:
                await publisher.close()
                for player in players:
                    await player.close()
    assert detect_tone(samples[-rate:], rate, 1000), "the publisher's tone did not reach the phone"
