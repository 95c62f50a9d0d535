"""An inbound INVITE routed before the UA builds a call for it (issue 18, the redirect path's setup time).

In a cluster, the instance an INVITE reached decides from the transaction layer's handler
(`UserAgent.route_invite`) whether the call is its own: the callee's target is resolved and her holders
looked up (gateway/cluster/routing.py) before any dialog, IncomingCall, task or call log context exists,
so a 302 (RFC 3261 §21.3.3) or a 503 (Redis unreachable: the edge tries another instance) goes out as
a plain response of the server transaction (make_response adds our To tag, §8.2.6.2). A 3xx creates no
dialog (§12.1), so nothing was lost by not building one; the transaction layer still resends the 302 on
a retransmitted INVITE and absorbs the ACK (§17.2.1).

An INVITE kept here goes on to the UA's usual checks (415, 422...) and to the driver, which takes the
target resolved here (`take`) instead of resolving and looking it up again. The UA calls the driver
synchronously after `route` returns (UserAgent.on_request -> _new_call -> on_incoming_call), so one
slot is enough: the INVITE kept last, overwritten by the next; one the UA refused leaves nothing behind.
This module owns that slot; it imports identity's lookup results, the signaling's errors and the UA's
`IncomingRequest`, and names `DriverCore` (the state it reads) for typing only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.identity.model import Found, InboundResult, NotOnline
from gateway.signaling.errors import SignalingError
from gateway.sip.transactions.tu import IncomingRequest

if TYPE_CHECKING:
    from gateway.runtime.driver_core import DriverCore

logger = logging.getLogger(__name__)


class EarlyRoutes:
    def __init__(self, driver: DriverCore) -> None:
        self._driver = driver
        self._kept: tuple[IncomingRequest, InboundResult] | None = None

    async def route(self, incoming: IncomingRequest) -> bool:
        """True when `incoming` (an INVITE out of dialog) was answered here: 302 to the instances
        holding the callee, 503 without the shared state. False: the UA builds the call as usual (and
        the driver takes the target resolved here). Only in a cluster; an INVITE with Replaces (RFC
        3891), one while draining, or one whose target could not be resolved goes the usual way."""
        driver = self._driver
        redirect = driver.inbound_redirect
        request = incoming.request
        if redirect is None or not driver.accepting or request.headers.get("Replaces") is not None:
            return False
        call_id = request.call_id
        to_uri = str(request.to.uri) if request.to is not None else None
        try:
            request_uri = str(request.uri)
            home = await driver.room_redirect(request_uri) if driver.room_redirect is not None else None
            if home is not None:  # a room's number, the room on another instance: the edge follows
                logger.info("call=%s %s: its room is on another instance: 302 %s", call_id, request.uri, home)
                return self._answer(incoming, 302, "Moved Temporarily", (("Contact", f"<{home}>"),))
            room = await driver.room_calls(request_uri, to_uri) if driver.room_calls is not None else None
            pbx = driver.registry.settings.pbx_plan.source_pbx(incoming.source.host)  # its tenant (pbxs.py)
            target = (
                room
                if room is not None
                else await driver.identity.resolve_inbound(request_uri, to_uri, pbx=pbx)
            )
            contacts = await redirect(incoming, target) if isinstance(target, (NotOnline, Found)) else ()
        except SignalingError as exc:  # the shared state is unreachable: the edge tries another instance
            logger.warning("call=%s %s: %s", call_id, request.uri, exc)
            return self._answer(incoming, 503, "Cluster State Unavailable")
        except Exception:  # the usual path resolves it again and answers (500 at worst)
            logger.exception("call=%s INVITE could not be routed early", call_id)
            return False
        if contacts:  # RFC 3261 §21.3.3: online on other instances (too); the edge proxy follows
            assert isinstance(target, (NotOnline, Found))  # (several Contacts: it forks to all of them)
            logger.info("call=%s %s is on other instances: 302 %s", call_id, target.target, contacts)
            headers = tuple(("Contact", f"<{c}>") for c in contacts)
            return self._answer(incoming, 302, "Moved Temporarily", headers)
        self._kept = (incoming, target)
        return False

    def take(self, incoming: IncomingRequest) -> InboundResult | None:
        """The target `route` resolved for `incoming` (and did not redirect), once; None if none."""
        kept, self._kept = self._kept, None
        return kept[1] if kept is not None and kept[0] is incoming else None

    @staticmethod
    def _answer(
        incoming: IncomingRequest, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> bool:
        if incoming.final is None:  # not CANCELled (487) while the lookup ran
            incoming.reply(status, reason, headers=headers)
        return True
