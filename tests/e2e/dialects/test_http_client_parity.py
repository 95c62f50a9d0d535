"""The Python client library (`WebRtcClient`) in a call, against pjsua2 desk phones (issue 33 item 4): what
`/ws` users do in a call, through the HTTP offer API's real client. Phone A (2000) is reached by its URI,
which alice may call exactly; phone B (2001) listens on port 5060 of the PBX domain, a 127.0.0.x of its
own (as tests/e2e/sip_interop/test_transfer.py has it), so a Refer-To of sip:2001@<domain> reaches it.

- Early media: A answers 183 with its tone first (`early_media`, the tone heard), then 200; DTMF both
  ways (`send_dtmf`; A's keys as `dtmf` events), chat both ways (`send_message`; A's MESSAGE as a
  `message` event), hold and resume by the client (A sees remote hold) and by A (`held` by remote), and a
  blind transfer to B: A gets the REFER, and the session ends `transferred`.
- The phone's REFER carried out: A refers alice to B, the session hears `transfer_requested`, and
  `send_offer(sdp, transfer_of=...)` calls B; A hears NOTIFY 200. Then an attended transfer across the
  two sessions (`transfer(a, replaces=b)`): A gets a REFER with Replaces, B takes A's INVITE in place of
  the gateway's leg, and A and B talk.
- A WHIP session takes the controls by its Location's id: hold (A sees remote hold), DTMF both ways
  (A's keys as the session's `dtmf` events), and a blind transfer to B (`POST /webrtc/transfer`): A
  gets the REFER and calls B, and the session ends `transferred`.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp

from gateway.config import Config
from gateway.signaling.client import WebRtcClient
from gateway.signaling.client.http import ProgressEvent
from peers.demo import require_desk_phone
from peers.phone import DeskPhone, Event
from peers.ports import free_port, free_range
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_whip import WhipClient
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_transfer import DOMAIN

API_KEY = "e2e-http-client-parity-0123456789"


def _config(phone_a: DeskPhone) -> Config:
    """No pbx.address: "2001" goes to sip:2001@<PBX domain> (phone B); A, the API key's default
    destination, by its URI (the phones' requests in their dialogs need no sip.trusted_sources)."""
    listen = {"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}
    key = {"key": API_KEY, "default_dial": phone_a.uri}
    rtp = {"start": free_range()}  # this branch's range
    return gateway_config(
        None, domain=DOMAIN, sip={"listen": [listen]}, media={"rtp_ports": rtp},
        alice_outbound=("2xxx", phone_a.uri), alice_extra={"api_keys": [key]},
    )  # fmt: skip


class Progress:
    """One session's progress events, read with `WebRtcClient.events` in the background; `next` takes
    the first one not taken yet that matches (so that none that came early is missed)."""

    def __init__(self, client: WebRtcClient, session_id: str) -> None:
        self.events: list[ProgressEvent] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(client, session_id))

    async def _read(self, client: WebRtcClient, session_id: str) -> None:
        try:
            async for event in client.events(session_id):
                self.events.append(event)
                self._changed.set()
        finally:
            self._changed.set()

    async def next(self, name: str, timeout: float = 15, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for index, event in enumerate(self.events):
                    fits = event.event == name and all(event.data.get(k) == v for k, v in match.items())
                    if fits and index not in self._taken:
                        self._taken.add(index)
                        return dict(event.data)
                if self._reader.done():
                    raise AssertionError(f"no {name} {match} before the end: {self.names}")
                self._changed.clear()
                await self._changed.wait()

    async def transfer_states(self) -> list[str]:
        """The session's own transfer, `transfer` event by event, up to succeeded or failed."""
        states = [(await self.next("transfer"))["state"]]
        while states[-1] not in ("succeeded", "failed"):
            states.append((await self.next("transfer", timeout=20))["state"])
        return states

    @property
    def names(self) -> list[str]:
        return [event.event for event in self.events]

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def _call(client: WebRtcClient, peer: WebPeer, **offer: Any) -> tuple[str, Progress]:
    """A new session from `peer`'s offer (`send_offer`'s arguments): its id and its progress."""
    answer = await client.send_offer(await peer.offer(), **offer)
    await peer.accept(answer.sdp)
    return answer.session_id, Progress(client, answer.session_id)


async def test_the_client_in_a_call_early_media_keys_chat_hold_and_blind_transfer(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", answer="ring", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(_config(phone_a)) as gateway,
        WebRtcClient(gateway.http_url, api_key=API_KEY) as client,
    ):
        peer = WebPeer(freq=1000)
        session, progress = await _call(client, peer, session_id="parity")
        try:
            # early media: A's 183 with its tone, then its 200
            at_a = (await phone_a.wait_for("incoming", timeout=15))["call"]
            await phone_a.send("answer", call=at_a, code=183)
            await progress.next("early_media")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await phone_a.send("answer", call=at_a, code=200)
            await progress.next("answered")
            await phone_a.wait_for("state", call=at_a, state="CONFIRMED")

            # DTMF both ways
            await client.send_dtmf(session, "58")
            assert [(await phone_a.wait_for("dtmf"))["digit"] for _ in range(2)] == ["5", "8"]
            await phone_a.send("dtmf", call=at_a, digits="47")
            assert [(await progress.next("dtmf"))["digit"] for _ in range(2)] == ["4", "7"]

            # chat both ways
            await client.send_message(session, "hello from the client")
            assert (await phone_a.wait_for("message", call=at_a))["body"] == "hello from the client"
            assert (await progress.next("message_result"))["sip_status"] == 200
            await phone_a.send("message", call=at_a, body="hello from the desk")
            assert (await progress.next("message"))["body"] == "hello from the desk"

            # hold and resume by the client, then by the phone
            await client.hold(session)
            await phone_a.wait_for("media", call=at_a, status="remote_hold")
            await progress.next("held", by="local")
            await client.resume(session)
            await phone_a.wait_for("media", call=at_a, status="active")
            await progress.next("resumed", by="local")
            await phone_a.send("hold", call=at_a)
            await progress.next("held", by="remote")
            await phone_a.send("unhold", call=at_a)
            await progress.next("resumed", by="remote")

            # blind transfer to B: A gets the REFER and calls B; the session ends transferred
            await _blind_transfer_to_b(client, session, progress, phone_a, at_a, phone_b)
        finally:
            await progress.close()
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)


async def test_the_client_carries_out_the_phones_refer_then_transfers_attended(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880, answer_delay_ms=500) as phone_b,
        running_gateway(_config(phone_a)) as gateway,
        WebRtcClient(gateway.http_url, api_key=API_KEY) as client,
    ):
        peer_a, peer_b = WebPeer(freq=1000), WebPeer(freq=1200)
        session_a, progress_a = await _call(client, peer_a)
        progress_b: Progress | None = None
        try:
            await progress_a.next("answered")
            at_a = int((await phone_a.wait_for("incoming"))["call"])
            await phone_a.wait_for("state", call=at_a, state="CONFIRMED")

            # A refers alice to B: the session is asked, a new offer with transfer_of calls B
            await phone_a.send("transfer", call=at_a, to=f"sip:2001@{DOMAIN}")
            asked = await progress_a.next("transfer_requested")
            assert asked["to"] == f"sip:2001@{DOMAIN}", asked
            session_b, progress_b = await _call(client, peer_b, transfer_of=session_a)
            at_b = int((await phone_b.wait_for("incoming"))["call"])
            await progress_b.next("answered")
            codes = [(await phone_a.wait_for("transfer_status", call=at_a))["code"]]
            while codes[-1] < 200:
                codes.append((await phone_a.wait_for("transfer_status", call=at_a))["code"])
            assert codes[-1] == 200 and phone_a.seen("transfer_status", code=200)[0]["final"], codes
            await phone_b.wait_for("state", call=at_b, state="CONFIRMED")
            await wait_until(lambda: peer_b.heard(880, last=1.0), timeout=10)

            # A stayed: alice now joins A and B, her two sessions, attended (REFER with Replaces to A)
            await client.transfer(session_a, replaces=session_b)
            joined = await joined_by_replaces(phone_a, at_a, phone_b, at_b)
            states = await progress_a.transfer_states()
            assert states[0] == "requested" and states[-1] == "succeeded", states
            assert (await progress_a.next("ended"))["reason"] == "transferred"
            assert (await progress_b.next("ended"))["reason"] in ("remote_hangup", "transferred")
            await wait_until(lambda: gateway._health_details()["calls"] == 0, timeout=10)
            await joined_call_ends(phone_a, phone_b, *joined)
        finally:
            await progress_a.close()
            if progress_b is not None:
                await progress_b.close()
            await peer_a.close()
            await peer_b.close()


async def test_a_whip_session_takes_the_controls_by_its_location(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(_config(phone_a)) as gateway,
        aiohttp.ClientSession() as http,
        WebRtcClient(gateway.http_url, api_key=API_KEY) as client,
    ):
        whip = WhipClient(http, f"{gateway.http_url}/whip", API_KEY)  # the key's default destination: A
        peer = WebPeer(freq=1000)
        try:
            await peer.accept(await whip.publish(await peer.offer()))
            assert whip.resource is not None
            session = unquote(whip.resource.rsplit("/", 1)[1])
            progress = Progress(client, session)
            await progress.next("answered")
            at_a = (await phone_a.wait_for("incoming"))["call"]
            await phone_a.wait_for("state", call=at_a, state="CONFIRMED")
            await client.hold(session)
            await phone_a.wait_for("media", call=at_a, status="remote_hold")
            await progress.next("held", by="local")
            await client.resume(session)
            await phone_a.wait_for("media", call=at_a, status="active")

            # DTMF both ways: A's keys as the session's events (GET /webrtc/sessions/{id}/events)
            await client.send_dtmf(session, "9")
            assert (await phone_a.wait_for("dtmf"))["digit"] == "9"
            await phone_a.send("dtmf", call=at_a, digits="47")
            assert [(await progress.next("dtmf"))["digit"] for _ in range(2)] == ["4", "7"]

            # blind transfer to B by the session's id: A gets the REFER and calls B; it ends transferred
            await _blind_transfer_to_b(client, session, progress, phone_a, at_a, phone_b)
            await progress.close()
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)


async def _blind_transfer_to_b(
    client: WebRtcClient, session: str, progress: Progress, phone_a: DeskPhone, at_a: int, phone_b: DeskPhone
) -> None:
    """`transfer(session, "2001")`: A gets the REFER and calls B; the session ends `transferred`."""
    await client.transfer(session, "2001")
    referred = await phone_a.wait_for("transfer_request", call=at_a)
    assert referred["to"].strip("<>") == f"sip:2001@{DOMAIN}", referred
    states = await progress.transfer_states()
    assert states[0] == "requested" and states[-1] == "succeeded", states
    assert (await progress.next("ended"))["reason"] == "transferred"
    at_b = (await phone_b.wait_for("incoming"))["call"]
    await phone_b.wait_for("state", call=at_b, state="CONFIRMED")
    await phone_b.hangup(at_b)
    await phone_a.wait_for("state", call=referred["new_call"], state="DISCONNECTED")


async def joined_by_replaces(
    phone_a: DeskPhone, at_a: int, phone_b: DeskPhone, at_b: int
) -> tuple[Event, Event]:
    """An attended transfer of A's call to B's, as the phones see it: A's REFER names B with Replaces
    (RFC 3891), and B takes A's INVITE in place of the gateway's leg. The REFER and B's `replaced`."""
    request = await phone_a.wait_for("transfer_request", call=at_a)
    target, _, replaces = request["to"].strip("<>").partition("?")
    assert target.startswith(f"sip:2001@{DOMAIN}"), request
    assert replaces.lower().startswith("replaces="), request
    replaced = await phone_b.wait_for("replaced", call=at_b)
    assert "2000" in replaced["from"], replaced
    return request, replaced


async def joined_call_ends(phone_a: DeskPhone, phone_b: DeskPhone, request: Event, replaced: Event) -> None:
    """A and B, joined (`joined_by_replaces`), are in a call of their own, which B hangs up."""
    new_at_a, new_at_b = request["new_call"], replaced["new_call"]
    await phone_a.wait_for("state", call=new_at_a, state="CONFIRMED")
    await phone_b.wait_for("state", call=new_at_b, state="CONFIRMED")
    await phone_b.hangup(new_at_b)
    await phone_a.wait_for("state", call=new_at_a, state="DISCONNECTED")
