"""Subscriber side of RFC 6665 on a fake clock: SUBSCRIBE, the dialog from the 200 or the first NOTIFY,
refresh, digest, 481 (a new dialog), 489 (for good), terminated NOTIFYs, unsubscribe, every (state,
event) pair, random event sequences."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import Request, SipURI, make_response, parse_message
from sipcore.auth.digest import DigestClient
from sipcore.dialogs.requests import Endpoint
from sipcore.errors import SIPError
from sipcore.subscription import (
    FINAL_NOTIFY_WAIT,
    TABLE,
    Action,
    SendRequest,
    SetTimer,
    SubEvent,
    Subscription,
    SubscriptionConfig,
    SubscriptionError,
    SubscriptionStateChanged,
    SubState,
)

ENDPOINT = Endpoint("203.0.113.5", 5060)
CONFIG = SubscriptionConfig(
    SipURI("pbx.example.org", "1002"),
    SipURI("pbx.example.org", "1001"),
    "dialog",
    "application/dialog-info+xml",
    expires=600,
)
CHALLENGE = 'Digest realm="pbx.example.org", nonce="abc", qop="auth", algorithm=MD5'


def machine(digest: DigestClient | None = None) -> Subscription:
    return Subscription(CONFIG, ENDPOINT, digest=digest, rng=random.Random(1))


def sent(actions: list[Action]) -> Request:
    requests = [a.request for a in actions if isinstance(a, SendRequest)]
    assert len(requests) == 1, actions
    parsed = parse_message(requests[0].serialize())  # what the notifier reads
    assert isinstance(parsed, Request)
    return parsed


def timer(actions: list[Action]) -> float:
    deadlines = [a.deadline for a in actions if isinstance(a, SetTimer)]
    assert deadlines, actions
    return deadlines[-1]


def ok(request: Request, status: int = 200, expires: str = "600", tag: str = "n1") -> object:
    return make_response(
        request, status, to_tag=tag, headers=(("Expires", expires), ("Contact", "<sip:pbx@192.0.2.9:5070>"))
    )


def notify(
    sub: Subscription, state: str, *, event: str = "dialog", tag: str = "n1", cseq: int = 1
) -> Request:
    text = (
        f"NOTIFY sip:1001@203.0.113.5:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bK-{cseq}\r\n"
        f"From: <sip:1002@pbx.example.org>;tag={tag}\r\nTo: <sip:1001@pbx.example.org>;tag={sub.local_tag}\r\n"
        f"Call-ID: {sub.call_id}\r\nCSeq: {cseq} NOTIFY\r\nContact: <sip:pbx@192.0.2.9:5070>\r\n"
        f"Event: {event}\r\nSubscription-State: {state}\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def test_subscribe_carries_the_package_and_the_200_starts_the_dialog_and_its_refresh() -> None:
    sub = machine()
    request = sent(sub.start(0.0))
    assert request.method == "SUBSCRIBE" and str(request.uri) == "sip:1002@pbx.example.org"
    assert request.headers.get("Event") == "dialog"
    assert request.headers.get("Accept") == "application/dialog-info+xml"
    assert request.headers.get("Expires") == "600" and request.to is not None and request.to.tag is None
    actions = sub.on_response(ok(request, expires="300"), 1.0)  # type: ignore[arg-type]
    assert sub.state is SubState.ACTIVE and sub.remote_tag == "n1"
    assert 1.0 + 150 <= timer(actions) < 1.0 + 300
    refresh = sent(sub.on_timer(timer(actions)))
    assert refresh.to is not None and refresh.to.tag == "n1"  # in the dialog
    assert str(refresh.uri) == "sip:pbx@192.0.2.9:5070"  # the notifier's Contact
    assert refresh.call_id == request.call_id and refresh.cseq is not None and refresh.cseq.seq == 2
    assert sub.state is SubState.REFRESHING


def test_the_first_notify_may_come_before_the_200_and_gives_the_dialog() -> None:
    sub = machine()
    request = sent(sub.start(0.0))
    status, _ = sub.on_notify(notify(sub, "active;expires=600"), 0.1)
    assert status == 200 and sub.remote_tag == "n1"
    sub.on_response(ok(request), 0.2)  # type: ignore[arg-type]
    assert sub.state is SubState.ACTIVE


def test_a_notify_for_another_package_gets_489_and_one_without_state_400() -> None:
    sub = machine()
    sent(sub.start(0.0))
    assert sub.on_notify(notify(sub, "active", event="presence"), 0.1)[0] == 489
    bare = notify(sub, "active")
    bare = Request(bare.method, bare.uri, bare.headers.remove("Subscription-State"), b"")
    assert sub.on_notify(bare, 0.1)[0] == 400


def test_digest_challenge_is_answered_once_with_the_users_credentials() -> None:
    sub = machine(DigestClient("1001", "secret", cnonce_factory=lambda: "c"))
    request = sent(sub.start(0.0))
    challenge = make_response(request, 407, headers=(("Proxy-Authenticate", CHALLENGE),))
    retry = sent(sub.on_response(challenge, 0.1))
    assert (retry.headers.get("Proxy-Authorization") or "").startswith("Digest ")
    assert retry.cseq is not None and retry.cseq.seq == 2
    sub.on_response(ok(retry), 0.2)  # type: ignore[arg-type]
    assert sub.state is SubState.ACTIVE


def test_481_to_a_refresh_starts_a_new_subscription_at_once() -> None:
    sub = machine()
    request = sent(sub.start(0.0))
    actions = sub.on_response(ok(request), 0.1)  # type: ignore[arg-type]
    old_call_id = sub.call_id
    refresh = sent(sub.on_timer(timer(actions)))
    again = sent(sub.on_response(make_response(refresh, 481), 540.0))
    assert sub.state is SubState.SUBSCRIBING and again.to is not None and again.to.tag is None
    assert sub.call_id != old_call_id and again.call_id == sub.call_id  # RFC 6665 §4.1.2.4: a new dialog


def test_489_fails_for_good_and_403_retries_with_backoff() -> None:
    sub = machine()
    request = sent(sub.start(0.0))
    sub.on_response(make_response(request, 489), 0.1)
    assert sub.state is SubState.FAILED
    sub = machine()
    request = sent(sub.start(0.0))
    first = timer(sub.on_response(make_response(request, 403), 1.0))
    assert sub.state is SubState.RETRY_WAIT and 1.0 + 2.5 <= first <= 1.0 + 5
    request = sent(sub.on_timer(first))
    second = timer(sub.on_response(make_response(request, 403), first))
    assert second - first > 4.9  # doubled: 10 s * (50 % to 100 %)


@pytest.mark.parametrize(
    ("state", "expected", "delay"),
    [
        ("terminated;reason=deactivated", SubState.SUBSCRIBING, None),
        ("terminated;reason=timeout", SubState.SUBSCRIBING, None),
        ("terminated;reason=probation;retry-after=30", SubState.RETRY_WAIT, 30.0),
        ("terminated;reason=giveup", SubState.RETRY_WAIT, None),
        ("terminated;reason=rejected", SubState.FAILED, None),
        ("terminated;reason=noresource", SubState.FAILED, None),
    ],
)
def test_a_terminated_notify_resubscribes_or_gives_up_per_its_reason(
    state: str, expected: SubState, delay: float | None
) -> None:
    sub = machine()
    request = sent(sub.start(0.0))
    sub.on_response(ok(request), 0.1)  # type: ignore[arg-type]
    status, actions = sub.on_notify(notify(sub, state), 10.0)
    assert status == 200 and sub.state is expected, sub.reason
    if delay is not None:
        assert timer(actions) == 10.0 + delay
    if expected is SubState.SUBSCRIBING:
        assert sent(actions).to.tag is None  # type: ignore[union-attr]


def test_stop_unsubscribes_with_expires_0_in_the_dialog() -> None:
    sub = machine()
    request = sent(sub.start(0.0))
    sub.on_response(ok(request), 0.1)  # type: ignore[arg-type]
    bye = sent(sub.stop(5.0))
    assert bye.headers.get("Expires") == "0" and bye.to is not None and bye.to.tag == "n1"
    assert sub.state is SubState.UNSUBSCRIBING
    assert sub.on_notify(notify(sub, "terminated;reason=timeout", cseq=2), 5.1)[0] == 200
    sub.on_response(make_response(bye, 200, to_tag="n1"), 5.2)
    assert sub.state is SubState.IDLE
    assert sub.on_notify(notify(sub, "active", cseq=3), 5.3)[0] == 481


def test_after_the_unsubscribes_200_the_notifiers_last_notify_is_still_answered_200() -> None:
    """RFC 6665 §4.1.2.3, §4.4.1: the subscription lasts until the terminated NOTIFY, which Asterisk sends
    after its 200 to the unsubscribe; then it is over (481), as it is FINAL_NOTIFY_WAIT later anyway."""
    sub = machine()
    request = sent(sub.start(0.0))
    sub.on_response(ok(request), 0.1)  # type: ignore[arg-type]
    bye = sent(sub.stop(5.0))
    sub.on_response(make_response(bye, 200, to_tag="n1"), 5.2)
    assert sub.state is SubState.IDLE
    assert sub.on_notify(notify(sub, "active", cseq=2), 5.3)[0] == 200
    assert sub.on_notify(notify(sub, "terminated;reason=timeout", cseq=3), 5.4)[0] == 200
    assert sub.on_notify(notify(sub, "active", cseq=4), 5.5)[0] == 481
    late = machine()
    request = sent(late.start(0.0))
    late.on_response(ok(request), 0.1)  # type: ignore[arg-type]
    bye = sent(late.stop(5.0))
    late.on_response(make_response(bye, 200, to_tag="n1"), 5.2)
    assert late.on_notify(notify(late, "terminated", cseq=2), 5.2 + FINAL_NOTIFY_WAIT + 0.1)[0] == 481


def test_stop_while_the_first_subscribe_is_pending_unsubscribes_after_its_200() -> None:
    sub = machine()
    request = sent(sub.start(0.0))
    assert not [a for a in sub.stop(0.1) if isinstance(a, SendRequest)]
    bye = sent(sub.on_response(ok(request), 0.2))  # type: ignore[arg-type]
    assert bye.headers.get("Expires") == "0"
    sub.on_response(make_response(bye, 200, to_tag="n1"), 0.3)
    assert sub.state is SubState.IDLE


def test_every_state_event_pair_is_handled_or_refused_by_name() -> None:
    for state in SubState:
        for event in SubEvent:
            sub = machine()
            sub.state = state
            if (state, event) in TABLE:
                continue
            with pytest.raises(SubscriptionError, match=f"{event.name}.*{state.name}"):
                sub.handle(event, 0.0)


@given(st.lists(st.sampled_from(["200", "202", "403", "481", "489", "408", "timer", "stop", "start",
                                 "active", "pending", "terminated", "deactivated"]), max_size=30))  # fmt: skip
def test_random_sequences_raise_nothing_but_sip_errors(steps: list[str]) -> None:
    sub = machine()
    now = 0.0
    pending: Request | None = None
    for step in steps:
        now += 1.0
        try:
            if step.isdigit() and pending is not None:
                actions = sub.on_response(ok(pending, int(step)), now)  # type: ignore[arg-type]
            elif step in ("active", "pending", "terminated", "deactivated"):
                value = "terminated;reason=deactivated" if step == "deactivated" else step
                actions = sub.on_notify(notify(sub, value, cseq=int(now)), now)[1]
            elif step in ("timer", "stop", "start"):
                if step == "timer" and (sub.state, SubEvent.TIMER) not in TABLE:
                    continue
                actions = getattr(sub, {"timer": "on_timer"}.get(step, step))(now)
            else:
                continue
        except SIPError as exc:
            assert isinstance(exc, SubscriptionError), exc
            continue
        for action in actions:
            if isinstance(action, SendRequest):
                pending = action.request
            assert isinstance(action, SendRequest | SetTimer | SubscriptionStateChanged) or action is not None
