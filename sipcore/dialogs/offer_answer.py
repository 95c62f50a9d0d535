"""The offer/answer state of one dialog (RFC 3264 §4, RFC 3261 §13.2.1, RFC 3262 §5, RFC 3311 §5);
sans-I/O.

How it works: whatever carries them (INVITE, its reliable 1xx or 2xx, ACK, PRACK, UPDATE, a
re-INVITE), offers and answers alternate. :class:`OfferAnswer` records where the dialog stands:
``STABLE`` (no offer outstanding), ``LOCAL_OFFER`` (we made an offer not yet answered),
``REMOTE_OFFER`` (they made one we have not answered). Each offer, answer or refusal is an event of
:class:`OaEvent`; ``TABLE`` maps (state, event) to a handler, and a pair it lacks (an offer while
another is outstanding) raises :class:`OfferAnswerError` naming both.

:meth:`OfferAnswer.refuse_offer` is the check RFC 3311 §5.2 asks before an UPDATE's offer is taken:
491 Request Pending while our own offer is unanswered (glare); 500 with a Retry-After of 0-10 s while
theirs is (we are still working on an answer).
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable

from sipcore.errors import SIPError
from sipcore.tables import transition_table

__all__ = ["TABLE", "OaEvent", "OaState", "OfferAnswer", "OfferAnswerError"]

logger = logging.getLogger(__name__)


class OfferAnswerError(SIPError):
    """An offer or an answer out of turn (RFC 3264 §4)."""

    status = 500
    phrase = "Server Internal Error"


class OaState(enum.Enum):
    STABLE = "stable"
    LOCAL_OFFER = "local offer"
    REMOTE_OFFER = "remote offer"


# SEND_*/RECV_*: an offer or answer leaves or arrives; REJECTED: the transaction that carried the
# outstanding offer failed (a 4xx-6xx, a 491), so the offer is void (RFC 3261 §14.1, RFC 3311 §5.2).
OaEvent = enum.Enum("OaEvent", "SEND_OFFER RECV_OFFER SEND_ANSWER RECV_ANSWER REJECTED")


class OfferAnswer:
    """Where one dialog's offer/answer exchange stands; see the module note."""

    def __init__(self, call_id: str = "", *, rng: random.Random | None = None) -> None:
        self.call_id = call_id
        self.state = OaState.STABLE
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"<OfferAnswer {self.call_id} {self.state.name}>"

    def _set_state(self, new: OaState, event: OaEvent) -> None:
        if new is not self.state:
            logger.debug(
                "sip_call_id=%s offer/answer: %s -> %s (%s)",
                self.call_id,
                self.state.name,
                new.name,
                event.name,
            )
        self.state = new

    def handle(self, event: OaEvent) -> None:
        handler = TABLE.get((self.state, event))
        if handler is None:
            raise OfferAnswerError(
                f"call {self.call_id}: {event.name.lower().replace('_', ' ')} in state {self.state.name!r}"
            )
        handler(self, event)

    def refuse_offer(self) -> tuple[int, tuple[tuple[str, str], ...]] | None:
        """The response owed to an UPDATE carrying an offer (RFC 3311 §5.2), None when it can be
        taken: 491 while our offer is unanswered, 500 with Retry-After 0-10 s while theirs is."""
        if self.state is OaState.LOCAL_OFFER:
            return 491, ()
        if self.state is OaState.REMOTE_OFFER:
            return 500, (("Retry-After", str(self._rng.randint(0, 10))),)
        return None

    def _to_local(self, event: OaEvent) -> None:
        self._set_state(OaState.LOCAL_OFFER, event)

    def _to_remote(self, event: OaEvent) -> None:
        self._set_state(OaState.REMOTE_OFFER, event)

    def _to_stable(self, event: OaEvent) -> None:
        self._set_state(OaState.STABLE, event)


TABLE: dict[tuple[OaState, OaEvent], Callable[[OfferAnswer, OaEvent], None]] = transition_table(
    OaState,
    OaEvent,
    ("STABLE", "SEND_OFFER", OfferAnswer._to_local),
    ("STABLE", "RECV_OFFER", OfferAnswer._to_remote),
    ("LOCAL_OFFER", "RECV_ANSWER,REJECTED", OfferAnswer._to_stable),
    ("REMOTE_OFFER", "SEND_ANSWER,REJECTED", OfferAnswer._to_stable),
)
