"""Transaction state machines (RFC 3261 §17, RFC 6026) on a fake clock, every (state, event) pair."""

from __future__ import annotations

import copy

import pytest

from sipcore import Request, Response, make_response, parse_message
from sipcore.transaction import (
    Action,
    CancelTimer,
    Event,
    EventKind,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Notice,
    Notify,
    PassUp,
    Send,
    StartTimer,
    State,
    Terminated,
    Timer,
    TimerConfig,
    Transaction,
    TransactionError,
)


def parse_request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


INVITE = parse_request(
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\nTo: Bob <sip:bob@example.com>\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 314159 INVITE\r\n"
    b"Route: <sip:proxy.example.com;lr>\r\nContent-Length: 0\r\n\r\n"
)
OPTIONS = Request("OPTIONS", INVITE.uri, INVITE.headers.replace("CSeq", "1 OPTIONS").remove("Route"))
ACK = Request("ACK", INVITE.uri, INVITE.headers.replace("CSeq", "314159 ACK"))


def response(request: Request, status: int) -> Response:
    return make_response(request, status, to_tag="bobtag")


def event_for(kind: EventKind, request: Request) -> Event:
    """An event of each kind, with a message where it needs one."""
    messages = {
        EventKind.RECV_1XX: response(request, 180),
        EventKind.RECV_2XX: response(request, 200),
        EventKind.RECV_FINAL_ERROR: response(request, 486),
        EventKind.RECV_REQUEST: request,
        EventKind.RECV_ACK: ACK,
        EventKind.SEND_1XX: response(request, 180),
        EventKind.SEND_2XX: response(request, 200),
        EventKind.SEND_FINAL_ERROR: response(request, 486),
    }
    if kind.name.startswith("TIMER_"):
        return Event.timer(Timer[kind.name[6:]])
    if kind is EventKind.TRANSPORT_ERROR:
        return Event.transport_error()
    message = messages[kind]
    built = Event.received(message) if kind.name.startswith("RECV") else Event.send(message)  # type: ignore[arg-type]
    assert built.kind is kind
    return built


CLASSES: dict[type[Transaction], tuple[Request, dict[State, list[EventKind]]]] = {
    InviteClientTransaction: (
        INVITE,
        {
            State.CALLING: [],
            State.PROCEEDING: [EventKind.RECV_1XX],
            State.COMPLETED: [EventKind.RECV_FINAL_ERROR],
            State.ACCEPTED: [EventKind.RECV_2XX],
            State.TERMINATED: [EventKind.RECV_FINAL_ERROR, EventKind.TIMER_D],
        },
    ),
    NonInviteClientTransaction: (
        OPTIONS,
        {
            State.TRYING: [],
            State.PROCEEDING: [EventKind.RECV_1XX],
            State.COMPLETED: [EventKind.RECV_2XX],
            State.TERMINATED: [EventKind.RECV_2XX, EventKind.TIMER_K],
        },
    ),
    InviteServerTransaction: (
        INVITE,
        {
            State.PROCEEDING: [],
            State.COMPLETED: [EventKind.SEND_FINAL_ERROR],
            State.CONFIRMED: [EventKind.SEND_FINAL_ERROR, EventKind.RECV_ACK],
            State.ACCEPTED: [EventKind.SEND_2XX],
            State.TERMINATED: [EventKind.SEND_FINAL_ERROR, EventKind.RECV_ACK, EventKind.TIMER_I],
        },
    ),
    NonInviteServerTransaction: (
        OPTIONS,
        {
            State.TRYING: [],
            State.PROCEEDING: [EventKind.SEND_1XX],
            State.COMPLETED: [EventKind.SEND_2XX],
            State.TERMINATED: [EventKind.SEND_2XX, EventKind.TIMER_J],
        },
    ),
}


def drive(cls: type[Transaction], path: list[EventKind], *, reliable: bool = False) -> Transaction:
    request = CLASSES[cls][0]
    transaction = cls(request, reliable=reliable)
    transaction.start(0.0)
    for kind in path:
        transaction.handle(event_for(kind, request), 1.0)
    return transaction


PAIRS = [(cls, state, kind) for cls, (_, paths) in CLASSES.items() for state in paths for kind in EventKind]


@pytest.mark.parametrize(
    ("cls", "state", "kind"), PAIRS, ids=lambda x: getattr(x, "name", getattr(x, "__name__", ""))
)
def test_every_state_event_pair(cls: type[Transaction], state: State, kind: EventKind) -> None:
    transaction = drive(cls, CLASSES[cls][1][state])
    assert transaction.state is state
    event = event_for(kind, transaction.request)
    if (state, kind) in cls.TABLE:
        actions = transaction.handle(event, 2.0)
        assert (Terminated() in actions) is (
            transaction.state is State.TERMINATED and state is not State.TERMINATED
        )
    else:
        before = copy.copy(transaction.state)
        with pytest.raises(TransactionError) as info:
            transaction.handle(event, 2.0)
        assert kind.name in str(info.value) and state.name in str(info.value)
        assert transaction.state is before


def test_tables_name_the_classes_own_handlers() -> None:
    """Each handler in a table is the function its class (or a base) defines under that name,
    so a subclass never runs a handler it has overridden."""
    for cls in CLASSES:
        for handler in cls.TABLE.values():
            assert getattr(cls, handler.__name__) is handler, (cls.__name__, handler.__name__)


def test_events_before_start_and_double_start() -> None:
    transaction = InviteClientTransaction(INVITE, reliable=False)
    with pytest.raises(TransactionError):
        transaction.handle(Event.timer(Timer.A), 0.0)
    transaction.start(0.0)
    with pytest.raises(TransactionError, match="already started"):
        transaction.start(0.0)
    with pytest.raises(TransactionError, match="carries no response"):
        transaction.handle(Event(EventKind.RECV_FINAL_ERROR), 0.0)


def timers(actions: list[Action]) -> list[tuple[Timer, float]]:
    return [(a.timer, a.deadline) for a in actions if isinstance(a, StartTimer)]


def test_invite_client_retransmits_with_doubling_then_times_out() -> None:
    transaction = InviteClientTransaction(INVITE, reliable=False)
    actions = transaction.start(10.0)
    assert actions[0] == Send(INVITE.serialize())
    assert timers(actions) == [(Timer.A, 10.5), (Timer.B, 42.0)]
    now, deadlines = 10.5, []
    for _ in range(5):
        actions = transaction.handle(Event.timer(Timer.A), now)
        assert actions[0] == Send(INVITE.serialize())
        ((_, now),) = timers(actions)
        deadlines.append(now)
    assert deadlines == [11.5, 13.5, 17.5, 25.5, 41.5]  # 1, 2, 4, 8, 16 s: no T2 cap for INVITE
    actions = transaction.handle(Event.timer(Timer.B), 42.0)
    assert Notify(Notice.TIMEOUT) in actions and actions[-1] == Terminated()
    assert transaction.state is State.TERMINATED


def test_invite_client_reliable_has_no_timer_a_and_acks_failures() -> None:
    transaction = InviteClientTransaction(INVITE, reliable=True)
    assert timers(transaction.start(0.0)) == [(Timer.B, 32.0)]
    ringing = response(INVITE, 180)
    assert transaction.handle(Event.received(ringing), 1.0) == [CancelTimer(Timer.B), PassUp(ringing)]
    busy = response(INVITE, 486)
    actions = transaction.handle(Event.received(busy), 2.0)
    ack = parse_message(next(a.data for a in actions if isinstance(a, Send)))
    assert isinstance(ack, Request) and ack.method == "ACK" and ack.uri == INVITE.uri
    assert ack.headers.get_all("Via") == INVITE.headers.get_all("Via")[:1]
    assert ack.to is not None and ack.to.tag == "bobtag"
    assert ack.cseq is not None and (ack.cseq.seq, ack.cseq.method) == (314159, "ACK")
    assert ack.headers.get_all("Route") == INVITE.headers.get_all("Route")
    assert PassUp(busy) in actions and actions[-1] == Terminated()  # Timer D = 0 on TCP


def test_invite_client_unreliable_completed_absorbs_retransmissions() -> None:
    transaction = drive(InviteClientTransaction, [EventKind.RECV_FINAL_ERROR])
    busy = response(INVITE, 486)
    actions = transaction.handle(Event.received(busy), 5.0)
    assert len(actions) == 1 and isinstance(actions[0], Send)  # the ACK again, nothing passed up
    assert transaction.handle(Event.timer(Timer.D), 33.0)[-1] == Terminated()


def test_invite_client_accepted_passes_2xx_retransmissions() -> None:
    transaction = InviteClientTransaction(INVITE, reliable=False)
    transaction.start(0.0)
    ok = response(INVITE, 200)
    actions = transaction.handle(Event.received(ok), 1.0)
    assert PassUp(ok) in actions and (Timer.M, 33.0) in timers(actions)
    assert transaction.handle(Event.received(ok), 2.0) == [PassUp(ok)]
    assert transaction.handle(Event.timer(Timer.M), 33.0)[-1] == Terminated()


def test_non_invite_client_timer_e_is_capped_at_t2() -> None:
    transaction = NonInviteClientTransaction(OPTIONS, reliable=False)
    assert timers(transaction.start(0.0)) == [(Timer.E, 0.5), (Timer.F, 32.0)]
    now, intervals = 0.5, []
    for _ in range(5):
        ((_, deadline),) = timers(transaction.handle(Event.timer(Timer.E), now))
        intervals.append(deadline - now)
        now = deadline
    assert intervals == [1.0, 2.0, 4.0, 4.0, 4.0]
    transaction.handle(Event.received(response(OPTIONS, 100)), now)
    ((_, deadline),) = timers(transaction.handle(Event.timer(Timer.E), now))
    assert deadline - now == 4.0  # T2 in Proceeding
    actions = transaction.handle(Event.received(response(OPTIONS, 200)), now)
    assert (Timer.K, now + 5.0) in timers(actions)
    assert transaction.handle(Event.received(response(OPTIONS, 200)), now) == []


def test_non_invite_client_timeout_and_transport_error() -> None:
    transaction = NonInviteClientTransaction(OPTIONS, reliable=True)
    assert timers(transaction.start(0.0)) == [(Timer.F, 32.0)]
    assert transaction.handle(Event.timer(Timer.F), 32.0)[0] == Notify(Notice.TIMEOUT)
    other = NonInviteClientTransaction(OPTIONS, reliable=True)
    other.start(0.0)
    assert other.handle(Event.transport_error(), 1.0)[0] == Notify(Notice.TRANSPORT_ERROR)
    assert other.state is State.TERMINATED
    reliable = NonInviteClientTransaction(OPTIONS, reliable=True)
    reliable.start(0.0)
    assert reliable.handle(Event.received(response(OPTIONS, 200)), 1.0)[-1] == Terminated()


def test_invite_server_failure_retransmits_until_ack() -> None:
    transaction = InviteServerTransaction(INVITE, reliable=False, timers=TimerConfig(t1=1.0, t2=4.0, t4=5.0))
    actions = transaction.start(0.0)
    assert actions[0] == PassUp(INVITE)
    trying = parse_message(actions[1].data)  # type: ignore[union-attr]
    assert isinstance(trying, Response) and trying.status == 100
    assert transaction.handle(Event.received(INVITE), 0.1) == [actions[1]]  # retransmitted INVITE
    busy = response(INVITE, 486)
    actions = transaction.handle(Event.send(busy), 1.0)
    assert actions[0] == Send(busy.serialize()) and timers(actions) == [(Timer.G, 2.0), (Timer.H, 65.0)]
    now, intervals = 2.0, []
    for _ in range(4):
        actions = transaction.handle(Event.timer(Timer.G), now)
        assert actions[0] == Send(busy.serialize())
        ((_, deadline),) = timers(actions)
        intervals.append(deadline - now)
        now = deadline
    assert intervals == [2.0, 4.0, 4.0, 4.0]
    assert transaction.handle(Event.received(INVITE), now) == [Send(busy.serialize())]
    actions = transaction.handle(Event.received(ACK), now)
    assert transaction.state is State.CONFIRMED and (Timer.I, now + 5.0) in timers(actions)
    assert transaction.handle(Event.received(ACK), now) == []
    assert transaction.handle(Event.timer(Timer.I), now + 5)[-1] == Terminated()


def test_invite_server_timer_h_and_reliable_ack() -> None:
    transaction = InviteServerTransaction(INVITE, reliable=True, send_trying=False)
    assert transaction.start(0.0) == [PassUp(INVITE)]
    actions = transaction.handle(Event.send(response(INVITE, 603)), 0.0)
    assert timers(actions) == [(Timer.H, 32.0)]  # no Timer G on TCP
    assert transaction.handle(Event.timer(Timer.H), 32.0)[0] == Notify(Notice.TIMEOUT)
    other = InviteServerTransaction(INVITE, reliable=True)
    other.start(0.0)
    other.handle(Event.send(response(INVITE, 486)), 0.0)
    assert other.handle(Event.received(ACK), 1.0)[-1] == Terminated()  # Timer I = 0


def test_invite_server_accepted_state() -> None:
    transaction = InviteServerTransaction(INVITE, reliable=False)
    transaction.start(0.0)
    ok = response(INVITE, 200)
    actions = transaction.handle(Event.send(ok), 1.0)
    assert actions[0] == Send(ok.serialize()) and (Timer.L, 33.0) in timers(actions)
    assert transaction.handle(Event.send(ok), 2.0) == [Send(ok.serialize())]
    assert transaction.handle(Event.received(INVITE), 2.0) == []
    assert transaction.handle(Event.received(ACK), 3.0) == [PassUp(ACK)]
    assert transaction.handle(Event.timer(Timer.L), 33.0)[-1] == Terminated()


def test_non_invite_server() -> None:
    transaction = NonInviteServerTransaction(OPTIONS, reliable=False)
    assert transaction.start(0.0) == [PassUp(OPTIONS)]
    assert transaction.handle(Event.received(OPTIONS), 0.1) == []
    trying = response(OPTIONS, 100)
    assert transaction.handle(Event.send(trying), 0.2) == [Send(trying.serialize())]
    assert transaction.handle(Event.received(OPTIONS), 0.3) == [Send(trying.serialize())]
    ok = response(OPTIONS, 200)
    actions = transaction.handle(Event.send(ok), 0.4)
    assert timers(actions) == [(Timer.J, 32.4)]
    assert transaction.handle(Event.received(OPTIONS), 1.0) == [Send(ok.serialize())]
    assert transaction.handle(Event.send(response(OPTIONS, 500)), 1.0) == []
    assert transaction.handle(Event.timer(Timer.J), 32.4)[-1] == Terminated()
    reliable = NonInviteServerTransaction(OPTIONS, reliable=True)
    reliable.start(0.0)
    assert reliable.handle(Event.send(ok), 0.0)[-1] == Terminated()


def test_timer_config_validation() -> None:
    with pytest.raises(ValueError, match="T1=5"):
        TimerConfig(t1=5, t2=4)
    with pytest.raises(ValueError, match="T4 must be positive, not 0"):
        TimerConfig(t4=0)
