"""WHIP (RFC 9725) with a WHIP client written on aiortc, against a pjsua2 desk phone through a whole
gateway: POST application/sdp to /whip/2000 -> 201 with Location, ETag and the SDP answer (before the
phone picks up), tones both ways, PATCH with a trickle-ice-sdpfrag -> 204 (an ICE restart without
If-Match 428, a stale If-Match 412), DELETE hangs the phone up; bad requests: another Content-Type 415, an unknown resource 404,
no credentials 401."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from yarl import URL

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.webpeer import WebPeer
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone

API_KEY = "e2e-whip-key-0123456789"
BEARER = {"Authorization": f"Bearer {API_KEY}"}
FRAG = "application/trickle-ice-sdpfrag"


class WhipClient:
    """The client side of RFC 9725 §4.2-4.3 on aiohttp (the media is an aiortc WebPeer)."""

    def __init__(self, http: aiohttp.ClientSession, endpoint: str, token: str) -> None:
        self.http, self.endpoint = http, endpoint
        self.headers = {"Authorization": f"Bearer {token}"}
        self.resource: str | None = None
        self.etag: str | None = None

    async def publish(self, offer: str) -> str:
        headers = {**self.headers, "Content-Type": "application/sdp"}
        async with self.http.post(self.endpoint, data=offer, headers=headers) as response:
            assert response.status == 201, await response.text()
            assert response.content_type == "application/sdp"
            self.resource = str(response.url.join(URL(response.headers["Location"])))
            self.etag = response.headers["ETag"]
            return await response.text()

    async def patch(self, fragment: str, if_match: str | None = None) -> int:
        assert self.resource is not None
        headers = {**self.headers, "Content-Type": FRAG, **({"If-Match": if_match} if if_match else {})}
        async with self.http.patch(self.resource, data=fragment, headers=headers) as response:
            return response.status

    async def delete(self) -> int:
        assert self.resource is not None
        async with self.http.delete(self.resource, headers=self.headers) as response:
            return response.status


def _ice(offer: str) -> tuple[str, str]:
    lines = offer.split("\r\n")
    ufrag = next(line.split(":", 1)[1] for line in lines if line.startswith("a=ice-ufrag:"))
    pwd = next(line.split(":", 1)[1] for line in lines if line.startswith("a=ice-pwd:"))
    return ufrag, pwd


async def test_whip_client_calls_the_phone(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440, answer_delay_ms=500) as phone:
        config = gateway_config(
            phone.address,
            alice_extra={"api_keys": [{"key": API_KEY}]},
            media={"rtp_ports": {"start": free_range()}},  # this branch's range
        )
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            base = gateway.http_url
            whip = WhipClient(http, f"{base}/whip/2000", API_KEY)
            peer = WebPeer(freq=1000)
            try:
                offer = await peer.offer()
                answer = await whip.publish(offer)
                assert answer.startswith("v=0") and whip.resource and "/whip/sessions/" in whip.resource
                assert not phone.seen("state", state="CONFIRMED")  # answered before the pickup
                await peer.accept(answer)
                incoming = await phone.wait_for("incoming")
                await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)

                ufrag, pwd = _ice(offer)
                trickle = (
                    f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
                    "a=candidate:9 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
                )
                assert await whip.patch(trickle, if_match=whip.etag) == 204
                assert await whip.patch(trickle, if_match='"stale"') == 412
                restart = trickle.replace(f"a=ice-ufrag:{ufrag}", "a=ice-ufrag:newufrag1")
                assert await whip.patch(restart) == 428  # a restart carries If-Match: * (RFC 9725 §4.3.3)
                assert (
                    await whip.patch(restart, if_match='"stale"') == 412
                )  # the restart itself: test_whip_ice_restart
                async with http.patch(
                    whip.resource, data="junk", headers={**BEARER, "Content-Type": "text/plain"}
                ) as r:
                    assert r.status == 415
                await asyncio.sleep(1.0)  # a second of the client's tone in the phone's recording
                assert await whip.delete() == 200
                await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                assert wav_has_tone(await phone.wait_for_recording(incoming["call"]), 1000)
                assert await whip.delete() == 404
            finally:
                await peer.close()

            sdp_headers = {**BEARER, "Content-Type": "application/sdp"}
            async with http.post(f"{base}/whip/2000", data="v=0\r\n", headers={**BEARER, "Content-Type": "application/json"}) as r:  # fmt: skip
                assert (r.status, (await r.json())["code"]) == (415, 415)
            async with http.post(
                f"{base}/whip/2000", data=offer, headers={"Content-Type": "application/sdp"}
            ) as r:
                assert r.status == 401 and "Bearer" in r.headers["WWW-Authenticate"]
            async with http.post(
                f"{base}/whip", data=offer, headers=sdp_headers
            ) as r:  # no default destination
                assert (r.status, (await r.json())["field"]) == (400, "destination")
            async with http.post(f"{base}/whip/2000", data="not sdp", headers=sdp_headers) as r:
                assert r.status == 400
            async with http.delete(f"{base}/whip/sessions/nope", headers=BEARER) as r:
                assert r.status == 404
            async with http.patch(
                f"{base}/whip/sessions/nope", data="", headers={**BEARER, "Content-Type": FRAG}
            ) as r:
                assert r.status == 404
            await wait_until(lambda: gateway._health_details()["calls"] == 0)


async def test_options_on_the_endpoint_says_accept_post_and_the_ice_servers() -> None:
    """RFC 9725 §4.2: OPTIONS on /whip and /whip/{destination} is 204 with `Accept-Post:
    application/sdp` (Eyevinn's whip-web-client turns trickle ICE off after a 405), the ICE servers as
    Link headers (§4.4): STUN without credentials (a CORS preflight carries none), TURN with its
    credentials only for a valid key; wrong credentials get 401."""
    ice = {
        "browser": [
            {"urls": ["stun:stun.example.org:3478"]},
            {"urls": ["turn:turn.example.org:3478"], "username": "whip-user", "credential": "whip-pass"},
        ]
    }
    config = gateway_config(None, alice_extra={"api_keys": [{"key": API_KEY}]}, ice=ice)
    async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
        for path in ("/whip", "/whip/2000"):
            async with http.options(gateway.http_url + path) as response:
                assert response.status == 204, await response.text()
                assert response.headers["Accept-Post"] == "application/sdp"
                assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
                assert response.headers.getall("Link") == ['<stun:stun.example.org:3478>; rel="ice-server"']
        async with http.options(gateway.http_url + "/whip/2000", headers=BEARER) as response:
            assert response.status == 204 and response.headers["Accept-Post"] == "application/sdp"
            assert response.headers.getall("Link") == [
                '<stun:stun.example.org:3478>; rel="ice-server"',
                '<turn:turn.example.org:3478>; rel="ice-server"; username="whip-user"; '
                'credential="whip-pass"; credential-type="password"',
            ]
        wrong = {"Authorization": "Bearer not-a-key-0123456789"}
        async with http.options(gateway.http_url + "/whip", headers=wrong) as response:
            assert response.status == 401
