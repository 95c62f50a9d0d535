"""The HTTP offer API's handler has the WebRTC answer in the loop iteration after it exists, and answers
before the gateway's INVITE leaves (issue 14 goal 3, call setup).

Awaited through `asyncio.shield`, the answer reached the handler one loop iteration late: behind the
web leg's ICE start (aiortc's connect task) and every other call's work scheduled meanwhile, ~1 ms of
each offer -> answer at 10 calls/s. A callback scheduled right after the answer is set marks that
next iteration: the response must be made before it.

Real peers: sipp's UAS (`uas_basic_call`, RTP echo) as the PBX, an aiortc web peer; the spies only
record the order of the gateway's own two writes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.app import Gateway
from gateway.config import Config
from gateway.runtime.offers import HttpSession
from gateway.signaling.http_api.handlers import offer_handler
from gateway.signaling.jsonrpc.peer import RpcPeer
from gateway.sip.transports.transport import ErrorCallback, UdpTransport
from peers.binaries import require_binary
from peers.ports import free_range
from peers.sipp import Sipp
from peers.webpeer import WebPeer
from sipcore.location.routing import Address
from tests.e2e.harness import gateway_config, running_gateway, wait_until

API_KEY = "order-test-key-0123456789"


def record_order(
    monkeypatch: pytest.MonkeyPatch, order: list[str], sink: type[HttpSession | RpcPeer]
) -> None:
    """Spies on the gateway's own writes: "INVITE" when it sends one, "next iteration" in the loop
    iteration after `sink.web_answer` (the early answer) was called."""
    send = UdpTransport.send

    def recording_send(
        self: UdpTransport, data: bytes, destination: Address, on_error: ErrorCallback | None = None
    ) -> None:
        if data.startswith(b"INVITE "):
            order.append("INVITE")
        send(self, data, destination, on_error)

    web_answer = sink.web_answer

    def marking_web_answer(self: HttpSession | RpcPeer, call_id: str, sdp: str) -> None:
        web_answer(self, call_id, sdp)  # type: ignore[arg-type]
        asyncio.get_running_loop().call_soon(order.append, "next iteration")

    monkeypatch.setattr(sink, "web_answer", marking_web_answer)
    monkeypatch.setattr(UdpTransport, "send", recording_send)


def answering_far_end(tmp_path: Path, api_key: dict[str, str]) -> tuple[Sipp, Config]:
    """sipp's UAS answering at once (RTP echo) as the PBX, and a gateway config toward it in which alice
    has ``api_key``."""
    far_end = Sipp(
        tmp_path, "uas_basic_call", calls=None, auto_answer=True, rtp_echo=True,
        media_port=free_range(),
    )  # fmt: skip
    config = gateway_config(
        far_end.address,
        alice_extra={"api_keys": [api_key]},
        media={"rtp_ports": {"start": free_range()}},
    )
    return far_end, config


async def far_end_answered(gateway: Gateway) -> None:
    """Until the far end's 200 came: sipp's uas_basic_call has no CANCEL branch, so a hang-up that beats
    its 200 leaves the INVITE without a final response until 64*T1 (RFC 3261 §9.1) and the call open past
    the test's end. These tests are about the answer's order; each call ends once answered."""
    ua = gateway.sip
    assert ua is not None
    await wait_until(lambda: any(c.state.name == "CONFIRMED" for c in ua.calls), timeout=5)


async def test_the_answer_reaches_the_handler_at_once_and_before_the_invite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    require_binary("sipp")
    order: list[str] = []

    async def recording_handler(request: web.Request) -> web.Response:
        response = await offer_handler(request)
        order.append(f"answer {response.status}")  # aiohttp writes it right after, in this step
        return response

    class OfferLogged(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("HTTP offer from"):
                order.append("offer logged")

    record_order(monkeypatch, order, HttpSession)
    monkeypatch.setattr("gateway.signaling.routes.offer_handler", recording_handler)
    caplog.set_level(logging.INFO, logger="gateway.signaling.http_api.handlers")
    api_logger = logging.getLogger("gateway.signaling.http_api.handlers")
    monkeypatch.setattr(api_logger, "handlers", [*api_logger.handlers, OfferLogged()])
    far_end, config = answering_far_end(tmp_path, {"key": API_KEY, "name": "order"})
    async with far_end, running_gateway(config) as gateway, aiohttp.ClientSession() as http:
        peer = WebPeer(1000)
        try:
            for number in range(3):  # not a lucky first call: each of several
                order.clear()
                body = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "metadata": {"dial": "2000"}}
                headers = {"X-API-Key": API_KEY}
                url = f"{gateway.http_url}/webrtc/offer"
                async with http.post(url, json=body, headers=headers) as response:
                    answer = await response.json()
                    assert response.status == 200, answer
                await wait_until(lambda: "INVITE" in order, timeout=5)
                # the INFO line of the offer once the response is written, not on the offer's path
                assert order.index("offer logged") > order.index("answer 200"), f"call {number}: {order}"
                order.remove("offer logged")
                # what follows the INVITE is not this test's: the far end's 200 may be in already (the
                # session's `connected` hands it the answer again, a no-op marked "next iteration")
                assert order[:3] == ["answer 200", "next iteration", "INVITE"], f"call {number}: {order}"
                assert order.count("INVITE") == 1, f"call {number}: {order}"
                await far_end_answered(gateway)
                close = {"session_id": answer["session_id"], "reason": "done"}
                async with http.post(f"{gateway.http_url}/webrtc/close", json=close, headers=headers) as done:
                    assert done.status == 200
                await peer.close()
                peer = WebPeer(1000)
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
