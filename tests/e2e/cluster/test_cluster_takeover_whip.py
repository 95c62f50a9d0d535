"""A WHIP publisher's call outlives its gateway instance (issue 34): two instances as real processes
sharing a real Redis, the pjsua2 desk phone as the far end.

A WHIP client (aiortc, an API key) publishes to /whip/2000 through gw1 and talks to the phone; gw1 gets
SIGKILL. Its DTLS association died with gw1, so the client cannot restart ICE on its resource: it
publishes again to the same destination, as WHIP clients do when their session fails. That publish,
at gw2, waits (503 with Retry-After) while gw1's call is being taken over, then renews the call's web
leg under the same resource (the same Location) instead of placing a second call: the phone saw a
re-INVITE and no BYE, hears the client's new tone, and the DELETE of the resource hangs it up. A WHEP
viewer of the call asking gw2 while the call is gw1's is forwarded there and hears the phone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import redis
from yarl import URL

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_harness import cluster
from tests.e2e.cluster.cluster_procs import handovers_written, instance_mapping, process_cluster
from tests.e2e.dialects.test_whip import API_KEY, WhipClient
from tests.e2e.harness import wait_until
from tests.e2e.softphone.test_reconnect import tail_has_tone

LEASE = 2.0


async def publish(http: aiohttp.ClientSession, endpoint: str, offer: str) -> tuple[int, str, str | None]:
    """POST the offer to a WHIP endpoint: (status, body, Location)."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/sdp"}
    async with http.post(endpoint, data=offer, headers=headers) as response:
        return response.status, await response.text(), response.headers.get("Location")


async def test_a_whip_publisher_gets_its_call_back_by_publishing_again(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        with running_redis(tmp_path) as server:
            mappings = [
                instance_mapping(
                    i, server.url, pbx=phone.address, lease=LEASE,
                    extra={"web_auth": {"reconnect_grace": 20}}, alice={"api_keys": [{"key": API_KEY}]},
                )
                for i in range(2)
            ]  # fmt: skip
            async with process_cluster(tmp_path, mappings) as (gw1, gw2), aiohttp.ClientSession() as http:
                first, viewer = WebPeer(freq=1000), WebPeer(direction="recvonly")
                whip = WhipClient(http, f"{gw1.http_url}/whip/2000", API_KEY)
                try:
                    await first.accept(await whip.publish(await first.offer()))
                    number = int((await phone.wait_for("incoming"))["call"])
                    await phone.wait_for("state", call=number, state="CONFIRMED")
                    await wait_until(lambda: first.heard(440, last=1.0), timeout=10)
                    assert whip.resource is not None
                    session_id = whip.resource.rpartition("/")[2]
                    status, body, _ = await publish(
                        http, f"{gw2.http_url}/whep/{session_id}", await viewer.offer()
                    )
                    assert status == 201, body  # the call is gw1's: forwarded there
                    await viewer.accept(body)
                    await wait_until(lambda: viewer.heard(440, last=1.0), timeout=10)
                    [written] = await handovers_written(server.url, "gw1", 1)
                    assert written["http"]["whip"] is True, written
                    media_changes = len(phone.seen("media", call=number))
                    gw1.kill()
                    killed = time.monotonic()
                finally:
                    await asyncio.gather(first.close(), viewer.close())
                assert whip.resource is not None
                resource = URL(whip.resource).path

                second = WebPeer(freq=1300)
                try:
                    offer, waited = await second.offer(), 0
                    while True:  # as a client does on 503 with Retry-After
                        status, body, location = await publish(http, f"{gw2.http_url}/whip/2000", offer)
                        if status != 503:
                            break
                        waited += 1
                        assert time.monotonic() - killed < LEASE + 8, body
                        await asyncio.sleep(0.3)
                    assert status == 201, body
                    assert location == resource, (location, resource)  # the same resource, renewed
                    await second.accept(body)
                    await wait_until(lambda: second.heard(440, last=1.0), timeout=20)
                    back = time.monotonic() - killed
                    assert len(phone.seen("incoming")) == 1, "a second call reached the phone"
                    assert len(phone.seen("media", call=number)) > media_changes  # the survivor's re-INVITE
                    assert not phone.seen("state", call=number, state="DISCONNECTED"), "the phone heard a BYE"
                    await asyncio.sleep(1.5)  # the new tone in the phone's recording
                    headers = {"Authorization": f"Bearer {API_KEY}"}
                    async with http.delete(f"{gw2.http_url}{resource}", headers=headers) as response:
                        assert response.status == 200, await response.text()
                    await phone.wait_for("state", call=number, state="DISCONNECTED")
                finally:
                    await second.close()
                wav = await phone.wait_for_recording(number)
                assert tail_has_tone(wav, 1300), "the phone did not hear the client after the takeover"
    print(f"WHIP: heard again {back:.2f} s after the kill ({waited} publishes answered 503 first)")


async def test_a_publish_goes_where_the_users_resource_for_that_destination_is_as_its_api_key(
    tmp_path: Path,
) -> None:
    """alice's WHIP client publishes with an API key whose default destination is the phone (`POST /whip`)
    at gw1; a second publish with the same key reaches gw2, which forwards it to gw1 (where her resource
    for that destination is, as its Redis record says). gw1 serves it as that key's: the key's default
    destination dialled, the key's id on the new session (its caps count it)."""
    require_desk_phone()
    key_id = "alice/api_keys[0]"
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        cluster(
            tmp_path,
            2,
            pbx=phone.address,
            alice_extra={"api_keys": [{"key": API_KEY, "default_dial": "2000"}]},
        ) as c,
        aiohttp.ClientSession() as http,
    ):
        gw1, gw2 = c.gateways
        peers = [WebPeer(freq=1000), WebPeer(freq=1300)]
        try:
            status, body, _ = await publish(http, f"{gw1.http_url}/whip", await peers[0].offer())
            assert status == 201, body
            client = redis.Redis.from_url(c.redis.url)
            try:
                await wait_until(lambda: client.exists("gw:whip:alice\x1f2000"), timeout=5)
            finally:
                client.close()
            status, body, _ = await publish(http, f"{gw2.http_url}/whip", await peers[1].offer())
            assert status == 201, body
            alice = await gw1.identities.store.get("alice")
            assert alice is not None
            sessions = gw1.driver.http_sessions_of(alice)
            assert len(sessions) == 2 and {s.api_key for s in sessions} == {key_id}, sessions
            assert {s.progress.dial for s in sessions} == {"2000"}
            assert not gw2.driver.http_sessions_of(alice)
        finally:
            await asyncio.gather(*(peer.close() for peer in peers))
