"""HTTP offer/answer session ids are no oracle of other users' sessions (issue 32 item 10), against a whole
gateway with a real HTTP client and an aiortc offer.

alice's offer (caller-chosen `session_id`, dialling a SIP target that never answers: a UDP port nobody
reads) is answered and her session lives. bob, naming her session id, gets on every route exactly what
he gets for an id that does not exist: 404 with the same body (the id aside) from the status route, the
event stream, `candidate` and `close`; an offer of his choosing her id is answered as one choosing a
free id is (200: ids name sessions per user, so he gets a session of his own by that name; it was 409
`exists already`, then 404: each an oracle). Her session is untouched (she still reads it, not closed,
its call not his). Her own second offer with her id is 409.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp

from peers.ports import free_port
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_offer import basic
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway

ALICE = {"Authorization": basic("alice", ALICE_SECRET)}
BOB = {"Authorization": basic("bob", BOB_SECRET)}
MISSING = "no-such-session-0"
ALICE_ID = "alice-sess-0"


def _same(body: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The body with the id it names replaced by a placeholder, to compare two ids' answers."""
    return {k: (v.replace(session_id, "<id>") if isinstance(v, str) else v) for k, v in body.items()}


async def _answer(http: aiohttp.ClientSession, method: str, url: str, session_id: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:  # fmt: skip
    async with http.request(method, url, headers=BOB, **kwargs) as response:
        return response.status, _same(await response.json(), session_id)


async def test_another_users_session_id_answers_as_a_missing_one() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a SIP target that never answers
    silent.bind(("127.0.0.1", free_port(socket.SOCK_DGRAM)))
    peer, bob_peer = WebPeer(), WebPeer()
    try:
        config = gateway_config(f"127.0.0.1:{silent.getsockname()[1]}")
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            base = gateway.http_url
            offer = await peer.offer()
            body = {
                "sdp": {"type": "offer", "sdp": offer},
                "session_id": ALICE_ID,
                "metadata": {"dial": "2000"},
            }
            async with http.post(f"{base}/webrtc/offer", json=body, headers=ALICE) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["session_id"] == ALICE_ID

            for method, path, payload in (
                ("GET", "/webrtc/sessions/{id}", None),
                ("GET", "/webrtc/sessions/{id}/events", None),
                ("POST", "/webrtc/ice-candidate", {"session_id": "{id}", "candidate": None}),
                ("POST", "/webrtc/close", {"session_id": "{id}"}),
            ):
                answers = []
                for session_id in (ALICE_ID, MISSING):
                    json_body = {k: v.replace("{id}", session_id) if isinstance(v, str) else v
                                 for k, v in payload.items()} if payload else None  # fmt: skip
                    url = base + path.replace("{id}", session_id)
                    answers.append(await _answer(http, method, url, session_id, json=json_body))
                assert answers[0] == answers[1], (path, answers)
                assert answers[0][0] == 404, (path, answers)

            taken = {
                "sdp": {"type": "offer", "sdp": await bob_peer.offer()},
                "session_id": ALICE_ID,
                "metadata": {"dial": "2000"},
            }
            async with http.post(f"{base}/webrtc/offer", json=taken, headers=BOB) as response:
                assert response.status == 200, await response.text()  # as for a free id
                bobs = await response.json()
            assert bobs["session_id"] == ALICE_ID, bobs
            async with http.get(f"{base}/webrtc/sessions/{ALICE_ID}", headers=BOB) as response:
                assert response.status == 200
                assert (await response.json())["call_id"] == bobs["call_id"]  # his own session by that name

            async with http.get(f"{base}/webrtc/sessions/{ALICE_ID}", headers=ALICE) as response:
                assert response.status == 200
                hers = await response.json()
                events = [e["event"] for e in hers["events"]]
                assert "closed" not in events, events  # bob's close did not reach her session
                assert hers["call_id"] not in (None, bobs["call_id"]), (hers, bobs)
            async with http.post(f"{base}/webrtc/offer", json=taken, headers=ALICE) as response:
                assert response.status == 409, await response.text()  # her own id: she may know it
    finally:
        await peer.close()
        await bob_peer.close()
        silent.close()
