"""Example 11: embed the gateway in your own asyncio program, with its public API only (docs/embedding.md).

Run it from anywhere:  python examples/11_embed_the_gateway.py   (nothing else needed: no desk phone)

1. A config object made in code (`gateway.config.loader.load_config_text`: the same schema as gateway.yaml).
2. A stand-in PBX in this process (`gateway.sip.UserAgent`): it rings, answers every INVITE and echoes
   the RTP it gets (a plain UDP socket).
3. The gateway started in this process (`gateway.app.Gateway`), its call records handed to a function
   of ours as each call ends (`Gateway.add_record_sink`).
4. A call placed by our "app" through the HTTP offer/answer API (`gateway.signaling.client.WebRtcClient`,
   an aiortc RTCPeerConnection as the browser): its progress events, its audio echoed back, its end.
5. Everything stopped, in order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from gateway.app import Gateway
from gateway.config.loader import load_config_text
from gateway.identity.passwords import HashAlgorithm, hash_secret
from gateway.ops.records import CallRecord
from gateway.signaling.client import WebRtcClient
from gateway.sip import Confirmed, Listen, UASettings, UserAgent
from gateway.sip.transactions.policy import AcceptAll

API_KEY = "example-11-app-key-0123456789"
CONFIG = """
sip: {listen: [{transport: udp, host: 127.0.0.1, port: %(sip_port)d}]}
http: {host: 127.0.0.1, port: %(http_port)d}
media: {rtp_ports: {start: 42000, end: 42199}}
pbx: {address: "127.0.0.1:%(pbx_port)d", keepalive_interval: 0}
metrics: {enabled: false}
users:
  - id: app
    sip: "1001"
    allow_outbound: ["2000"]
    web_secret_hash: "%(hash)s"
    api_keys: [{key: %(key)s, name: example app}]
"""


def free_port(kind: int) -> int:
    """A port free right now (a real deployment names its ports in gateway.yaml)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Echo(asyncio.DatagramProtocol):
    """The stand-in PBX's media: every RTP packet goes back where it came from."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.packets = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets += 1
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def answer_calls(pbx: UserAgent, media_port: int) -> None:
    """The stand-in PBX: 180, then 200 with PCMU on the echo socket, until the caller hangs up."""
    answer = (
        "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {media_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
    while True:
        call = await pbx.next_incoming()
        print(f"   PBX: INVITE for {call.request_uri}")
        call.ring()
        await asyncio.sleep(0.3)
        call.answer(answer)
        assert isinstance(await call.next_event(10), Confirmed)


def call_ended(record: CallRecord) -> None:
    fields = record.to_json()
    print(f"6. call record: {fields['direction']} to {fields['to']}, ended by {fields['hangup_by']}"
          f" ({fields['end_reason']}), {fields['duration']} s talking")  # fmt: skip


async def place_call(gateway: Gateway) -> None:
    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())  # what the microphone would send (silence here)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        async with WebRtcClient(gateway.http_url, api_key=API_KEY) as client:
            answer = await client.send_offer(pc.localDescription.sdp, "app-call-1", {"dial": "2000"})
            print(f"3. the app dialled 2000 over the HTTP offer API: session {answer.session_id}")
            await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
            async for event in client.events(answer.session_id):
                print(f"4. progress: {event.event}")
                if event.event in ("answered", "failed"):
                    break
            for _ in range(100):  # the PBX echoes our RTP: the gateway brings it back to us
                stats = [s for s in (await pc.getStats()).values() if s.type == "inbound-rtp"]
                if stats and stats[0].packetsReceived >= 50:
                    break
                await asyncio.sleep(0.05)
            print(f"5. the app hears its echoed audio: {stats[0].packetsReceived if stats else 0} packets")
            await client.close_session(answer.session_id, "Completed")
    finally:
        await pc.close()


async def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    loop = asyncio.get_running_loop()
    echo_transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    pbx = UserAgent(UASettings(listen=(Listen("udp", "127.0.0.1", 0),)), policy=AcceptAll())
    await pbx.start()
    answering = asyncio.ensure_future(answer_calls(pbx, echo_transport.get_extra_info("sockname")[1]))
    values: dict[str, object] = {
        "sip_port": free_port(socket.SOCK_DGRAM),
        "http_port": free_port(socket.SOCK_STREAM),
        "pbx_port": pbx.endpoint.port,
        "key": API_KEY,
        "hash": hash_secret("the app user's own login secret", HashAlgorithm.PBKDF2_SHA256),
    }
    config = load_config_text(CONFIG % values, env={})
    print(f"1. config made in code: PBX at {config.pbx.address}, user {config.users[0].id}")
    gateway = Gateway(config)
    gateway.add_record_sink(call_ended)
    await gateway.start()
    try:
        print(f"2. gateway started in this process: {gateway.http_url}, SIP on {gateway.sip_address[1]}")
        await place_call(gateway)
        await asyncio.sleep(0.5)  # the record is written once the call's BYE is answered
    finally:
        await gateway.close()
        answering.cancel()
        await pbx.close()
        echo_transport.close()
    print(f"7. gateway, PBX and echo stopped (the PBX echoed {echo.packets} packets)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
