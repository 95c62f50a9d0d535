"""The browser SIP libraries' harness (peers/softphones.py) proves itself without a gateway: unmodified
JsSIP and SIP.js in headless Chromium, their page routed onto the origin of a stand-in SIP-over-WebSocket
registrar (RFC 7118) written here, register through a digest challenge (RFC 3261 §22.4, RFC 2617
without qop) and report the registrar's final answer: 403 as a failed registration, 200 as registered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import WSMsgType, web

from peers.ports import free_port
from peers.softphones import HERE, Library, Softphone, require_softphones, routed_file
from tests.signaling.browser import chromium_page

LIBRARIES: list[Library] = ["jssip", "sipjs"]
REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed"}
CHALLENGE = 'Digest realm="test", nonce="abc", algorithm=MD5'


@dataclass(frozen=True, slots=True)
class SipMessage:
    start: str
    headers: list[tuple[str, str]]

    @classmethod
    def parse(cls, text: str) -> SipMessage:
        head = text.split("\r\n\r\n", 1)[0]
        start, *lines = head.split("\r\n")
        pairs = [line.split(":", 1) for line in lines]
        return cls(start, [(name.strip(), value.strip()) for name, value in pairs])

    @property
    def method(self) -> str:
        return self.start.split(" ", 1)[0]

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


@dataclass
class StandIn:
    """A registrar over SIP WebSocket: 401 to a REGISTER without credentials, ``final`` to one with."""

    final: int
    port: int = field(default_factory=free_port)
    offered: list[str] = field(default_factory=list)  # Sec-WebSocket-Protocol of each handshake
    chosen: list[str | None] = field(default_factory=list)
    origins: list[str | None] = field(default_factory=list)
    received: list[SipMessage] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sip"

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        self.offered.append(request.headers.get("Sec-WebSocket-Protocol", ""))
        self.origins.append(request.headers.get("Origin"))
        ws = web.WebSocketResponse(protocols=("sip",))
        await ws.prepare(request)
        self.chosen.append(ws.ws_protocol)
        async for frame in ws:
            if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                text = frame.data if isinstance(frame.data, str) else frame.data.decode()
                message = SipMessage.parse(text)
                self.received.append(message)
                if not message.start.startswith("SIP/2.0"):
                    await ws.send_str(self.answer(message))
        return ws

    def answer(self, request: SipMessage) -> str:
        extra: list[str] = []
        if request.method != "REGISTER":
            status = 405
        elif request.get("Authorization") is None:
            status = 401
            extra.append(f"WWW-Authenticate: {CHALLENGE}")
        else:
            status = self.final
        if status == 200:
            extra += [f"Contact: {contact}" for contact in request.all("Contact")]
            extra.append(f"Expires: {request.get('Expires') or '600'}")
        to = request.get("To") or ""
        lines = [f"SIP/2.0 {status} {REASONS[status]}"]
        lines += [f"Via: {via}" for via in request.all("Via")]
        lines += [
            f"From: {request.get('From')}",
            f"To: {to if ';tag=' in to else to + ';tag=standin'}",
            f"Call-ID: {request.get('Call-ID')}",
            f"CSeq: {request.get('CSeq')}",
            *extra,
            "Content-Length: 0",
        ]
        return "\r\n".join(lines) + "\r\n\r\n"

    def registers(self) -> list[SipMessage]:
        return [message for message in self.received if message.method == "REGISTER"]


@asynccontextmanager
async def stand_in(final: int) -> AsyncIterator[StandIn]:
    server = StandIn(final)
    app = web.Application()
    app.router.add_get("/sip", server.websocket)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", server.port).start()
        yield server
    finally:
        await runner.cleanup()


def digest_params(header: str) -> dict[str, str]:
    assert header.startswith("Digest "), header
    return {key: value.strip('"') for key, value in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', header)}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def check_handshake_and_first_register(server: StandIn) -> None:
    assert server.offered and all("sip" in [p.strip() for p in o.split(",")] for o in server.offered)
    assert set(server.chosen) == {"sip"}
    assert set(server.origins) == {server.origin}, "the routed page is not same-origin"
    first = server.received[0]
    assert first.method == "REGISTER", first.start
    via = first.get("Via") or ""
    assert re.match(r"SIP/2\.0/WSS? ", via), via
    assert first.get("Authorization") is None


@pytest.mark.parametrize("library", LIBRARIES)
async def test_register_answers_the_challenge_and_reports_403(library: Library) -> None:
    require_softphones()
    async with (
        stand_in(final=403) as server,
        chromium_page() as page,
        Softphone(page, library, origin=server.origin) as phone,
    ):
        await phone.register(server.ws_url, "sip:alice@test", "s3cret", authorization_user="alice-auth")
        failed = await phone.wait_for("registrationFailed", status=403)
        events = await phone.events()
    assert failed["status"] == 403
    assert not [e for e in events if e["type"] == "registered"], events
    check_handshake_and_first_register(server)
    first, retry = server.registers()[:2]
    auth = digest_params(retry.get("Authorization") or "")
    assert (auth["username"], auth["realm"], auth["nonce"]) == ("alice-auth", "test", "abc")
    assert auth.get("algorithm", "MD5") == "MD5" and "qop" not in auth
    expected = md5(f"{md5('alice-auth:test:s3cret')}:abc:{md5('REGISTER:' + auth['uri'])}")
    assert auth["response"] == expected, "the digest is not of the password given"
    assert retry.get("Call-ID") == first.get("Call-ID")


@pytest.mark.parametrize("library", LIBRARIES)
async def test_register_200_is_registered_and_unregister_sends_expires_0(library: Library) -> None:
    require_softphones()
    async with (
        stand_in(final=200) as server,
        chromium_page() as page,
        Softphone(page, library, origin=server.origin) as phone,
    ):
        await phone.register(server.ws_url, "sip:alice@test", "s3cret")
        registered = await phone.wait_for("registered")
        assert registered["status"] == 200
        check_handshake_and_first_register(server)
        await phone.unregister()
        await phone.wait_for("unregistered")
    last = server.registers()[-1]
    assert last.get("Expires") == "0" or any("expires=0" in c for c in last.all("Contact")), last
    assert last.get("Authorization") is not None


def test_routed_files_stay_inside_the_softphone_directory() -> None:
    origin = "http://127.0.0.1:1"
    assert routed_file(f"{origin}/__softphone/page.html") == HERE / "page.html"
    assert routed_file(f"{origin}/__softphone/driver.js?v=1") == HERE / "driver.js"
    for escape in ("../softphones.py", "%2e%2e/softphones.py", "build/../../softphones.py", "missing.js"):
        assert routed_file(f"{origin}/__softphone/{escape}") is None, escape
    assert routed_file(f"{origin}/page.html") is None
