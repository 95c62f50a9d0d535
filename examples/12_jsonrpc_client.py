"""Example 12: a JSON-RPC 2.0 client on the gateway's `/jsonrpc` WebSocket calls a desk phone.

Run it from anywhere:  python examples/12_jsonrpc_client.py   (needs pjsua2 for the desk phone)

The dialect is the one of RemoteMedia's "WebRTC Transport Integration Guide" (the seed document
001_cb9546563d04485d.txt, docs/signaling.md "JSON-RPC 2.0 over WebSocket"): methods `announce`, `offer`,
`answer`, `ice_candidate`, `disconnect`. A client written after that document keeps its messages, but needs
two things it does not show:

- the path: it opens `ws://localhost:8080` (its server's root); the gateway listens on
  `ws(s)://<gateway>/jsonrpc`;
- credentials: it sends none. Give them at the upgrade (`Authorization: Basic|Bearer ...` or `X-API-Key`
  headers, or `?api_key=` / `?token=` in the URL, the only way for a browser's WebSocket), or in an
  `announce` before the `offer`, as here. Without them the `offer` gets -32001 and the socket is closed
  after 5 s.

An aiortc client (it sends 1000 Hz) connects without credentials (its `offer` is refused), announces with
alice's, offers a call to the desk phone 2000 (plays 440 Hz), applies the answer, reads the `progress`
notifications, hears the phone, gets the phone's keys 1 2 3 as `progress` `dtmf`, and `disconnect`s.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from typing import Any

import aiohttp

from peers.audio import detect_tone, read_wav, wait_for_tone
from peers.demo import ALICE_SECRET, running_demo
from peers.webpeer import WebPeer


class JsonRpc:
    """Requests wait for the response with their id; notifications (no id) are queued for `notified`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.notifications: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The whole response: {"jsonrpc": "2.0", "id", "result"} or {..., "error": {code, message, data}}."""
        request_id = next(self.ids)
        await self.ws.send_json({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id})
        while True:
            message: dict[str, Any] = await self.ws.receive_json(timeout=15)
            if message.get("id") == request_id:
                return message
            await self.notifications.put(message)  # a notification that came first

    async def notified(self, method: str, **match: Any) -> dict[str, Any]:
        """The params of the next notification `method` whose params match (others are dropped)."""
        while True:
            if self.notifications.empty():
                message = await self.ws.receive_json(timeout=15)
            else:
                message = self.notifications.get_nowait()
            params = message.get("params", {})
            if message.get("method") == method and all(params.get(k) == v for k, v in match.items()):
                return dict(params)


async def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    peer = WebPeer(1000)
    try:
        async with running_demo(tone=440) as (gateway, phone), aiohttp.ClientSession() as http:
            url = gateway.http_url.replace("http", "ws", 1) + "/jsonrpc"  # not the document's ws://host:8080
            print(f"1. desk phone 2000 on {phone.address}; JSON-RPC at {url}")
            async with http.ws_connect(url) as ws:  # no credentials at the upgrade: announce brings them
                rpc = JsonRpc(ws)
                offer = await peer.offer()
                refused = await rpc.call("offer", sdp=offer, type="offer")  # the document's message as is
                print(f"2. offer before any credentials: error {refused['error']['code']} "
                      f"({refused['error']['data']['reason']})")  # fmt: skip
                announced = await rpc.call(
                    "announce",
                    peer_id="alice-laptop",
                    capabilities={"audio": True},
                    credentials={"user": "alice", "secret": ALICE_SECRET},  # or {"api_key"} / {"token"}
                )
                peer_id, user = announced["result"]["peer_id"], announced["result"]["user"]
                print(f"3. announce: peer {peer_id} signed in as {user}")
                # `to` names the destination (else metadata.dial, else the user's default_dial)
                result = (await rpc.call("offer", sdp=offer, type="offer", to="2000"))["result"]
                answer, call_id = result["answer"], result["call_id"]
                await peer.accept(answer["sdp"])  # as the document's client reads it: result.answer
                # the answer is the gateway's own, sent before the phone picks up; progress follows
                print(f"4. offer to 2000: call {call_id}, SDP {answer['type']} of {len(answer['sdp'])} B")
                events: list[str] = []
                while not events or events[-1] != "answered":
                    events.append((await rpc.notified("progress"))["event"])
                incoming = await phone.wait_for("incoming")
                print(f"5. progress notifications: {', '.join(events)}; the phone took a call from "
                      f"{incoming['from']}")  # fmt: skip
                print(f"6. the client hears the phone's 440 Hz: {await wait_for_tone(peer, 440)}")
                await phone.send("dtmf", digits="123")  # keys pressed on the phone (RFC 4733)
                digits = [(await rpc.notified("progress", event="dtmf"))["digit"] for _ in range(3)]
                print(f"7. the phone pressed 1 2 3: progress dtmf {' '.join(digits)}")
                await asyncio.sleep(1.0)  # a second more of the client's tone in the phone's recording
                reply = await rpc.call("disconnect", call_id=call_id, reason="done")
                ended = await rpc.notified("disconnect")
                await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                print(
                    f"8. disconnect: {reply['result']['status']}; notification disconnect ({ended['reason']})"
                )
            rate, samples = read_wav(await phone.wait_for_recording(incoming["call"]))
            print(f"9. the phone heard the client's 1000 Hz: {detect_tone(samples[-rate:], rate, 1000)}")
    finally:
        await peer.close()
    print("10. gateway and phone stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
