"""A browser of the HTTP offer API that dies mid-call is reported on its session's event stream at once.

Real peers: an aiortc client posts its offer with an API key and calls a pjsua2 desk phone; once the
call is up both ways, the client's process "dies": its ICE sockets close, with no DTLS close_notify, no
RTCP BYE and no `POST /webrtc/close`. Within `media.loss_detect` (2 s) the session's server-sent events
carry `web_lost` (cause `silence`, the gateway's own measure of the silence in `seconds`), the metric
counts it, and the phone hears the reconnecting fill instead of dead air until the call ends
(`media.inactivity_timeout`, then `web_auth.reconnect_grace`, 3 s here, for a new offer of the client's
that never comes: test_http_offer_renew.py has the one that comes).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp

from gateway.config import Config
from gateway.media.codecs.comfort_fill import BEEP_HZ
from gateway.media.webrtc import aiortc_hooks
from peers.audio import rms
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_offer import KEY, _config, _post, _sse
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.softphone.test_media_loss import blocks_with, lost_count, window

PHONE_TONE = 600


def _with_grace(config: Config, grace: float) -> Config:
    return dataclasses.replace(config, web_auth=dataclasses.replace(config.web_auth, reconnect_grace=grace))


def die(peer: WebPeer) -> None:
    """The client's process is killed: its ICE sockets close, nothing is said to anyone."""
    for protocol in list(getattr(aiortc_hooks.ice_connection(peer.pc), "_protocols", [])):
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            transport.close()


async def call_the_phone(
    http: aiohttp.ClientSession, base: str, peer: WebPeer, phone: DeskPhone
) -> tuple[aiohttp.ClientResponse, int]:
    """`peer` calls the phone through the HTTP API: its session's event stream and the phone's call
    number, once the peer hears the phone."""
    offer = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "metadata": {"dial": "2000"}}
    status, body = await _post(http, f"{base}/webrtc/offer", offer, KEY)
    assert status == 200, body
    events = await http.get(f"{base}{body['events_url']}", headers=KEY)
    await peer.accept(body["sdp"]["sdp"])
    await _sse(events, ["answered"])
    number = int((await phone.wait_for("incoming"))["call"])
    await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)
    return events, number


async def test_a_dead_client_is_reported_on_the_event_stream_within_2_s(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running_gateway(_with_grace(_config(phone.address), 3.0)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        peer = WebPeer(freq=1000)
        try:
            events, number = await call_the_phone(http, gateway.http_url, peer, phone)
            assert await lost_count(gateway, "silence") == 0
            loop = asyncio.get_running_loop()
            die(peer)
            gone = loop.time()
            [lost] = await _sse(events, ["web_lost"], timeout=10)
            noticed = loop.time() - gone
            assert lost["cause"] == "silence", lost
            assert 1.5 <= lost["seconds"] <= 2.5, lost  # the gateway's own measure of the silence
            assert noticed <= 2.5, f"reported {noticed:.2f} s after the client died"
            assert await lost_count(gateway, "silence") == 1
            [ended] = await _sse(events, ["ended"], timeout=15)  # no reconnect: inactivity_timeout
            assert ended["reason"] in ("media_timeout", "media_failed"), ended
            events.close()
            await phone.wait_for("state", call=number, state="DISCONNECTED")
        finally:
            await peer.close()
        fill = window(await phone.wait_for_recording(number), 2.0, 0.2)  # the end of the wait
        assert rms(fill[1]) > 100, f"dead air (rms {rms(fill[1]):.0f})"
        assert blocks_with(fill, BEEP_HZ) >= 1, "no reconnecting beep"
        assert blocks_with(fill, 1000) == 0, "the client's tone after it died"
        await wait_until(lambda: gateway._health_details()["calls"] == 0)


async def test_a_client_that_closes_its_connection_hangs_up_at_once(tmp_path: Path) -> None:
    """Closing the RTCPeerConnection (DTLS close_notify) is the client's hang-up, not a lost network: the
    call ends at once although a reconnect grace would wait 20 s for a new offer."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running_gateway(_with_grace(_config(phone.address), 20.0)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        peer = WebPeer(freq=1000)
        try:
            events, number = await call_the_phone(http, gateway.http_url, peer, phone)
            await peer.close()  # aiortc sends its DTLS close_notify
            [ended] = await _sse(events, ["ended"], timeout=8)
            assert ended["reason"] == "media_failed", ended
            events.close()
            await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=5)
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)


async def test_a_dead_client_ends_within_the_http_apis_own_grace(tmp_path: Path) -> None:
    """With the shipped settings (web_auth.reconnect_grace 30 s for the dialects with a socket), a vanished
    HTTP API client's call ends within web_auth.http_reconnect_grace (10 s) of its lost media, not 30 s:
    no socket of its can say it is still there (issue 67 item 21). It is a grace all the same: the call
    waits for the client's new offer that long, not less."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running_gateway(_config(phone.address)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        assert gateway.config.web_auth.reconnect_grace == 30.0
        grace = gateway.config.web_auth.http_reconnect_grace
        assert grace == 10.0
        peer = WebPeer(freq=1000)
        try:
            events, number = await call_the_phone(http, gateway.http_url, peer, phone)
            loop = asyncio.get_running_loop()
            die(peer)
            await _sse(events, ["web_lost"], timeout=10)
            lost = loop.time()
            [ended] = await _sse(events, ["ended"], timeout=grace + 15)
            waited = loop.time() - lost
            assert ended["reason"] == "media_failed", ended
            # (the BYE and a loaded machine add seconds; the 30 s grace would be far beyond)
            assert grace - 0.5 <= waited <= grace + 8, f"ended {waited:.1f} s after the media was lost"
            assert f"within {grace:g} seconds" in ended.get("message", ""), ended
            events.close()
            await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=5)
        finally:
            await peer.close()
