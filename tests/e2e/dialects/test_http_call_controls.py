"""The HTTP offer API's call controls (issue 33 item 2): what `/ws` does in a call, for an HTTP session.

An HTTP-API client (an aiortc peer and plain POSTs) calls the pjsua2 desk phone, then on the wire:
- `POST /webrtc/dtmf {digits: "58"}`: the phone receives 5 and 8;
- `POST /webrtc/message {body}`: the phone receives the text as a MESSAGE in the call's dialog;
- `POST /webrtc/hold` / `resume`: the phone reports remote hold, then active media; the session's events
  say `held` / `resumed` by local;
- `POST /webrtc/transfer {to}`: the phone gets a REFER (202) and the session's events follow the
  transfer (`transfer` events); a destination the user may not call comes back as an `error` event.
Refusals name the field (400), an unknown session is 404, a session without a call in progress 409.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_offer import KEY, _config, _post, _sse
from tests.e2e.harness import running_gateway, wait_until


async def test_hold_dtmf_chat_and_transfer_over_the_http_api(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(_config(phone.address)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        base = gateway.http_url
        peer = WebPeer(freq=1000)
        try:
            offer = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "session_id": "controls"}
            status, body = await _post(http, f"{base}/webrtc/offer", offer, KEY)
            assert status == 200, body
            events = await http.get(f"{base}{body['events_url']}", headers=KEY)
            await peer.accept(body["sdp"]["sdp"])
            await _sse(events, ["answered"])
            incoming = await phone.wait_for("incoming")
            number = incoming["call"]
            await phone.wait_for("state", call=number, state="CONFIRMED")

            async def control(action: str, **fields: Any) -> tuple[int, dict[str, Any]]:
                return await _post(http, f"{base}/webrtc/{action}", {"session_id": "controls", **fields}, KEY)

            assert await control("dtmf", digits="58") == (200, {"session_id": "controls", "status": "sent"})
            assert [(await phone.wait_for("dtmf"))["digit"] for _ in range(2)] == ["5", "8"]
            assert (await control("message", body="hello from the API"))[0] == 200
            message = await phone.wait_for("message", call=number)
            assert message["body"] == "hello from the API"
            assert await control("hold") == (200, {"session_id": "controls", "status": "holding"})
            await phone.wait_for("media", call=number, status="remote_hold")
            [held] = await _sse(events, ["held"])
            assert held["by"] == "local"
            assert (await control("resume"))[0] == 200
            await phone.wait_for("media", call=number, status="active")
            assert (await _sse(events, ["resumed"]))[0]["by"] == "local"

            # refusals name the field; no such session; no call any more
            status, bad = await control("dtmf", digits="5x")
            assert (status, bad["field"]) == (400, "digits"), bad
            status, bad = await control("transfer")
            assert (status, bad["field"]) == (400, "to"), bad
            status, gone = await _post(http, f"{base}/webrtc/hold", {"session_id": "nope"}, KEY)
            assert status == 404, gone

            # to 2000: pjsua takes the REFER (202) and calls sip:2000@127.0.0.1 (the PBX domain), where
            # nobody answers: the transfer fails, and the call goes on
            # a destination alice may not call: the request is taken, its refusal comes as an event
            assert (await control("transfer", to=f"sip:2000@{phone.address}"))[0] == 200
            [refused] = await _sse(events, ["error"])
            assert refused["code"] == "destination_not_allowed", refused
            assert await control("transfer", to="2000") == (
                200,
                {"session_id": "controls", "status": "transferring"},
            )
            await phone.wait_for("state", state="CALLING")  # the REFER reached it: it calls the target
            [failed] = await _sse(events, ["transfer"])
            assert failed["state"] == "failed" and failed["message"], failed  # nobody at the target
            async with http.get(f"{base}/webrtc/sessions/controls", headers=KEY) as poll:
                assert (await poll.json())["state"] == "answered"  # a failed transfer: the call goes on
            events.close()
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
