"""SIP over WebSocket (RFC 7118) on a whole gateway, on the wire: the upgrade (subprotocol `sip`, Origin),
REGISTER with digest (401 with SHA-256 then MD5 challenges, 200 listing the binding, 403 for a wrong
password or someone else's address, 423 under Min-Expires), unregister, the binding gone with its
WebSocket; an INVITE needs credentials too. The real libraries (JsSIP, SIP.js) are in
tests/e2e/websip/test_softphone_libraries.py."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from ssl import SSLContext
from typing import Any

import aiohttp

from gateway.app import Gateway
from gateway.config.schema import Config, SipWebSocket
from gateway.config.secret import Secret, SecretSource
from gateway.config.users import SipAuth
from peers.audio import detect_tone, read_wav
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from sipcore.auth.digest import Algorithm, digest_response, parse_auth_header
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.sdp.samples import text

ALICE_SIP_PASSWORD = "alice-sip-password"


def websocket_config(
    pbx: str | None = None, *, sections: dict[str, Any] | None = None, **websocket: object
) -> Config:
    """The test gateway with SIP over WebSocket on /sip and a SIP password for alice; ``sections``: more
    of gateway_config's sections (codecs, media...)."""
    config = gateway_config(pbx, **(sections or {}))
    users = tuple(
        dataclasses.replace(
            user, sip_auth=SipAuth(password=Secret(SecretSource.INLINE, "", ALICE_SIP_PASSWORD))
        )
        if user.id == "alice"
        else user
        for user in config.users
    )
    sip = dataclasses.replace(config.sip, websocket=SipWebSocket(**websocket))  # type: ignore[arg-type]
    return dataclasses.replace(config, sip=sip, users=users)


class SipSocket:
    """A SIP-over-WebSocket client speaking raw SIP, as a browser library does on the wire."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.call_id = secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        self.cseq = 0
        self.contact = f"<sip:{secrets.token_hex(4)}@{secrets.token_hex(6)}.invalid;transport=ws>"
        self.provisional: list[str] = []  # the 1xx answers ``request`` passed over, in order

    async def request(self, method: str, uri: str, *, to: str, headers: str = "", body: str = "") -> str:
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(6)
        message = (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/WS {secrets.token_hex(5)}.invalid;branch={branch}\r\n"
            f"Max-Forwards: 69\r\nTo: <{to}>\r\nFrom: <{to}>;tag={self.tag}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq} {method}\r\nContact: {self.contact}\r\n"
            f"{headers}Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        await self.ws.send_str(message)
        while True:
            reply = await asyncio.wait_for(self.ws.receive_str(), 10)
            if not reply.startswith("SIP/2.0 1"):
                return reply
            self.provisional.append(reply)

    async def register(
        self, user: str, password: str, realm_host: str, expires: int = 600
    ) -> tuple[str, str]:
        """REGISTER sip:user@realm_host, answering the first challenge: (the 401, the final answer)."""
        to = f"sip:{user}@{realm_host}"
        first = await self.request("REGISTER", f"sip:{realm_host}", to=to, headers=f"Expires: {expires}\r\n")
        challenge = dict(parse_auth_header(header_value(first, "WWW-Authenticate"))[0][1])
        authorization = answer(challenge, user, password, "REGISTER", f"sip:{realm_host}")
        final = await self.request(
            "REGISTER",
            f"sip:{realm_host}",
            to=to,
            headers=f"Expires: {expires}\r\nAuthorization: {authorization}\r\n",
        )
        return first, final


def header_value(message: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.*?)\r?$", message, re.M | re.I)
    assert match, f"no {name} in {message!r}"
    return match.group(1)


def answer(challenge: dict[str, str], user: str, password: str, method: str, uri: str) -> str:
    algorithm = Algorithm.from_token(challenge.get("algorithm", "MD5"))
    assert algorithm is not None
    cnonce = secrets.token_hex(4)
    response = digest_response(
        algorithm, username=user, password=password, realm=challenge["realm"], nonce=challenge["nonce"],
        method=method, uri=uri, qop="auth", nc="00000001", cnonce=cnonce,
    )  # fmt: skip
    return (
        f'Digest username="{user}", realm="{challenge["realm"]}", nonce="{challenge["nonce"]}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm.value}, qop=auth, nc=00000001, cnonce="{cnonce}"'
    )


@asynccontextmanager
async def sip_socket(
    gateway: Gateway, protocols: tuple[str, ...] = ("sip",), ssl: SSLContext | None = None
) -> AsyncIterator[SipSocket]:
    """A SIP WebSocket to the gateway's /sip: ws://, or wss:// on an HTTPS gateway (verified with ``ssl``)."""
    url = gateway.http_url.replace("http", "ws", 1) + "/sip"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, protocols=protocols, ssl=ssl or True) as ws,
    ):
        yield SipSocket(ws)


def realm_of(gateway: Gateway) -> str:
    assert gateway.web_sip is not None
    return gateway.web_sip.digest.realm


async def test_register_with_digest_lists_the_binding_and_unregisters() -> None:
    async with running_gateway(websocket_config()) as gateway:
        realm = realm_of(gateway)
        async with sip_socket(gateway) as sip:
            assert sip.ws.protocol == "sip"
            first, final = await sip.register("alice", ALICE_SIP_PASSWORD, realm)
            assert first.startswith("SIP/2.0 401 "), first
            challenges = re.findall(r"^WWW-Authenticate: Digest (.*)$", first, re.M)
            assert [re.search(r"algorithm=([\w-]+)", c).group(1) for c in challenges] == ["SHA-256", "MD5"]  # type: ignore[union-attr]
            assert final.startswith("SIP/2.0 200 "), final
            contact = header_value(final, "Contact")
            assert sip.contact.strip("<>") in contact and re.search(r";expires=(600|599)\b", contact), contact
            assert gateway.web_sip is not None and len(gateway.web_sip.registrar) == 1
            assert gateway.web_sip.sessions == 1

            # unregister: Expires 0, with a fresh challenge answered
            gone = await sip.request(
                "REGISTER", f"sip:{realm}", to=f"sip:alice@{realm}", headers="Expires: 0\r\n"
            )
            challenge = dict(parse_auth_header(header_value(gone, "WWW-Authenticate"))[0][1])
            authorization = answer(challenge, "alice", ALICE_SIP_PASSWORD, "REGISTER", f"sip:{realm}")
            final = await sip.request(
                "REGISTER", f"sip:{realm}", to=f"sip:alice@{realm}",
                headers=f"Expires: 0\r\nAuthorization: {authorization}\r\n",
            )  # fmt: skip
            assert final.startswith("SIP/2.0 200 ") and "Contact:" not in final, final
            assert len(gateway.web_sip.registrar) == 0


async def test_the_binding_goes_with_its_websocket() -> None:
    async with running_gateway(websocket_config()) as gateway:
        assert gateway.web_sip is not None
        async with sip_socket(gateway) as sip:
            _, final = await sip.register(
                "1001", ALICE_SIP_PASSWORD, realm_of(gateway)
            )  # the extension works
            assert final.startswith("SIP/2.0 200 "), final
            assert len(gateway.web_sip.registrar) == 1
        for _ in range(50):
            if len(gateway.web_sip.registrar) == 0 and gateway.web_sip.sessions == 0:
                break
            await asyncio.sleep(0.05)
        assert len(gateway.web_sip.registrar) == 0 and gateway.web_sip.sessions == 0


async def test_wrong_password_and_foreign_address_get_403_and_short_expiry_423() -> None:
    async with running_gateway(websocket_config()) as gateway:
        realm = realm_of(gateway)
        async with sip_socket(gateway) as sip:
            _, final = await sip.register("alice", "not-the-password", realm)
            assert final.startswith("SIP/2.0 403 "), final
            _, final = await sip.register("nobody", "whatever", realm)
            assert final.startswith("SIP/2.0 403 "), final
            # alice's credentials for bob's address
            to = f"sip:1002@{realm}"
            first = await sip.request("REGISTER", f"sip:{realm}", to=to)
            challenge = dict(parse_auth_header(header_value(first, "WWW-Authenticate"))[0][1])
            authorization = answer(challenge, "alice", ALICE_SIP_PASSWORD, "REGISTER", f"sip:{realm}")
            final = await sip.request(
                "REGISTER", f"sip:{realm}", to=to, headers=f"Authorization: {authorization}\r\n"
            )
            assert final.startswith("SIP/2.0 403 "), final
            _, final = await sip.register("alice", ALICE_SIP_PASSWORD, realm, expires=5)
            assert final.startswith("SIP/2.0 423 ") and header_value(final, "Min-Expires") == "60", final
            assert gateway.web_sip is not None and len(gateway.web_sip.registrar) == 0


async def test_md5_only_when_configured() -> None:
    config = websocket_config(digest_algorithms=("MD5",))
    async with running_gateway(config) as gateway, sip_socket(gateway) as sip:
        first, final = await sip.register("alice", ALICE_SIP_PASSWORD, realm_of(gateway))
        assert re.findall(r"algorithm=([\w-]+)", first) == ["MD5"], first
        assert final.startswith("SIP/2.0 200 "), final


async def test_an_invite_needs_credentials() -> None:
    async with running_gateway(websocket_config()) as gateway:
        realm = realm_of(gateway)
        async with sip_socket(gateway) as sip:
            reply = await sip.request(
                "INVITE", f"sip:2000@{realm}", to=f"sip:2000@{realm}",
                headers="Content-Type: application/sdp\r\n", body="v=0\r\n",
            )  # fmt: skip
            assert reply.startswith("SIP/2.0 401 "), reply
            options = await sip.request("OPTIONS", f"sip:{realm}", to=f"sip:{realm}")
            assert options.startswith("SIP/2.0 200 ") and "INVITE" in header_value(options, "Allow"), options


async def test_a_refused_offer_says_why_in_the_phrase_and_a_warning() -> None:
    """As over UDP (RFC 3261 §20.43): an INVITE whose SDP the gateway cannot take gets its reason in the
    status line and a Warning 399, which a browser library logs (a black-box run saw a bare 400 and 488);
    one without a body is refused naming the SDP, not `to`."""
    plain = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    )
    async with running_gateway(websocket_config()) as gateway, sip_socket(gateway) as sip:
        uri = f"sip:2000@{realm_of(gateway)}"
        for body, status, why in (
            ("garbage\r\n", "400", "v=0"),
            (plain, "488", "no WebRTC audio stream"),
            ("", "488", "needs an offer (SDP)"),
            # a browser offer aiortc cannot take (issue 32): refused before anything is dialled
            (text("chromium-offer-audio").replace("a=setup:actpass", "a=setup:holdconn"), "488", "a=setup"),
        ):
            first = await sip.request(
                "INVITE", uri, to=uri, headers="Content-Type: application/sdp\r\n", body=body
            )
            challenge = dict(parse_auth_header(header_value(first, "WWW-Authenticate"))[0][1])
            authorization = answer(challenge, "alice", ALICE_SIP_PASSWORD, "INVITE", uri)
            headers = f"Content-Type: application/sdp\r\nAuthorization: {authorization}\r\n"
            reply = await sip.request("INVITE", uri, to=uri, headers=headers, body=body)
            start, warning = reply.split("\r\n", 1)[0], header_value(reply, "Warning")
            assert start.startswith(f"SIP/2.0 {status} ") and why in start, reply
            assert warning.startswith("399 ") and why in warning, reply
            assert "field 'to'" not in reply, reply


async def test_the_upgrade_needs_the_sip_subprotocol_and_our_origin() -> None:
    async with running_gateway(websocket_config()) as gateway, aiohttp.ClientSession() as http:
        url = gateway.http_url + "/sip"
        headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
        async with http.get(url, headers=headers) as reply:
            assert reply.status == 400 and "subprotocol" in await reply.text()
        foreign = {**headers, "Sec-WebSocket-Protocol": "sip", "Origin": "https://evil.example"}
        async with http.get(url, headers=foreign) as reply:
            assert reply.status == 403


class SipCall:
    """One INVITE dialog from a SipSocket: the 2xx's To tag and Contact, ACK and BYE in the dialog."""

    def __init__(self, sip: SipSocket, uri: str, to: str) -> None:
        self.sip, self.uri, self.to = sip, uri, to
        self.final = ""

    async def invite(self, offer: str, realm: str) -> str:
        headers = "Content-Type: application/sdp\r\n"
        first = await self.sip.request("INVITE", self.uri, to=self.to, headers=headers, body=offer)
        assert first.startswith("SIP/2.0 401 "), first
        await self.ack(first, self.uri, "")
        challenge = dict(parse_auth_header(header_value(first, "WWW-Authenticate"))[0][1])
        authorization = answer(challenge, "alice", ALICE_SIP_PASSWORD, "INVITE", self.uri)
        self.final = await self.sip.request(
            "INVITE", self.uri, to=self.to, headers=f"{headers}Authorization: {authorization}\r\n", body=offer
        )
        return self.final

    async def ack(self, response: str, uri: str, to_tag: str) -> None:
        to = f"<{self.to}>" + (f";tag={to_tag}" if to_tag else "")
        branch = "z9hG4bK" + secrets.token_hex(6)
        via = header_value(response, "Via") if not to_tag else f"SIP/2.0/WS x.invalid;branch={branch}"
        await self.sip.ws.send_str(
            f"ACK {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 69\r\nTo: {to}\r\n"
            f"From: <{self.to}>;tag={self.sip.tag}\r\nCall-ID: {self.sip.call_id}\r\n"
            f"CSeq: {self.sip.cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        )

    @property
    def to_tag(self) -> str:
        return re.search(r";tag=([^;>\s]+)", header_value(self.final, "To")).group(1)  # type: ignore[union-attr]

    @property
    def remote_target(self) -> str:
        return header_value(self.final, "Contact").strip("<>").split(">")[0]

    async def in_dialog(self, method: str, headers: str = "", body: str = "") -> str:
        """A request in the dialog; its final response (the first one that comes)."""
        self.sip.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(6)
        await self.sip.ws.send_str(
            f"{method} {self.remote_target} SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch={branch}\r\n"
            f"Max-Forwards: 69\r\nTo: <{self.to}>;tag={self.to_tag}\r\nFrom: <{self.to}>;tag={self.sip.tag}\r\n"
            f"Call-ID: {self.sip.call_id}\r\nCSeq: {self.sip.cseq} {method}\r\n"
            f"{headers}Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        while True:
            reply = await asyncio.wait_for(self.sip.ws.receive_str(), 10)
            if reply.startswith("SIP/2.0 ") and not reply.startswith("SIP/2.0 1"):
                return reply

    async def bye(self) -> str:
        return await self.in_dialog("BYE")

    async def info_dtmf(self, digit: str) -> str:
        """INFO application/dtmf-relay, as JsSIP sends DTMF by default."""
        headers = "Content-Type: application/dtmf-relay\r\n"
        return await self.in_dialog("INFO", headers, f"Signal={digit}\r\nDuration=160\r\n")

    async def answer_request(self, method: str, headers: str = "", body: str = "") -> str:
        """Wait for the gateway's request ``method`` in the dialog and answer it 200 (with ``headers``,
        each ending in CRLF, and ``body``)."""
        while True:
            message = await asyncio.wait_for(self.sip.ws.receive_str(), 15)
            if message.startswith(f"{method} "):
                break
        await self.ok(message, headers, body)
        return message

    async def ok(self, request: str, headers: str = "", body: str = "") -> None:
        """Answer the gateway's ``request`` 200 (with ``headers``, each ending in CRLF, and ``body``)."""
        head = request.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = [
            line
            for line in head[1:]
            if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        await self.sip.ws.send_str(
            "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + f"\r\n{headers}Content-Length: {len(body.encode())}"
            f"\r\n\r\n{body}"
        )

    async def answer_bye(self) -> str:
        """Wait for the gateway's BYE and answer it 200."""
        return await self.answer_request("BYE")


async def test_a_browser_over_sip_websocket_calls_the_desk_phone(tmp_path: Path) -> None:
    """aiortc as the browser's WebRTC stack, raw SIP over the WebSocket: the phone's tone is heard, the
    browser's tone reaches the phone, INFO DTMF reaches the phone; the browser hangs up (BYE); a second
    call, the phone hangs up and the browser gets the BYE over its WebSocket."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(websocket_config(phone.address)) as gateway,
        sip_socket(gateway) as sip,
    ):
        realm = realm_of(gateway)
        peer = WebPeer(1000)
        try:
            call = SipCall(sip, f"sip:2000@{realm}", f"sip:alice@{realm}")
            final = await call.invite(await peer.offer(), realm)
            assert final.startswith("SIP/2.0 200 "), final
            assert "transport=ws" in header_value(final, "Contact")
            await call.ack(final, call.remote_target, call.to_tag)
            await peer.accept(final.split("\r\n\r\n", 1)[1])
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            for digit in "5#":
                reply = await call.info_dtmf(digit)
                assert reply.startswith("SIP/2.0 200 "), reply
                await phone.wait_for("dtmf", digit=digit)
            await asyncio.sleep(1.0)
            reply = await call.bye()
            assert reply.startswith("SIP/2.0 200 "), reply
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            assert loud(await phone.wait_for_recording(incoming["call"])), "the browser's tone is not heard"
        finally:
            await peer.close()

        peer = WebPeer(1000)
        try:
            sip.call_id, sip.tag = secrets.token_hex(8), secrets.token_hex(4)
            call = SipCall(sip, f"sip:2000@{realm}", f"sip:alice@{realm}")
            final = await call.invite(await peer.offer(), realm)
            assert final.startswith("SIP/2.0 200 "), final
            await call.ack(final, call.remote_target, call.to_tag)
            await peer.accept(final.split("\r\n\r\n", 1)[1])
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await phone.hangup(incoming["call"])
            bye = await call.answer_bye()
            assert bye.startswith(f"BYE {call.sip.contact.strip('<>')}"), bye
        finally:
            await peer.close()
        assert await no_calls(gateway)


async def no_calls(gateway: Gateway) -> bool:
    for _ in range(50):
        if gateway.driver.calls == 0:
            return True
        await asyncio.sleep(0.1)
    return False


def loud(path: Path) -> bool:
    rate, samples = read_wav(path)
    size = rate // 10
    windows = [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]
    return any(detect_tone(w, rate, 1000, threshold=0.3) for w in windows)


async def test_a_lost_websocket_ends_its_call_with_bye_to_the_phone(tmp_path: Path) -> None:
    """With web_auth.reconnect_grace 0 the call does not wait for the library's new flow
    (test_sip_websocket_flows.py): BYE to the phone at once."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(
            websocket_config(phone.address, sections={"web_auth": {"reconnect_grace": 0}})
        ) as gateway,
    ):
        assert gateway.web_sip is not None
        peer = WebPeer(1000)
        try:
            async with sip_socket(gateway) as sip:
                realm = realm_of(gateway)
                _, registered = await sip.register("alice", ALICE_SIP_PASSWORD, realm)
                assert registered.startswith("SIP/2.0 200 "), registered
                call = SipCall(sip, f"sip:2000@{realm}", f"sip:alice@{realm}")
                sip.cseq += 1
                final = await call.invite(await peer.offer(), realm)
                assert final.startswith("SIP/2.0 200 "), final
                await call.ack(final, call.remote_target, call.to_tag)
                incoming = await phone.wait_for("incoming")
                await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            # the socket is gone without BYE: the phone hears BYE, the binding and the session go
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED", timeout=10)
            assert await no_calls(gateway)
            assert len(gateway.web_sip.registrar) == 0 and gateway.web_sip.sessions == 0
        finally:
            await peer.close()


async def test_password_guessing_is_throttled_like_web_logins() -> None:
    async with running_gateway(websocket_config()) as gateway, sip_socket(gateway) as sip:
        realm = realm_of(gateway)
        finals = [(await sip.register("alice", f"guess-{n}", realm))[1] for n in range(7)]
        assert all(f.startswith("SIP/2.0 403 ") for f in finals), finals
        assert "Retry-After:" in finals[-1] and "Too Many Failed Attempts" in finals[-1], finals[-1]
        _, final = await sip.register("alice", ALICE_SIP_PASSWORD, realm)  # the right one waits too
        assert final.startswith("SIP/2.0 403 ") and "Retry-After:" in final, final


async def test_a_message_over_the_udp_datagram_limit_is_answered_over_websocket() -> None:
    """The 16 KiB cap is UDP's (RFC 3261 §18.1.1): a WebSocket message up to its own 64 KiB is a SIP
    message like any other (a black-box run saw a 17 KB OPTIONS dropped without a word), and one with a
    header line over the parser's 8 KiB gets 513 (RFC 3261 §21.5.7)."""
    async with running_gateway(websocket_config()) as gateway, sip_socket(gateway) as sip:
        realm = realm_of(gateway)
        pad = "".join(f"X-Pad-{n}: {'a' * 1000}\r\n" for n in range(20))  # ~20 KB
        reply = await sip.request("OPTIONS", f"sip:{realm}", to=f"sip:{realm}", headers=pad)
        assert reply.startswith("SIP/2.0 200 "), reply[:200]
        reply = await sip.request(
            "OPTIONS", f"sip:{realm}", to=f"sip:{realm}", headers=f"X-Long: {'b' * 9000}\r\n"
        )
        assert reply.startswith("SIP/2.0 513 "), reply[:200]


async def test_a_double_crlf_keepalive_gets_a_crlf_pong() -> None:
    """RFC 5626 §4.4.1 over the WebSocket flow (SIP.js's keepAliveInterval sends these)."""
    async with running_gateway(websocket_config()) as gateway, sip_socket(gateway) as sip:
        await sip.ws.send_str("\r\n\r\n")
        assert await asyncio.wait_for(sip.ws.receive_str(), 5) == "\r\n"
        await sip.ws.send_str("\r\n")  # a lone CRLF (a pong): nothing comes back, the flow stays
        options = await sip.request("OPTIONS", f"sip:{realm_of(gateway)}", to=f"sip:{realm_of(gateway)}")
        assert options.startswith("SIP/2.0 200 "), options
