"""Helpers for the user agent's tests: running UAs, reading call events, a challenging UAS."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from gateway.config.secret import Secret, SecretSource
from gateway.identity import PbxCredentials, SipAddress, SipIdentity
from gateway.sip.transactions.layer import TransactionLayer
from gateway.sip.transactions.policy import AcceptAll, SourcePolicy
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.transports.transport import Source
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.ua import Listen, UASettings, UserAgent
from gateway.sip.useragent.ua_calls import Call
from gateway.sip.useragent.ua_events import CallEvent
from sipcore import Request, Response, make_response, new_tag
from sipcore.auth.digest import Algorithm, digest_response, parse_auth_header
from sipcore.location.routing import Target
from sipcore.transaction import TimerConfig

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
OFFER = (
    "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)
ANSWER = OFFER.replace("alice", "bob").replace("40000", "40002")
EARLY = ANSWER.replace("40002", "40004")
E = TypeVar("E")


def identity(user: str = "alice", password: str | None = None, host: str = "example.com") -> SipIdentity:
    credentials = None
    if password is not None:
        credentials = PbxCredentials(user, Secret(SecretSource.INLINE, "", password))
    return SipIdentity(SipAddress("sip", user, host), user.title(), credentials)


def uri_of(ua: UserAgent, user: str = "bob") -> str:
    return f"sip:{user}@{ua.endpoint.host}:{ua.endpoint.port}"


@contextlib.asynccontextmanager
async def running_ua(
    timers: TimerConfig = FAST, policy: SourcePolicy | None = None, **settings: Any
) -> AsyncIterator[UserAgent]:
    if policy is None and "trusted_sources" not in settings and "pbx_hosts" not in settings:
        policy = AcceptAll()  # else: the UA's own TrustedSources
    ua = UserAgent(UASettings(timers=timers, **settings), policy=policy)
    await ua.start()
    try:
        yield ua
    finally:
        await ua.close()


@contextlib.asynccontextmanager
async def ua_pair(timers: TimerConfig = FAST) -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    async with running_ua(timers) as a, running_ua(timers, listen=(Listen("udp"),)) as b:
        yield a, b


def address_of(ua: UserAgent) -> str:
    return f"{ua.endpoint.host}:{ua.endpoint.port}"


LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


async def answer_next(
    ua: UserAgent, sdp: str = ANSWER, *, ring: bool = True, timeout: float = 15
) -> IncomingCall:
    """Take the next incoming call: 180 (unless ``ring`` is False), then 200 with ``sdp``."""
    call = await ua.next_incoming(timeout)
    if ring:
        call.ring()
    call.answer(sdp)
    return call


async def expect(call: Call, kind: type[E], timeout: float = 5.0) -> E:
    """The next event of type ``kind`` (earlier events of other types are skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event: CallEvent = await call.next_event(max(0.01, deadline - loop.time()))
        if isinstance(event, kind):
            return event


class ChallengingUAS:
    """A UAS on a bare transaction layer that asks for digest credentials: INVITE gets 401,
    every other request 407, until it carries valid credentials for ``user``/``password``
    (a wrong one gets 403). It answers INVITE 200 with SDP (retransmitted until the ACK) and
    records each request's method and CSeq number. With ``open_first`` a request outside a
    dialog (no To tag) is accepted without credentials: only in-dialog requests are challenged."""

    realm = "challenge.test"

    def __init__(self, user: str, password: str, *, open_first: bool = False) -> None:
        self.user, self.password = user, password
        self.open_first = open_first
        self.seen: list[tuple[str, int, bool]] = []  # method, CSeq, had credentials
        self.acks: list[int] = []
        self.layer: TransactionLayer | None = None
        self.tag = new_tag()
        self._nonce = 0

    async def start(self) -> ChallengingUAS:
        self.layer = TransactionLayer(self, policy=AcceptAll(), timers=FAST)
        await self.layer.listen("udp", "127.0.0.1", 0)
        return self

    @property
    def uri(self) -> str:
        assert self.layer is not None
        host, port = self.layer.transports[0].local
        return f"sip:service@{host}:{port}"

    @property
    def hop(self) -> Target:
        """This UAS as a UA's PBX (``outbound``): the hop its credentials are bound to."""
        assert self.layer is not None
        return Target("UDP", *self.layer.transports[0].local)

    def _credentials(self, request: Request) -> str | None:
        for name in ("Authorization", "Proxy-Authorization"):
            value = request.headers.get(name)
            if value is not None:
                return value
        return None

    def _valid(self, request: Request, value: str) -> bool:
        params = parse_auth_header(value)[0][1]
        expected = digest_response(
            Algorithm.MD5,
            username=self.user,
            password=self.password,
            realm=self.realm,
            nonce=params.get("nonce", ""),
            method=request.method,
            uri=params.get("uri", ""),
            qop=params.get("qop"),
            nc=params.get("nc", ""),
            cnonce=params.get("cnonce", ""),
        )
        return params.get("username") == self.user and params.get("response") == expected

    async def on_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        cseq = request.cseq
        credentials = self._credentials(request)
        self.seen.append((request.method, cseq.seq if cseq else 0, credentials is not None))
        outside = request.to is None or request.to.tag is None
        if credentials is None and not (self.open_first and outside):
            self._nonce += 1
            header = "WWW-Authenticate" if request.method == "INVITE" else "Proxy-Authenticate"
            challenge = f'Digest realm="{self.realm}", nonce="n{self._nonce}", algorithm=MD5, qop="auth"'
            incoming.reply(
                401 if header == "WWW-Authenticate" else 407, to_tag=self.tag, headers=((header, challenge),)
            )
            return
        if credentials is not None and not self._valid(request, credentials):
            incoming.reply(403, to_tag=self.tag)
            return
        if request.method != "INVITE":
            incoming.reply(200, to_tag=self.tag)
            return
        assert self.layer is not None
        host, port = self.layer.transports[0].local
        response = make_response(
            request,
            200,
            to_tag=self.tag,
            headers=(("Contact", f"<sip:service@{host}:{port}>"), ("Content-Type", "application/sdp")),
            body=ANSWER.encode(),
        )
        await incoming.respond_until_ack(response)

    def on_cancel(self, incoming: IncomingRequest, cancel: Request) -> None:
        incoming.reply(487, to_tag=self.tag)

    def on_ack(self, ack: Request, source: Source) -> None:
        self.acks.append(ack.cseq.seq if ack.cseq else 0)

    def on_stray_response(self, response: Response, source: Source) -> None:
        pass

    async def close(self) -> None:
        if self.layer is not None:
            await self.layer.close()
