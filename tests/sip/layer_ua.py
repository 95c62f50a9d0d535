"""A tiny user agent on top of the transaction layer, for tests (both roles).

As UAS it answers INVITE with 180 then 200 + SDP (retransmitted until the ACK), BYE, OPTIONS and
anything else with 200, CANCEL'd INVITEs with 487. As UAC (`call`) it sends INVITE, ACKs the 2xx
(and ACKs it again for every retransmitted 2xx) and hangs up with BYE.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from gateway.sip.transactions.layer import TransactionLayer
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.transports.transport import Source, format_host
from sipcore import Headers, Request, Response, make_response, new_call_id, new_tag, parse_uri
from sipcore.location.routing import Target

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
_cseq = itertools.count(1)


def make_request(
    method: str,
    uri: str,
    *,
    call_id: str | None = None,
    from_tag: str | None = None,
    to: str | None = None,
    cseq: int | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> Request:
    items = (
        ("From", f"<sip:alice@example.com>;tag={from_tag or new_tag()}"),
        ("To", to or f"<{uri}>"),
        ("Call-ID", call_id or new_call_id("test")),
        ("CSeq", f"{cseq if cseq is not None else next(_cseq)} {method}"),
        *headers,
    )
    return Request(method, parse_uri(uri), Headers(items), body)


def contact_for(source: Source) -> str:
    host, port = source.local
    return f"<sip:uas@{format_host(host)}:{port};transport={source.transport.name.lower()}>"


@dataclass
class TestUA:
    """Records what the layer hands it; see the module note for its behaviour."""

    __test__ = False  # not a pytest class
    layer: TransactionLayer | None = None
    ring: bool = True
    answer: bool = True
    requests: list[IncomingRequest] = field(default_factory=list)
    acks: list[Request] = field(default_factory=list)
    cancels: list[Request] = field(default_factory=list)
    strays: list[Response] = field(default_factory=list)
    ack_results: list[bool] = field(default_factory=list)
    _sent_acks: dict[str, tuple[Request, Target | None]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def methods(self) -> list[str]:
        return [incoming.method for incoming in self.requests]

    async def wait_for(self, predicate: object, timeout: float = 5.0) -> None:
        async def loop() -> None:
            while not predicate():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)

    # TransactionUser
    async def on_request(self, incoming: IncomingRequest) -> None:
        self.requests.append(incoming)
        self.changed.set()
        if incoming.method != "INVITE":
            incoming.reply(200)
            return
        tag = new_tag()
        if self.ring and not incoming.cancelled:
            incoming.reply(180, to_tag=tag)
        if not self.answer or incoming.cancelled:
            return
        response = make_response(
            incoming.request,
            200,
            to_tag=tag,
            headers=(("Contact", contact_for(incoming.source)), ("Content-Type", "application/sdp")),
            body=SDP,
        )
        self.ack_results.append(await incoming.respond_until_ack(response))
        self.changed.set()

    def on_cancel(self, incoming: IncomingRequest, cancel: Request) -> None:
        self.cancels.append(cancel)
        incoming.reply(487)
        self.changed.set()

    def on_ack(self, ack: Request, source: Source) -> None:
        self.acks.append(ack)
        self.changed.set()

    def on_stray_response(self, response: Response, source: Source) -> None:
        self.strays.append(response)
        sent = self._sent_acks.get(response.call_id or "")
        if sent is not None and self.layer is not None:
            asyncio.get_running_loop().create_task(self.layer.send_stateless(sent[0], sent[1]))
        self.changed.set()

    # UAC
    async def call(self, uri: str, target: Target | None = None, *, bye: bool = True) -> Response:
        """INVITE, ACK the 2xx, BYE; returns the INVITE's final response (the BYE must get 200)."""
        layer = self.layer
        assert layer is not None
        invite = make_request(
            "INVITE",
            uri,
            headers=(("Contact", "<sip:uac@127.0.0.1>"), ("Content-Type", "application/sdp")),
            body=SDP,
        )
        handle = await layer.request(invite, target)
        final = await handle.final_response()
        if final.status >= 300:
            return final
        to = final.headers.get("To") or ""
        contact = final.contacts[0].uri if final.contacts else invite.uri
        cseq = invite.cseq
        assert cseq is not None and invite.call_id is not None
        common = (
            ("From", invite.headers.get("From") or ""),
            ("To", to),
            ("Call-ID", invite.call_id),
        )
        ack = Request("ACK", contact, Headers((*common, ("CSeq", f"{cseq.seq} ACK"))))
        sent = await layer.send_stateless(ack, target)
        assert isinstance(sent, Request)
        self._sent_acks[invite.call_id] = (sent, target)
        if bye:
            request = Request("BYE", contact, Headers((*common, ("CSeq", f"{cseq.seq + 1} BYE"))))
            bye_final = await (await layer.request(request, target)).final_response()
            assert bye_final.status == 200, bye_final
        return final
