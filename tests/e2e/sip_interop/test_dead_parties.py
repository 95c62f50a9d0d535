"""A party that dies without a word is noticed in seconds (issue 10 item 7), and nothing of the call stays:

- the desk phone killed (SIGKILL) mid-call: no RTP for media.inactivity_timeout (5 s by default), the
  browser gets `ended` (media_timeout) and the call is gone from the gateway at once (our BYE's answer is
  awaited for 2 s only, not Timer F);
- the desk phone held by the web user (pjsua sends neither RTP nor RTCP then) stays up past both timeouts,
  and once resumed is watched by its RTP again;
- a browser whose network went away (its WebSocket no longer answers pings): the JSON WebSocket's
  heartbeat (4 s, pong within 2 s) closes it and the phone gets BYE within about 6 s (with
  web_auth.reconnect_grace 0; by default the call waits that long for the browser to come back);
- a browser whose media vanished while the web user holds the call (no RTP expected from it then): ICE
  consent (RFC 7675, checked every second here) expires in about 5 s and the phone gets BYE.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until


def kill(phone: DeskPhone) -> None:
    """The phone's process dies at once: no BYE, no RTCP BYE, nothing."""
    assert phone.pid is not None
    os.kill(phone.pid, signal.SIGKILL)


@asynccontextmanager
async def phone_and_alice(
    tmp_path: Path, *, media: dict[str, object] | None = None, autoping: bool = True
) -> AsyncIterator[tuple[DeskPhone, Gateway, WebUser, WebPeer]]:
    """The desk phone (440 Hz), a gateway in front of it, alice logged in, and her browser's WebPeer."""
    require_desk_phone()
    # reconnect_grace 0: the call ends as soon as the browser is known gone (with a grace, the call
    # waits that long for the browser to come back: tests/e2e/softphone/test_reconnect.py)
    sections: dict[str, Any] = {"web_auth": {"reconnect_grace": 0}}
    if media:
        sections["media"] = media
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address, **sections)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET, autoping=autoping) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            yield phone, gateway, alice, peer
        finally:
            await peer.close()


async def connected_call(gateway: Gateway, alice: WebUser, peer: WebPeer, phone: DeskPhone) -> str:
    call_id = await alice.call("2000", await peer.offer())
    await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
    incoming = await phone.wait_for("incoming")
    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
    await wait_until(lambda: peer.heard(440, last=0.5), timeout=10)
    return call_id


async def test_a_phone_killed_mid_call_is_noticed_within_the_inactivity_timeout(tmp_path: Path) -> None:
    async with phone_and_alice(tmp_path) as (phone, gateway, alice, peer):
        assert gateway.config.media.inactivity_timeout == 5.0  # the default
        call_id = await connected_call(gateway, alice, peer, phone)
        loop = asyncio.get_running_loop()
        kill(phone)
        died = loop.time()
        ended = await alice.wait_for("ended", call_id=call_id, timeout=15)
        noticed = loop.time() - died
        assert ended["reason"] == "media_timeout", ended
        assert 4.0 <= noticed <= 6.5, f"noticed after {noticed:.1f} s"
        await wait_until(lambda: gateway.driver.calls == 0, timeout=3)
        assert loop.time() - died <= 9.0, "the call stayed registered waiting for the dead phone"


async def test_a_held_phone_is_not_hung_up_and_is_watched_again_once_resumed(tmp_path: Path) -> None:
    """pjsua sends neither RTP nor RTCP while the web user holds it (recvonly, and nothing to answer):
    it cannot be judged then, so the call stays up well past both timeouts; once resumed, its death is
    noticed by RTP again. (A held peer that does send RTCP is judged by it: tests/media/rtp/test_rtp_endpoint.)"""
    media = {"hold_timeout": 3, "rtp_ports": {"start": 31600, "end": 31799}}
    async with phone_and_alice(tmp_path, media=media) as (phone, gateway, alice, peer):
        call_id = await connected_call(gateway, alice, peer, phone)
        await alice.request({"type": "hold", "call_id": call_id})
        await alice.wait_for("held", call_id=call_id)
        await asyncio.sleep(8)  # longer than hold_timeout and inactivity_timeout
        assert not [e for e in alice.events if e.get("type") == "ended"], alice.events
        await alice.request({"type": "resume", "call_id": call_id})
        await alice.wait_for("resumed", call_id=call_id)
        peer.clear()
        await wait_until(lambda: peer.heard(440, last=0.5), timeout=10)
        loop = asyncio.get_running_loop()
        kill(phone)
        died = loop.time()
        ended = await alice.wait_for("ended", call_id=call_id, timeout=15)
        assert ended["reason"] == "media_timeout", ended
        assert loop.time() - died <= 6.5


async def test_a_browser_whose_network_went_away_is_noticed_by_the_heartbeat(tmp_path: Path) -> None:
    async with phone_and_alice(tmp_path, autoping=False) as (phone, gateway, alice, peer):
        await connected_call(gateway, alice, peer, phone)
        incoming = phone.seen("incoming")[-1]
        # The page answers no ping from now on (autoping off); its media keeps flowing, so only the
        # WebSocket's heartbeat can tell.
        loop = asyncio.get_running_loop()
        started = loop.time()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED", timeout=15)
        assert loop.time() - started <= 8.0
        await wait_until(lambda: gateway.driver.calls == 0, timeout=3)


async def test_a_browser_that_vanishes_on_hold_is_noticed_by_ice_consent(tmp_path: Path) -> None:
    async with phone_and_alice(tmp_path) as (phone, gateway, alice, peer):
        call_id = await connected_call(gateway, alice, peer, phone)
        incoming = phone.seen("incoming")[-1]
        await alice.request({"type": "hold", "call_id": call_id})
        await alice.wait_for("held", call_id=call_id)
        await asyncio.sleep(2)
        loop = asyncio.get_running_loop()
        peer.vanish()
        gone = loop.time()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED", timeout=15)
        assert loop.time() - gone <= 7.0, f"noticed after {loop.time() - gone:.1f} s"
        ended = await alice.wait_for("ended", call_id=call_id)
        assert ended["reason"] == "media_failed" and "consent expired" in ended["message"], ended
