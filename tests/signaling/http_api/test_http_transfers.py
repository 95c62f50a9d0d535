"""Transfers on the HTTP offer API (issue 33 item 4): the SIP party's REFER reaches an HTTP session as
`transfer_requested` and a new offer with `transfer_of` carries it out; `POST /webrtc/transfer` with
`replaces` transfers attended to another session of the user's. The bodies' checks, the routes (a fake
offer service), `OfferApi`'s mapping of sessions to calls (a fake driver), the events and the OpenAPI
document. On the wire with desk phones: tests/e2e/dialects/test_http_client_parity.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.identity import SipAddress, WebUser
from gateway.runtime.offers import HttpSession, OfferApi
from gateway.signaling import events as sig
from gateway.signaling.cluster_http import ClusterHttp
from gateway.signaling.errors import BadRequest, Conflict, NotFound, SignalingError
from gateway.signaling.http_api.offer_protocol import control_request, offer_request
from gateway.signaling.http_api.openapi import openapi_document
from gateway.signaling.service import OfferResult
from tests.signaling.harness import ANSWER_SDP, OFFER_SDP, Harness, make_harness
from tests.signaling.http_api.test_http_api import ALICE

Client = TestClient[web.Request, web.Application]
SDP = {"type": "offer", "sdp": OFFER_SDP}
ALICE_USER = WebUser("alice", "Alice", SipAddress.parse("sip:1001@pbx.example"))


def test_an_offer_names_the_session_whose_refer_it_carries_out() -> None:
    assert offer_request({"sdp": SDP, "transfer_of": "calls-1"}).transfer_of == "calls-1"
    assert offer_request({"sdp": SDP}).transfer_of is None
    for bad in ("no spaces", "", 7, "x" * 129):
        with pytest.raises(BadRequest) as refused:
            offer_request({"sdp": SDP, "transfer_of": bad})
        assert refused.value.field == "transfer_of"


def test_a_transfer_takes_to_or_replaces_exactly() -> None:
    blind = control_request("transfer", {"session_id": "a", "to": " 2001 "})
    assert (blind.to, blind.replaces) == ("2001", "")
    attended = control_request("transfer", {"session_id": "a", "replaces": "b"})
    assert (attended.to, attended.replaces) == ("", "b")
    for body, named in (
        ({}, "to"),  # neither
        ({"to": "2001", "replaces": "b"}, "replaces"),  # both
        ({"replaces": "a"}, "replaces"),  # itself
        ({"replaces": "not a session"}, "replaces"),
        ({"replaces": 3}, "replaces"),
    ):
        with pytest.raises(BadRequest) as refused:
            control_request("transfer", {"session_id": "a", **body})
        assert refused.value.field == named, body


async def test_the_routes_pass_transfer_of_and_replaces_on() -> None:
    harness = make_harness()
    async with TestClient(TestServer(harness.app)) as client:
        await _routes(harness, client)


async def _routes(harness: Harness, client: Client) -> None:
    for _ in range(2):
        offer = {"sdp": SDP, "metadata": {"dial": "2000"}}
        assert (await client.post("/webrtc/offer", json=offer, headers=ALICE)).status == 200
    reply = await client.post("/webrtc/offer", json={"sdp": SDP, "transfer_of": "s1"}, headers=ALICE)
    assert reply.status == 200, await reply.text()
    # no metadata.dial: the service gets none (the REFER's target), not the user's default destination
    assert harness.offers.transfers_of == ["s1"] and harness.offers.dialled[-1] == "refer-target-of-s1"
    reply = await client.post("/webrtc/offer", json={"sdp": SDP, "transfer_of": "no such"}, headers=ALICE)
    assert (reply.status, (await reply.json())["field"]) == (400, "transfer_of")

    reply = await client.post("/webrtc/transfer", json={"session_id": "s1", "replaces": "s2"}, headers=ALICE)
    assert await reply.json() == {"session_id": "s1", "status": "transferring"}
    assert harness.offers.controls[-1] == ("s1", "transfer", "s2")
    both = {"session_id": "s1", "replaces": "s2", "to": "2001"}
    reply = await client.post("/webrtc/transfer", json=both, headers=ALICE)
    assert (reply.status, (await reply.json())["field"]) == (400, "replaces")


@dataclass
class FakeDriver:
    """The part of the driver `OfferApi` uses for transfers: HTTP sessions by user and id, the calls with
    a REFER waiting, and what was asked of the call layer."""

    sessions: dict[str, HttpSession] = field(default_factory=dict)
    referred_calls: set[str] = field(default_factory=set)
    asked: list[tuple[Any, ...]] = field(default_factory=list)

    def http_session(self, user: WebUser, session_id: str) -> HttpSession:
        if session_id not in self.sessions:
            raise NotFound(f"no session {session_id!r}", field="session_id")
        return self.sessions[session_id]

    def referred(self, call_id: str) -> bool:
        return call_id in self.referred_calls

    async def http_offer(self, *args: Any, transfer_of: str | None = None, **kw: Any) -> OfferResult:
        self.asked.append(("offer", args[2], transfer_of))
        return OfferResult("new", ANSWER_SDP, (), {}, call_id="c-new")

    async def transfer(
        self, session: HttpSession, call_id: str, to: str | None, replaces: str | None
    ) -> None:
        self.asked.append(("transfer", session.public_id, call_id, to, replaces))


def _session(driver: FakeDriver, session_id: str, call_id: str | None) -> HttpSession:
    session = HttpSession(ALICE_USER, session_id=session_id)
    session.call_id = call_id
    driver.sessions[session_id] = session
    return session


async def test_offer_api_maps_sessions_to_their_calls() -> None:
    driver = FakeDriver()
    api = OfferApi(driver)  # type: ignore[arg-type]
    _session(driver, "first", "c-1")
    _session(driver, "second", "c-2")
    _session(driver, "dialling", None)

    with pytest.raises(Conflict) as conflict:  # no REFER came
        await api.offer(ALICE_USER, OFFER_SDP, None, {}, None, transfer_of="first")
    assert conflict.value.field == "transfer_of"
    driver.referred_calls.add("c-1")
    await api.offer(ALICE_USER, OFFER_SDP, None, {}, None, transfer_of="first")
    assert driver.asked[-1] == ("offer", None, "c-1")  # the call id, for the call layer
    refusals: tuple[tuple[str, type[SignalingError]], ...] = (("gone", NotFound), ("dialling", Conflict))
    for missing, error in refusals:
        with pytest.raises(error) as refused:
            await api.offer(ALICE_USER, OFFER_SDP, None, {}, None, transfer_of=missing)
        assert refused.value.field == "transfer_of"

    await api.control(ALICE_USER, "first", "transfer", replaces="second")
    assert driver.asked[-1] == ("transfer", "first", "c-1", None, "c-2")
    await api.control(ALICE_USER, "first", "transfer", to="2001")
    assert driver.asked[-1] == ("transfer", "first", "c-1", "2001", None)
    for missing, error in refusals:
        with pytest.raises(error) as refused:
            await api.control(ALICE_USER, "first", "transfer", replaces=missing)
        assert refused.value.field == "replaces"


async def test_the_sip_partys_refer_is_a_progress_event() -> None:
    session = HttpSession(ALICE_USER, session_id="mine")
    await session.send_event(sig.TransferRequested("c-1", "sip:2001@pbx.example"))
    [event] = session.progress.events_after(0)
    assert (event.name, event.data) == ("transfer_requested", {"to": "sip:2001@pbx.example"})


def test_the_openapi_document_has_the_transfer_fields() -> None:
    schemas = openapi_document()["components"]["schemas"]
    assert "transfer_of" in schemas["OfferRequest"]["properties"]
    assert "replaces" in schemas["ControlRequest"]["properties"]
    assert "transfer_requested" in schemas["ProgressEvent"]["properties"]["event"]["enum"]
    assert "to" in schemas["ProgressEvent"]["properties"]
    paths = openapi_document()["paths"]
    assert "replaces" in paths["/webrtc/transfer"]["post"]["summary"]
    assert "transfer_of" in paths["/webrtc/offer"]["post"]["responses"]["409"]["description"]


async def test_a_cluster_forwards_an_offer_by_its_transfer_of() -> None:
    """An offer carrying out a REFER is placed where the referring session lives: the cluster's middleware
    names that session for it. An offer naming a `session_id` names that one (its ICE restart or new
    media goes where it is, if anywhere: issue 34); a plain offer's body is left to the handler."""

    async def nobody(_: str) -> None:
        return None

    cluster = ClusterHttp("gw1", b"secret", owners=None, local_sessions=set, instance=nobody,  # type: ignore[arg-type]
                          drain=None, status=None)  # type: ignore[arg-type]  # fmt: skip

    async def named(request: web.Request) -> web.Response:
        return web.json_response({"named": await cluster._session_named(request)})

    app = web.Application()
    app.router.add_post("/webrtc/{action}", named)
    async with TestClient(TestServer(app)) as client:
        for path, body, expected in (
            ("/webrtc/offer", {"sdp": SDP, "transfer_of": "first"}, "first"),
            ("/webrtc/offer", {"sdp": SDP, "session_id": "new"}, "new"),
            ("/webrtc/offer", {"sdp": SDP, "metadata": {"dial": "2000"}}, None),
            ("/webrtc/hold", {"session_id": "first"}, "first"),
            ("/webrtc/transfer", {"session_id": "first", "replaces": "second"}, "first"),
        ):
            reply = await client.post(path, json=body)
            assert (await reply.json())["named"] == expected, (path, body)
