"""SIPREC (RFC 7866): the gateway as a recording client (SRC) sending a call's two legs to a recording
server (SRS), besides or instead of its own file (gateway/runtime/siprec.py drives it).

A recording session is an INVITE from the UA straight to the SRS's URI (never through the PBX) with
``Require: siprec``, ``+sip.src`` in the Contact (§6.1.1) and a ``multipart/mixed`` body: an SDP offer of
two ``a=sendonly`` PCMU m-lines labelled ``1`` (the web user) and ``2`` (the SIP party), and the RFC 7865
metadata (``application/rs-metadata+xml``): the recording session, the communication session (the
gateway's call id and the SIP leg's Call-IDs), the two participants by AOR, and the streams by label.
The SRS's 200 is ACKed by the UA; its answer gives where each label's RTP goes. BYE (either side's) ends
it. Not done:
metadata updates in the session, re-INVITEs, SRS-initiated sessions (§6.1.2), SRTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

import sdp
from gateway.sip.useragent.ua_calls import CallError
from gateway.sip.useragent.ua_events import TERMINAL, Answered, Bye, Failed
from sipcore.dialogs.requests import Endpoint
from sipcore.location.routing import Target
from sipcore.syntax.headers import NameAddr
from sipcore.syntax.uri import SipURI, parse_uri

if TYPE_CHECKING:
    from gateway.sip.useragent.outgoing import OutgoingCall
    from gateway.sip.useragent.ua import UserAgent

logger = logging.getLogger(__name__)

METADATA_TYPE = "application/rs-metadata+xml"
LABELS = ("1", "2")  # the web user's stream, the SIP party's
ANSWER_TIMEOUT = 32.0  # s: Timer F (64*T1) ends the INVITE first over UDP; over TCP nothing else does


class SiprecRefused(Exception):
    """The SRS did not take the recording session (a final response other than 2xx, or no answer)."""


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """What the metadata says of the recorded call (its communication session)."""

    call_id: str
    sip_call_ids: tuple[str, ...]
    web_aor: str  # the web user's AOR (participant of label 1)
    sip_aor: str  # the SIP party's (label 2)


class _SrcEndpoint(Endpoint):
    """Our endpoint, whose Contact says we are a SIPREC recording client (``+sip.src``, RFC 7866 §6.1.1)."""

    __slots__ = ()

    def contact(self, user: str | None = None) -> NameAddr:
        return super().contact(user).with_param("+sip.src", None)


def offer_sdp(address: str, ports: tuple[int, int]) -> str:
    """Two send-only PCMU streams labelled 1 and 2 (RFC 4574), from ``address``."""
    family = "IP6" if ":" in address else "IP4"
    session = str(int(time.time()))
    lines = [
        "v=0",
        f"o=- {session} {session} IN {family} {address}",
        "s=SIPREC",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    for label, port in zip(LABELS, ports, strict=True):
        lines += [
            f"m=audio {port} RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
            "a=ptime:20",
            "a=sendonly",
            f"a=label:{label}",
        ]
    return "\r\n".join(lines) + "\r\n"


def metadata(call: RecordedCall) -> str:
    """The RFC 7865 recording metadata (XML) of ``call``: one communication session, two participants,
    each sending one stream (labels 1 and 2)."""
    ids = {name: secrets.token_urlsafe(12) for name in ("rs", "cs", "web", "sip", "s1", "s2")}
    sip_ids = "".join(f"<sipSessionID>{escape(c)}</sipSessionID>" for c in call.sip_call_ids)

    def participant(key: str, aor: str, stream: str) -> str:
        return (
            f'<participant participant_id="{ids[key]}"><nameID aor="{escape(aor, {chr(34): "&quot;"})}"/>'
            f"</participant>"
            f'<participantstreamassoc participant_id="{ids[key]}"><send>{ids[stream]}</send>'
            f"</participantstreamassoc>"
            f'<participantsessionassoc participant_id="{ids[key]}" session_id="{ids["cs"]}"/>'
        )

    streams = "".join(
        f'<stream stream_id="{ids[s]}" session_id="{ids["cs"]}"><label>{label}</label></stream>'
        for s, label in (("s1", LABELS[0]), ("s2", LABELS[1]))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>'
        f'<session session_id="{ids["cs"]}">{sip_ids}<callID>{escape(call.call_id)}</callID></session>'
        f"{participant('web', call.web_aor, 's1')}{participant('sip', call.sip_aor, 's2')}{streams}"
        "</recording>\r\n"
    )


def multipart(parts: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """``(content type, body)`` of a multipart/mixed body (RFC 2046 §5.1) of ``(type, text)`` parts."""
    boundary = "siprec-" + secrets.token_hex(8)
    body = "".join(f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n{text}\r\n" for kind, text in parts)
    return f"multipart/mixed;boundary={boundary}", body + f"--{boundary}--\r\n"


def answered_streams(answer: str) -> tuple[tuple[str, int] | None, ...]:
    """Where each label's RTP goes, from the SRS's SDP answer (by ``a=label``, else by order); None for
    a stream it refused (port 0) or only receives nothing of (``a=sendonly``/``inactive`` on its side)."""
    description = sdp.parse(answer)
    found: dict[str, tuple[str, int] | None] = {}
    for index, media in enumerate(description.media):
        label = media.get("label") or (LABELS[index] if index < len(LABELS) else None)
        connection = description.connection_for(index)
        refused = (
            media.port == 0
            or connection is None
            or any(media.get(a) is not None for a in ("sendonly", "inactive"))
        )
        if label is not None:
            found[label] = None if refused or connection is None else (connection.address, media.port)
    return tuple(found.get(label) for label in LABELS)


class SiprecClient:
    """Recording sessions to one SRS (``server``, a sip: URI; ``transport`` udp or tcp)."""

    def __init__(self, ua: UserAgent, server: str, transport: str = "udp") -> None:
        uri = parse_uri(server)
        if not isinstance(uri, SipURI):
            raise ValueError(f"SIPREC server must be a sip: URI, got {server!r}")
        self.server = server
        self.hop = Target(transport.upper(), uri.host.strip("[]"), uri.port or 5060)
        self._ua = ua

    def local_address(self) -> str:
        """The address our SDP gives (the UA's own toward the SRS)."""
        return self._ua.endpoint_for(self.hop.host).host.strip("[]")

    async def open(self, call: RecordedCall, address: str, ports: tuple[int, int]) -> SiprecSession:
        """INVITE the SRS for ``call``'s recording, our RTP from ``address``:``ports``; the answered
        session, or ``SiprecRefused`` (a final refusal, a timeout, a transport error)."""
        ours = self._ua.endpoint_for(self.hop.host)
        endpoint = _SrcEndpoint(**{f.name: getattr(ours, f.name) for f in fields(ours)})
        content_type, body = multipart(
            (("application/sdp", offer_sdp(address, ports)), (METADATA_TYPE, metadata(call)))
        )
        headers = (("Require", "siprec"), ("Accept", f"application/sdp, {METADATA_TYPE}"))
        outgoing = await self._ua.invite(
            self.server, body, str(endpoint.contact_uri()), headers=headers, next_hop=self.hop,
            endpoint=endpoint, content_type=content_type,
        )  # fmt: skip
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                while True:
                    event = await outgoing.next_event()
                    if isinstance(event, Answered):
                        return SiprecSession(outgoing, answered_streams(event.sdp))
                    if isinstance(event, Failed):
                        raise SiprecRefused(f"{event.status} {event.reason}")
        except TimeoutError:
            await _give_up(outgoing)
            raise SiprecRefused(f"no answer within {ANSWER_TIMEOUT:g} s") from None
        except sdp.SdpError as exc:
            session = SiprecSession(outgoing, (None, None))
            await session.close()
            raise SiprecRefused(f"unusable SDP answer: {exc}") from None


async def _give_up(outgoing: OutgoingCall) -> None:
    with contextlib.suppress(CallError):
        outgoing.cancel()


class SiprecSession:
    """One answered recording session: ``destinations`` per label (None: that stream not wanted)."""

    def __init__(self, outgoing: OutgoingCall, destinations: tuple[tuple[str, int] | None, ...]) -> None:
        self.call = outgoing
        self.destinations = destinations

    @property
    def sip_call_id(self) -> str:
        return self.call.call_id

    async def ended_by_server(self) -> bool:
        """Wait for the session's end: True when the SRS ended it (its BYE), False when we did."""
        while True:
            event = await self.call.next_event()
            if isinstance(event, Bye):
                return event.by_remote
            if isinstance(event, TERMINAL):
                return True

    async def close(self) -> None:
        """BYE, unless the SRS ended it already."""
        try:
            await self.call.bye()
        except CallError as exc:
            logger.debug("SIPREC session %s: no BYE: %s", self.call.call_id, exc)
