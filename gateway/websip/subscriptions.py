"""A SIP library's SUBSCRIBE (JsSIP, SIP.js: RFC 6665), relayed to the PBX: busy lamps (the dialog
package, RFC 4235) and the voicemail light (message-summary, RFC 3842) of a page that speaks SIP itself.

The gateway is the notifier toward the library and a subscriber toward the PBX, as a B2BUA: the library's
SUBSCRIBE (digest-authenticated as its other requests) gets 200 with our tag and an immediate NOTIFY
(`pending`, RFC 6665 §4.2.1); the gateway subscribes at the PBX itself (gateway/sip/useragent/
subscriptions.py, with the user's `pbx_auth`, at her own PBX: `pbx_place`), and each of the PBX's NOTIFYs goes on to the library in
its dialog, body and Content-Type unchanged, with our own `Subscription-State`. The library's refresh
(an in-dialog SUBSCRIBE, taken before the UA sees it) extends its expiry; `Expires: 0`, the expiry
running out or its WebSocket closing end both sides (NOTIFY `terminated` to the library, `Expires: 0`
to the PBX). Only the two packages pass (489 with Allow-Events otherwise); the dialog package only for a
destination the user may call (403 otherwise), message-summary only for her own mailbox.

Each subscription holds a dialog at the PBX, so a flow holds at most `max_per_flow` and a user at most
`max_per_user` (sip.websocket.max_subscriptions_per_flow, _per_user; issue 67: 2,000 SUBSCRIBEs on one
flow opened 2,003 dialogs at the PBX). A new SUBSCRIBE past either gets 503 "Too Many Subscriptions"
with Retry-After (RETRY_AFTER s: a slot frees when one of the others ends, so a later try may pass) and
a Warning (399) naming the cap; refreshes always pass. A subscription's slot is the entry it
keeps while it lives: whatever ends it (unsubscribe, expiry, its flow closing, the PBX) frees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from gateway.identity import WebUser
from gateway.identity.policy import may_call
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.useragent.subscriptions import Notice, PbxPlace, SubscriptionClient, SubscriptionSpec
from gateway.sip.useragent.ua import UserAgent
from gateway.websip.registrar import Flow
from sipcore.dialogs.requests import Endpoint, build_request
from sipcore.event_bodies import DIALOG_INFO, MESSAGE_SUMMARY
from sipcore.location.routing import Target
from sipcore.subscription import SubscriptionConfig
from sipcore.syntax.headers import NameAddr, is_digits, new_tag, warning_value
from sipcore.syntax.message import Request
from sipcore.syntax.uri import URI, SipURI

__all__ = ["SubscriptionRelay"]

logger = logging.getLogger(__name__)
RETRY_AFTER: Final = 60  # s a SUBSCRIBE past a cap is told to wait (RFC 3261 §20.33)

PACKAGES = {"dialog": DIALOG_INFO, "message-summary": MESSAGE_SUMMARY}
MAX_EXPIRES = 3600
MIN_EXPIRES = 60
DEFAULT_MAX_PER_FLOW = 64
DEFAULT_MAX_PER_USER = 128


@dataclass(eq=False)
class _Relayed:
    """One library subscription: its dialog with the library and the PBX-side spec."""

    user: str
    flow: Flow
    call_id: str
    local_tag: str
    library: NameAddr  # the library's From (with its tag): our NOTIFYs' To
    resource: NameAddr  # what it subscribed to: our NOTIFYs' From (with our tag)
    target: URI  # the library's Contact
    event: str
    expires_at: float
    spec: SubscriptionSpec | None = None
    cseq: int = 0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class SubscriptionRelay:
    """See the module note; `subscribe` for a library's SUBSCRIBE out of dialog, `take` in its dialog."""

    def __init__(
        self,
        ua: UserAgent,
        client: SubscriptionClient,
        pbx_endpoint: Endpoint,
        library_endpoint: Endpoint,
        authenticate: Callable[[IncomingRequest], Awaitable[WebUser | None]],
        pbx_domain: str | None,
        place_of: Callable[[WebUser], PbxPlace | None] = lambda user: None,
        *,
        max_per_flow: int = DEFAULT_MAX_PER_FLOW,
        max_per_user: int = DEFAULT_MAX_PER_USER,
    ) -> None:
        self._ua = ua
        self._client = client
        self._pbx_endpoint = pbx_endpoint
        self._endpoint = library_endpoint
        self._authenticate = authenticate
        self._domain = pbx_domain
        self._place_of = place_of  # the user's own PBX (several PBXs); None: `pbx_domain`, the client's hop
        self.max_per_flow = max_per_flow
        self.max_per_user = max_per_user
        self._relayed: dict[tuple[str, str], _Relayed] = {}  # (Call-ID, our tag)
        self._tasks: set[asyncio.Task[None]] = set()

    async def subscribe(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        event = (request.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        if event not in PACKAGES:
            incoming.reply(489, headers=(("Allow-Events", ", ".join(PACKAGES)),))
            return
        user = await self._authenticate(incoming)
        if user is None:
            return
        uri, sender, contacts = request.uri, request.from_, request.contacts
        if not isinstance(uri, SipURI) or not uri.user or sender is None or not sender.tag or not contacts:
            incoming.reply(400, "Missing From tag, Contact or user part")
            return
        if not self._allowed(user, event, uri.user):
            incoming.reply(403, "Not Yours To Watch")
            return
        flow = Flow(incoming.source.transport.name, incoming.source.address)
        cap = self._cap_reached(user.id, flow)
        if cap is not None:
            headers = (("Retry-After", str(RETRY_AFTER)), ("Warning", warning_value(399, cap)))
            incoming.reply(503, "Too Many Subscriptions", headers=headers)
            logger.warning("%s's library SUBSCRIBE from %s refused: %s", user.id, incoming.source, cap)
            return
        expires = self._expires(request.headers.get("Expires"))
        now = asyncio.get_running_loop().time()
        to = request.to or NameAddr(uri)
        relayed = _Relayed(
            user.id, flow, request.call_id or "",
            new_tag(), sender, NameAddr(to.uri, to.display_name), contacts[0].uri, event, now + expires,
        )  # fmt: skip
        self._relayed[(relayed.call_id, relayed.local_tag)] = relayed
        incoming.reply(200, to_tag=relayed.local_tag, headers=self._contact(expires))
        self._notify(relayed, f"pending;expires={expires}")  # RFC 6665 §4.2.1: at once
        self._arm(relayed, expires)
        place = self._place_of(user)
        domain = place.domain if place is not None else self._domain
        resource = SipURI(domain or uri.host, uri.user)
        aor = user.aor
        subscriber = SipURI(aor.host, aor.user, port=aor.port, scheme=aor.scheme)
        creds = user.credentials
        relayed.spec = SubscriptionSpec(
            user.id, "relay", uri.user,
            SubscriptionConfig(resource, subscriber, event, PACKAGES[event], expires=MAX_EXPIRES),
            creds.username if creds else None, creds.password.reveal() if creds else None,
            on_notice=lambda notice: self._from_pbx(relayed, notice),
            hop=place.hop if place is not None else None, realm=place.realm if place is not None else None,
        )  # fmt: skip
        self._client.add(relayed.spec, self._pbx_endpoint)
        logger.info("%s's library subscribes to %s of %s (relayed to the PBX)", user.id, event, uri.user)

    def take(self, incoming: IncomingRequest) -> bool:
        """The library's SUBSCRIBE in one of its relayed dialogs (a refresh, or Expires: 0)."""
        request, to = incoming.request, incoming.request.to
        if request.method != "SUBSCRIBE" or to is None or to.tag is None:
            return False
        relayed = self._relayed.get((request.call_id or "", to.tag))
        if relayed is None:
            return False
        if Flow(incoming.source.transport.name, incoming.source.address) != relayed.flow:
            incoming.reply(403, "Not The Subscriber")
            return True
        value = (request.headers.get("Expires") or "").strip()
        if value == "0":
            incoming.reply(200, headers=self._contact(0))
            self.end(relayed, "timeout")
            return True
        expires = self._expires(value)
        relayed.expires_at = asyncio.get_running_loop().time() + expires
        incoming.reply(200, headers=self._contact(expires))
        self._arm(relayed, expires)
        return True

    def flow_closed(self, flow: Flow) -> None:
        for relayed in [r for r in self._relayed.values() if r.flow == flow]:
            self.end(relayed, None)

    async def close(self) -> None:
        for relayed in list(self._relayed.values()):
            self.end(relayed, "noresource")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)

    def end(self, relayed: _Relayed, reason: str | None) -> None:
        """Over: NOTIFY terminated to the library (unless its socket is gone), Expires: 0 to the PBX."""
        if self._relayed.pop((relayed.call_id, relayed.local_tag), None) is None:
            return
        if relayed.timer is not None:
            relayed.timer.cancel()
        if reason is not None:
            self._notify(relayed, f"terminated;reason={reason}")
        if relayed.spec is not None:
            self._client.remove(relayed.spec)
        logger.info(
            "%s's library subscription to %s ended (%s)", relayed.user, relayed.event, reason or "gone"
        )

    def _from_pbx(self, relayed: _Relayed, notice: Notice) -> None:
        if (relayed.call_id, relayed.local_tag) not in self._relayed:
            return
        left = max(0, int(relayed.expires_at - asyncio.get_running_loop().time()))
        if notice.body is not None:
            self._notify(relayed, f"active;expires={left}", notice.raw, notice.content_type)
        elif notice.state == "failed":
            self.end(relayed, "noresource")

    def count(self, user_id: str | None = None, flow: Flow | None = None) -> int:
        """The live subscriptions (of ``user_id``, on ``flow``, when given)."""
        return sum(
            1
            for r in self._relayed.values()
            if (user_id is None or r.user == user_id) and (flow is None or r.flow == flow)
        )

    def _cap_reached(self, user_id: str, flow: Flow) -> str | None:
        """The Warning's text when a new subscription of ``user_id`` on ``flow`` would exceed a cap."""
        if self.count(flow=flow) >= self.max_per_flow:
            key, cap = "flow", self.max_per_flow
        elif self.count(user_id) >= self.max_per_user:
            key, cap = "user", self.max_per_user
        else:
            return None
        return f"at most {cap} subscriptions per {key} (sip.websocket.max_subscriptions_per_{key})"

    def _allowed(self, user: WebUser, event: str, number: str) -> bool:
        if event == "message-summary":
            return number == user.aor.user
        place = self._place_of(user)
        return may_call(user, number, place.domain if place is not None else self._domain)

    @staticmethod
    def _expires(value: str | None) -> int:
        text = (value or "").strip()
        asked = int(text) if is_digits(text) and len(text) < 10 else MAX_EXPIRES
        return max(MIN_EXPIRES, min(asked, MAX_EXPIRES))

    def _contact(self, expires: int) -> tuple[tuple[str, str], ...]:
        return (("Contact", str(self._endpoint.contact())), ("Expires", str(expires)))

    def _arm(self, relayed: _Relayed, expires: int) -> None:
        if relayed.timer is not None:
            relayed.timer.cancel()
        relayed.timer = asyncio.get_running_loop().call_later(expires, self.end, relayed, "timeout")

    def _notify(
        self, relayed: _Relayed, state: str, body: bytes = b"", content_type: str | None = None
    ) -> None:
        relayed.cseq += 1
        request = build_request(
            "NOTIFY",
            relayed.target,
            endpoint=self._endpoint,
            from_=relayed.resource.with_param("tag", relayed.local_tag),
            to=relayed.library,
            call_id=relayed.call_id,
            cseq=relayed.cseq,
            contact=self._endpoint.contact(),
            body=body,
            content_type=content_type if body else None,
            headers=(("Event", relayed.event), ("Subscription-State", state)),
        )
        flow = Target(relayed.flow.transport, relayed.flow.address[0], relayed.flow.address[1])
        task = asyncio.get_running_loop().create_task(self._send(relayed, request, flow))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, relayed: _Relayed, request: Request, flow: Target) -> None:
        try:
            handle = await self._ua.layer.request(request, flow)
            final = await handle.final_response()
        except Exception as exc:  # the flow went away meanwhile
            logger.info("NOTIFY to %s's library not sent: %s", relayed.user, exc)
            return
        if final.status == 481:  # RFC 6665 §4.2.2: the library forgot it
            self.end(relayed, None)
