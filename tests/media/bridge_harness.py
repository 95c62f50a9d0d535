"""A whole call for bridge tests: an aiortc "browser" <-> MediaBridge <-> a plain RTP "phone", on 127.0.0.1.

call = Call(allocator, web_codecs=("PCMU",))
await call.browser_calls()          # or await call.pbx_calls()
await call.play(1.0)                # the phone plays its tone for 1 s; the browser's tone runs always
assert call.web.heard(600) and call.phone.heard(1000)
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import sdp
from gateway.media import fastlane
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.codecs import codec_choice
from gateway.media.events import MediaConnected, MediaEvent
from gateway.media.fastlane.engine import FastLink
from gateway.media.rtp.ports import PortRange, RtpPortAllocator
from peers.audio import RtpTonePeer
from peers.webpeer import WebPeer

WEB_TONE = 1000.0
SIP_TONE = 600.0


def allocator(start: int = 30000, end: int = 39999) -> RtpPortAllocator:
    return RtpPortAllocator(PortRange(start, end))


class RecordingPeer(RtpTonePeer):
    """An RtpTonePeer that also keeps the payloads it sent (to check pass-through byte for byte)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent_payloads: set[bytes] = set()

    def send_payload(
        self, payload: bytes, samples: int, *, marker: bool = False, remote: tuple[str, int] | None = None
    ) -> None:
        self.sent_payloads.add(payload)
        super().send_payload(payload, samples, marker=marker, remote=remote)


class Call:
    def __init__(
        self,
        ports: RtpPortAllocator,
        *,
        web_codecs: tuple[str, ...] | None = None,
        sip_codec: str = "PCMU",
        phone_payload_type: int = 0,
        call_id: str = "test",
        **settings: Any,
    ) -> None:
        self.events: list[MediaEvent] = []
        # The fast lane's engines: the call's own pool unless one is given (fast_lane=None: none at all).
        self._own_pool = "fast_lane" not in settings and fastlane.available()
        if self._own_pool:
            settings["fast_lane"] = fastlane.EnginePool()
        self.pool: fastlane.EnginePool | None = settings.get("fast_lane")
        options: dict[str, Any] = {"host_addresses": ("127.0.0.1",), "call_id": call_id, **settings}
        self.settings = BridgeSettings(ports, **options)
        self.bridge = MediaBridge(self.settings, self.events.append)
        self.web = WebPeer(WEB_TONE, web_codecs)
        self.phone = RecordingPeer(phone_payload_type)
        self.sip_codec = sip_codec
        self.plain_offer: sdp.SessionDescription | None = None
        self.bridge_address: tuple[str, int] | None = None

    async def browser_calls(self, *, direction: sdp.Direction = sdp.Direction.SENDRECV) -> None:
        await self.phone.start()
        plain = await self.bridge.offer_to_sip(await self.web.offer())
        self.plain_offer = offer = sdp.parse(plain)
        self.bridge_address = codec_choice.remote_rtp(offer, 0)[0]
        self.phone.remote = self.bridge_address
        answer = self.phone_answer(offer, self.phone, direction=direction)
        await self.web.accept(await self.bridge.answer_from_sip(answer))

    async def early_media(self, early: RtpTonePeer) -> tuple[sdp.SessionDescription, str]:
        """The browser calls; ``early`` answers with a 183 (early media) from its own port, the phone will
        send the 200 from another: (the bridge's plain offer, the browser's answer), once connected."""
        await early.start()
        await self.phone.start()
        offer = sdp.parse(await self.bridge.offer_to_sip(await self.web.offer()))
        address = (offer.connection.address if offer.connection else "", offer.media[0].port)
        early.remote = self.phone.remote = address
        web_answer = await self.bridge.answer_from_sip(self.phone_answer(offer, early))  # 183
        await self.web.accept(web_answer)
        await self.connected()
        return offer, web_answer

    def phone_answer(
        self,
        offer: sdp.SessionDescription,
        peer: RtpTonePeer,
        *,
        direction: sdp.Direction = sdp.Direction.SENDRECV,
    ) -> str:
        transport = sdp.PlainTransport("127.0.0.1", peer.address[1])
        answer = sdp.answer(offer, codecs=[self.sip_codec], transport=transport, direction=direction)
        origin = dataclasses.replace(answer.origin, session_id=str(peer.ssrc % 10**9))
        return sdp.write(dataclasses.replace(answer, origin=origin))

    def phone_offer(self, *, direction: sdp.Direction = sdp.Direction.SENDRECV, version: int = 1) -> str:
        codecs = [codec_choice.known(self.sip_codec)]
        description = codec_choice.plain_offer(
            codecs,
            address="127.0.0.1",
            port=self.phone.address[1],
            telephone_event=True,
            session_id="4242",
            version=version,
            direction=direction,
        )
        return sdp.write(description)

    async def pbx_calls(self) -> None:
        await self.phone.start()
        web_offer = await self.bridge.offer_to_web(self.phone_offer())
        web_answer = await self.web.answer(web_offer)
        answer = sdp.parse(await self.bridge.answer_from_web(web_answer))
        self.bridge_address = codec_choice.remote_rtp(answer, 0)[0]
        self.phone.remote = self.bridge_address

    async def pbx_calls_late(self) -> sdp.SessionDescription:
        """The PBX calls without an offer (late offer): the bridge offers in the 200, the phone answers in
        the ACK. The bridge's offer."""
        await self.phone.start()
        web_answer = await self.web.answer(await self.bridge.offer_to_web(None))
        offer = sdp.parse(await self.bridge.answer_from_web(web_answer))
        self.bridge_address = codec_choice.remote_rtp(offer, 0)[0]
        self.phone.remote = self.bridge_address
        await self.bridge.answer_to_reoffer(self.phone_answer(offer, self.phone))
        return offer

    async def connected(self, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(isinstance(e, MediaConnected) for e in self.events):
            if loop.time() > deadline:
                raise TimeoutError(f"not connected: {self.events}")
            await asyncio.sleep(0.01)

    async def play(self, seconds: float, freq: float = SIP_TONE, peer: RtpTonePeer | None = None) -> None:
        """The phone plays ``freq`` for ``seconds``; the browser's tone plays all along."""
        await (peer or self.phone).send_tone(freq, seconds)
        await asyncio.sleep(0.15)  # the last packets' way through

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def link(self) -> FastLink | None:
        """The bridge's link to a fast-lane engine, while linked."""
        return self.bridge.fast_lane.link if self.bridge.fast_lane is not None else None

    @property
    def link_pending(self) -> bool:
        return self.bridge.fast_lane is not None and self.bridge.fast_lane._pending

    async def close(self) -> None:
        await self.bridge.close()
        await self.web.close()
        self.phone.close()
        if self._own_pool and self.pool is not None:
            assert self.pool.engines == [], "an engine outlived its last link"
            self.pool.close()


async def hang_up(bridge: MediaBridge, pool: fastlane.EnginePool | None, *peers: Any) -> None:
    """Close the bridge, then its engines (when the test made them), then the peers."""
    await bridge.close()
    if pool is not None:
        pool.close()
    for peer in peers:
        peer.close()
