"""Offer/answer state of a dialog (RFC 3264 §4) and the UPDATE refusals of RFC 3311 §5.2."""

from __future__ import annotations

import random

import pytest

from sipcore.dialogs.offer_answer import TABLE, OaEvent, OaState, OfferAnswer, OfferAnswerError


def test_offers_and_answers_alternate() -> None:
    oa = OfferAnswer("c1")
    assert oa.refuse_offer() is None
    oa.handle(OaEvent.SEND_OFFER)
    assert oa.state is OaState.LOCAL_OFFER
    assert oa.refuse_offer() == (491, ())  # glare: ours is unanswered
    oa.handle(OaEvent.RECV_ANSWER)
    oa.handle(OaEvent.RECV_OFFER)
    assert oa.state is OaState.REMOTE_OFFER
    oa.handle(OaEvent.SEND_ANSWER)
    assert oa.state is OaState.STABLE


def test_their_unanswered_offer_makes_an_update_offer_a_500_with_retry_after() -> None:
    oa = OfferAnswer("c1", rng=random.Random(1))
    oa.handle(OaEvent.RECV_OFFER)
    refusal = oa.refuse_offer()
    assert refusal is not None and refusal[0] == 500
    ((name, value),) = refusal[1]
    assert name == "Retry-After" and 0 <= int(value) <= 10


def test_a_rejected_offer_returns_to_stable() -> None:
    oa = OfferAnswer()
    oa.handle(OaEvent.SEND_OFFER)
    oa.handle(OaEvent.REJECTED)
    oa.handle(OaEvent.RECV_OFFER)
    oa.handle(OaEvent.REJECTED)
    assert oa.state is OaState.STABLE


@pytest.mark.parametrize("state", list(OaState))
@pytest.mark.parametrize("event", list(OaEvent))
def test_every_state_event_pair(state: OaState, event: OaEvent) -> None:
    oa = OfferAnswer("c1")
    if state is OaState.LOCAL_OFFER:
        oa.handle(OaEvent.SEND_OFFER)
    elif state is OaState.REMOTE_OFFER:
        oa.handle(OaEvent.RECV_OFFER)
    if (state, event) in TABLE:
        oa.handle(event)
    else:
        with pytest.raises(OfferAnswerError) as caught:
            oa.handle(event)
        assert state.name in str(caught.value)
        assert oa.state is state
