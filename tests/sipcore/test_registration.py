"""Registration client (RFC 3261 §10.2) on a fake clock: digest flow, refresh, 423, backoff,
unregister, every (state, event) pair, random event sequences."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import Request, Response, SipURI, make_response, parse_message
from sipcore.auth.digest import Algorithm, DigestClient, digest_response, parse_auth_header
from sipcore.dialogs.requests import Endpoint
from sipcore.registration import (
    TABLE,
    Action,
    CancelTimer,
    RegEvent,
    Registration,
    RegistrationConfig,
    RegistrationError,
    RegState,
    SendRequest,
    SetTimer,
    StateChanged,
)

ENDPOINT = Endpoint("203.0.113.5", 5060)
AOR = SipURI("pbx.example.org", user="1001")
CONFIG = RegistrationConfig(AOR, expires=3600)
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CHALLENGE = (
    f'Digest realm="pbx.example.org", nonce="{NONCE}", qop="auth", algorithm=SHA-256, '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


def client(password: str = "secret") -> DigestClient:
    return DigestClient("1001", password, cnonce_factory=lambda: "f2/wE4q74E6zIJEtWaHKaf5wv")


def registration(
    digest: DigestClient | None = None, config: RegistrationConfig = CONFIG, seed: int = 1
) -> Registration:
    return Registration(
        config, ENDPOINT, digest=digest or client(), rng=random.Random(seed), call_id="reg@gw"
    )


def sent(actions: list[Action]) -> Request:
    requests = [a.request for a in actions if isinstance(a, SendRequest)]
    assert len(requests) == 1, actions
    parsed = parse_message(requests[0].serialize())  # what the registrar reads
    assert isinstance(parsed, Request)
    return requests[0]


def timer(actions: list[Action]) -> float:
    deadlines = [a.deadline for a in actions if isinstance(a, SetTimer)]
    assert len(deadlines) == 1, actions
    return deadlines[0]


def answer(reg: Registration, status: int, *headers: tuple[str, str], stale: bool = False) -> Response:
    pending = reg._pending
    assert pending is not None
    if status in (401, 407):
        name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        headers = ((name, CHALLENGE + (", stale=true" if stale else "")), *headers)
    return make_response(pending, status, to_tag="registrar", headers=headers)


def ok(reg: Registration, expires: int | None = None, *extra: tuple[str, str]) -> Response:
    contact = str(reg.contact) + (f";expires={expires}" if expires is not None else "")
    return answer(
        reg, 200, ("Contact", "<sip:1001@198.51.100.1:5060>;expires=99"), ("Contact", contact), *extra
    )


def test_config_validation() -> None:
    assert str(CONFIG.registrar_uri) == "sip:pbx.example.org"
    with pytest.raises(ValueError, match="user part"):
        RegistrationConfig(AOR, registrar=AOR)
    for kwargs in ({"expires": 0}, {"retry_base": 0.0}, {"min_refresh": 0.0}, {"max_challenges": 0}):
        with pytest.raises(ValueError):
            RegistrationConfig(AOR, **kwargs)


def test_challenge_flow_register_refresh() -> None:
    reg = registration()
    actions = reg.start(now=100.0)
    assert StateChanged(RegState.UNREGISTERED, RegState.REGISTERING, "REGISTER for 3600 s") in actions
    first = sent(actions)
    assert str(first.uri) == "sip:pbx.example.org" and first.call_id == "reg@gw"
    assert first.to is not None and first.from_ is not None and first.to.uri == first.from_.uri == AOR
    assert first.from_.tag and first.to.tag is None
    assert str(first.cseq) == "1 REGISTER" and first.headers.get("Expires") == "3600"
    assert [str(c) for c in first.contacts] == ["<sip:1001@203.0.113.5:5060>;expires=3600"]
    assert "Authorization" not in first.headers

    second = sent(reg.on_response(answer(reg, 401), now=100.1))
    assert reg.state is RegState.REGISTERING and reg.last_status == 401
    assert str(second.cseq) == "2 REGISTER" and second.call_id == first.call_id  # RFC 3261 §22.2
    assert (
        second.top_via is not None
        and first.top_via is not None
        and second.top_via.branch != first.top_via.branch
    )
    [(scheme, params)] = parse_auth_header(second.headers.get("Authorization") or "")
    assert scheme == "Digest" and params["username"] == "1001" and params["uri"] == "sip:pbx.example.org"
    assert params["algorithm"] == "SHA-256" and params["qop"] == "auth" and params["nc"] == "00000001"
    assert params["response"] == digest_response(
        Algorithm.SHA_256, username="1001", password="secret", realm="pbx.example.org", nonce=NONCE,
        method="REGISTER", uri="sip:pbx.example.org", qop="auth", nc="00000001", cnonce=params["cnonce"],
    )  # fmt: skip

    actions = reg.on_response(ok(reg, 1800), now=101.0)
    assert (
        reg.state is RegState.REGISTERED and reg.reason == "registered for 1800 s" and reg.last_status == 200
    )
    assert reg.expires_at == 1901.0
    assert timer(actions) == 101.0 + 1800 - 180  # 10 % before expiry

    refresh = sent(reg.on_timer(now=1721.0))
    assert reg.state is RegState.REFRESHING
    assert (
        str(refresh.cseq) == "3 REGISTER"
        and refresh.call_id == "reg@gw"
        and "Authorization" not in refresh.headers
    )
    again = sent(reg.on_response(answer(reg, 401), now=1721.1))
    assert str(again.cseq) == "4 REGISTER" and "Authorization" in again.headers
    reg.on_response(ok(reg, 1800), now=1722.0)
    assert reg.state is RegState.REGISTERED and reg.expires_at == 3522.0


def test_proxy_challenge_and_stale_nonce() -> None:
    reg = registration()
    reg.start(0.0)
    with_credentials = sent(reg.on_response(answer(reg, 407), 0.0))
    assert "Proxy-Authorization" in with_credentials.headers
    # RFC 7616 §3.3: stale=true means the credentials were right; answer the new nonce.
    retried = sent(reg.on_response(answer(reg, 407, stale=True), 0.0))
    assert str(retried.cseq) == "3 REGISTER" and reg.state is RegState.REGISTERING
    reg.on_response(ok(reg), 0.0)
    assert reg.state is RegState.REGISTERED


def test_bad_password_fails_without_looping() -> None:
    reg = registration(client("wrong"))
    reg.start(0.0)
    sent(reg.on_response(answer(reg, 401), 0.0))
    actions = reg.on_response(answer(reg, 401), 0.0)
    assert not [a for a in actions if isinstance(a, SendRequest)]
    assert reg.state is RegState.FAILED and reg.reason.startswith("bad credentials")
    assert reg.on_response(make_response(foreign_register(), 401), 0.0) == []  # nothing pending
    # The admin can try again.
    assert sent(reg.start(1.0)).cseq is not None and reg.state is RegState.REGISTERING


def foreign_register() -> Request:
    """A REGISTER with our Call-ID that the registration under test did not send."""
    other = registration()
    other.start(0.0)
    assert other._pending is not None
    return other._pending


def test_no_credentials_and_endless_stale_challenges() -> None:
    reg = Registration(CONFIG, ENDPOINT, call_id="x")
    reg.start(0.0)
    reg.on_response(answer(reg, 401), 0.0)
    assert reg.state is RegState.FAILED and "no credentials" in reg.reason
    reg = registration()
    reg.start(0.0)
    for _ in range(3):
        sent(reg.on_response(answer(reg, 401, stale=True), 0.0))
    reg.on_response(answer(reg, 401, stale=True), 0.0)
    assert reg.state is RegState.FAILED and "after 3 challenges" in reg.reason


def test_423_retries_with_min_expires() -> None:
    reg = registration(config=RegistrationConfig(AOR, expires=60))
    reg.start(0.0)
    retry = sent(reg.on_response(answer(reg, 423, ("Min-Expires", "600")), 0.0))  # RFC 3261 §10.2.8
    assert retry.headers.get("Expires") == "600" and retry.contacts[0].param("expires") == "600"
    assert str(retry.cseq) == "2 REGISTER" and reg.state is RegState.REGISTERING
    # A second 423 asking no more than we sent, or without Min-Expires: back off.
    reg.on_response(answer(reg, 423, ("Min-Expires", "600")), 0.0)
    assert reg.state is RegState.RETRY_WAIT
    sent(reg.on_timer(10.0))
    assert reg._pending is not None and reg._pending.headers.get("Expires") == "600"  # kept
    reg.on_response(answer(reg, 423), 10.0)
    assert reg.state is RegState.RETRY_WAIT


def test_backoff_schedule_with_seeded_rng() -> None:
    reg = registration(seed=42)
    expected_rng = random.Random(42)
    now = 0.0
    reg.start(now)
    delays = []
    for failures in range(1, 10):
        deadline = timer(reg.on_response(answer(reg, 503), now))
        ceiling = min(300.0, 5.0 * 2 ** (failures - 1))
        assert deadline - now == pytest.approx(ceiling * (0.5 + expected_rng.random() / 2))
        assert ceiling / 2 <= deadline - now <= ceiling
        delays.append(round(deadline - now, 3))
        assert reg.state is RegState.RETRY_WAIT and reg.reason.startswith("503 Service Unavailable; retry in")
        now = deadline
        sent(reg.on_timer(now))
        assert reg.state is RegState.REGISTERING
    assert delays == sorted(delays[:7]) + delays[7:] and max(delays) <= 300.0
    # Success resets the backoff.
    reg.on_response(ok(reg), now)
    sent(reg.on_timer(now + 3000))
    assert timer(reg.on_response(answer(reg, 500), now + 3000)) - (now + 3000) <= 5.0


def test_retry_after_and_timeouts() -> None:
    reg = registration()
    reg.start(0.0)
    assert timer(reg.on_response(answer(reg, 503, ("Retry-After", "120;duration=60")), 0.0)) == 120.0
    sent(reg.on_timer(120.0))
    actions = reg.on_timeout(130.0)  # the transaction layer's timeout: a 408
    assert reg.state is RegState.RETRY_WAIT and reg.last_status == 408 and 130.0 < timer(actions) <= 140.0
    assert reg.on_timeout(131.0) == []  # nothing pending
    for status in (302, 403, 404, 480, 500, 603):
        sent(reg.on_timer(200.0))
        reg.on_response(answer(reg, status), 200.0)
        assert reg.state is RegState.RETRY_WAIT and reg.last_status == status


def test_granted_expiry() -> None:
    reg = registration()
    reg.start(0.0)
    # Our binding's expires parameter wins over the Expires header and other bindings.
    reg.on_response(ok(reg, 120, ("Expires", "900")), 0.0)
    assert reg.expires_at == 120.0
    sent(reg.on_timer(100.0))
    reg.on_response(ok(reg, None, ("Expires", "900")), 100.0)
    assert reg.expires_at == 1000.0
    sent(reg.on_timer(900.0))
    reg.on_response(answer(reg, 200), 900.0)  # nothing said: what we asked
    assert reg.expires_at == 4500.0
    sent(reg.on_timer(4000.0))
    reg.on_response(ok(reg, 0), 4000.0)  # granted nothing: treated as a failure
    assert reg.state is RegState.RETRY_WAIT


@pytest.mark.parametrize(
    ("granted", "interval"), [(3600, 3240.0), (600, 540.0), (60, 54.0), (8, 4.0), (1, 1.0)]
)
def test_refresh_timing(granted: int, interval: float) -> None:
    reg = registration()
    reg.start(1000.0)
    assert timer(reg.on_response(ok(reg, granted), 1000.0)) == 1000.0 + interval


def test_stale_and_provisional_responses_are_ignored() -> None:
    reg = registration()
    assert reg.on_response(make_response(Request("REGISTER", AOR), 200), 0.0) == []
    reg.start(0.0)
    pending = reg._pending
    assert pending is not None
    other = Request("REGISTER", pending.uri, pending.headers.replace("CSeq", "99 REGISTER"))
    assert reg.on_response(make_response(other, 200), 0.0) == []
    wrong_call = Request("REGISTER", pending.uri, pending.headers.replace("Call-ID", "other"))
    assert reg.on_response(make_response(wrong_call, 200), 0.0) == []
    assert reg.on_response(answer(reg, 100), 0.0) == [] and reg.state is RegState.REGISTERING
    assert reg.last_status is None


def test_unregister() -> None:
    reg = registration()
    reg.start(0.0)
    reg.on_response(ok(reg), 0.0)
    actions = reg.stop(10.0)
    assert CancelTimer() in actions and reg.state is RegState.UNREGISTERING
    removal = sent(actions)
    assert removal.headers.get("Expires") == "0" and removal.contacts[0].param("expires") == "0"  # §10.2.2
    assert removal.call_id == "reg@gw" and str(removal.cseq) == "2 REGISTER"
    assert reg.stop(10.0) == []  # idempotent
    sent(reg.on_response(answer(reg, 401), 10.0))  # challenged too
    reg.on_response(answer(reg, 200), 10.1)
    assert reg.state is RegState.UNREGISTERED and reg.expires_at is None and reg.reason == "unregistered"
    assert reg.stop(11.0) == []
    # A failure while unregistering gives up.
    reg.start(20.0)
    reg.on_response(ok(reg), 20.0)
    reg.stop(21.0)
    reg.on_response(answer(reg, 500), 21.0)
    assert reg.state is RegState.UNREGISTERED and "500" in reg.reason
    # Refused credentials while unregistering too.
    reg = registration(client("wrong"))
    reg.start(0.0)
    reg.on_response(ok(reg), 0.0)
    reg.stop(1.0)
    sent(reg.on_response(answer(reg, 401), 1.0))
    reg.on_response(answer(reg, 401), 1.0)
    assert reg.state is RegState.UNREGISTERED and "bad credentials" in reg.reason


def test_stop_while_registering_waits_for_the_final_response() -> None:
    reg = registration()
    reg.start(0.0)
    assert reg.stop(1.0) == [StateChanged(RegState.REGISTERING, RegState.UNREGISTERING, "stopping")]
    # RFC 3261 §10.2: the unregister waits for the final response to the REGISTER in progress.
    for status, extra in ((200, ()), (401, ()), (423, (("Min-Expires", "9000"),)), (503, ())):
        reg = registration()
        reg.start(0.0)
        reg.stop(1.0)
        removal = sent(reg.on_response(answer(reg, status, *extra), 1.0))
        assert removal.headers.get("Expires") == "0" and reg.state is RegState.UNREGISTERING
        reg.on_response(answer(reg, 200), 1.0)
        assert reg.state is RegState.UNREGISTERED


def test_stop_in_retry_wait_and_failed() -> None:
    reg = registration()
    reg.start(0.0)
    reg.on_response(answer(reg, 503), 0.0)
    assert reg.stop(1.0) == [
        CancelTimer(),
        StateChanged(RegState.RETRY_WAIT, RegState.UNREGISTERED, "stopped"),
    ]
    # A failed refresh leaves a binding that may still be valid: remove it.
    reg.start(2.0)
    reg.on_response(ok(reg, 600), 2.0)
    sent(reg.on_timer(500.0))
    reg.on_response(answer(reg, 503), 500.0)
    assert reg.state is RegState.RETRY_WAIT and reg.expires_at == 602.0
    assert sent(reg.stop(501.0)).headers.get("Expires") == "0"
    reg = registration(client("wrong"))
    reg.start(0.0)
    reg.on_response(answer(reg, 401), 0.0)
    reg.on_response(answer(reg, 401), 0.0)
    assert reg.state is RegState.FAILED
    assert reg.stop(1.0) == [StateChanged(RegState.FAILED, RegState.UNREGISTERED, "stopped")]


# -- every (state, event) pair ---------------------------------------------------------------


def registration_in(state: RegState) -> Registration:
    reg = registration(client("wrong") if state is RegState.FAILED else None)
    plans: dict[RegState, list[str | int]] = {
        RegState.UNREGISTERED: [],
        RegState.REGISTERING: ["start"],
        RegState.REGISTERED: ["start", 200],
        RegState.REFRESHING: ["start", 200, "timer"],
        RegState.UNREGISTERING: ["start", 200, "stop"],
        RegState.RETRY_WAIT: ["start", 503],
        RegState.FAILED: ["start", 401, 401],
    }
    steps = plans[state]
    for step in steps:
        if step == "start":
            reg.start(0.0)
        elif step == "timer":
            reg.on_timer(1.0)
        elif step == "stop":
            reg.stop(1.0)
        else:
            assert isinstance(step, int)
            reg.on_response(answer(reg, step), 0.0)
    assert reg.state is state
    return reg


EVENT_STATUS = {
    RegEvent.PROVISIONAL: 100,
    RegEvent.SUCCESS: 200,
    RegEvent.CHALLENGE: 401,
    RegEvent.TOO_BRIEF: 423,
    RegEvent.FAILURE: 500,
}


S, E = RegState, RegEvent
# The state each legal pair leads to (a CHALLENGE is answered; a 423 asks for more than we sent).
# fmt: off
NEXT_STATE: dict[tuple[RegState, RegEvent], RegState] = {
    (S.UNREGISTERED, E.START): S.REGISTERING, (S.UNREGISTERED, E.STOP): S.UNREGISTERED,
    (S.FAILED, E.START): S.REGISTERING, (S.FAILED, E.STOP): S.UNREGISTERED,
    (S.REGISTERING, E.START): S.REGISTERING, (S.REGISTERING, E.STOP): S.UNREGISTERING,
    (S.REGISTERING, E.PROVISIONAL): S.REGISTERING, (S.REGISTERING, E.SUCCESS): S.REGISTERED,
    (S.REGISTERING, E.CHALLENGE): S.REGISTERING, (S.REGISTERING, E.TOO_BRIEF): S.REGISTERING,
    (S.REGISTERING, E.FAILURE): S.RETRY_WAIT,
    (S.REGISTERED, E.START): S.REGISTERED, (S.REGISTERED, E.STOP): S.UNREGISTERING,
    (S.REGISTERED, E.TIMER): S.REFRESHING,
    (S.REFRESHING, E.START): S.REFRESHING, (S.REFRESHING, E.STOP): S.UNREGISTERING,
    (S.REFRESHING, E.PROVISIONAL): S.REFRESHING, (S.REFRESHING, E.SUCCESS): S.REGISTERED,
    (S.REFRESHING, E.CHALLENGE): S.REFRESHING, (S.REFRESHING, E.TOO_BRIEF): S.REFRESHING,
    (S.REFRESHING, E.FAILURE): S.RETRY_WAIT,
    (S.UNREGISTERING, E.STOP): S.UNREGISTERING, (S.UNREGISTERING, E.PROVISIONAL): S.UNREGISTERING,
    (S.UNREGISTERING, E.SUCCESS): S.UNREGISTERED, (S.UNREGISTERING, E.CHALLENGE): S.UNREGISTERING,
    (S.UNREGISTERING, E.TOO_BRIEF): S.UNREGISTERED, (S.UNREGISTERING, E.FAILURE): S.UNREGISTERED,
    (S.RETRY_WAIT, E.START): S.RETRY_WAIT, (S.RETRY_WAIT, E.STOP): S.UNREGISTERED,
    (S.RETRY_WAIT, E.TIMER): S.REGISTERING,
}
# fmt: on


def test_next_states_cover_the_table() -> None:
    assert set(NEXT_STATE) == set(TABLE)


@pytest.mark.parametrize("state", list(RegState))
@pytest.mark.parametrize("event", list(RegEvent))
def test_every_state_event_pair(state: RegState, event: RegEvent) -> None:
    reg = registration_in(state)
    response = None
    if event in EVENT_STATUS:
        if reg._pending is None:
            reg._pending = foreign_register()
        response = answer(reg, EVENT_STATUS[event], ("Min-Expires", "7200"))
    if (state, event) in TABLE:
        assert isinstance(reg.handle(event, 5.0, response), list)
        assert reg.state is NEXT_STATE[(state, event)]
    else:
        with pytest.raises(RegistrationError, match=f"{event.name}.*{state.name}"):
            reg.handle(event, 5.0, response)
        assert reg.state is state


def test_response_events_need_a_response() -> None:
    reg = registration_in(RegState.REGISTERING)
    with pytest.raises(RegistrationError, match="needs a response"):
        reg.handle(RegEvent.SUCCESS, 0.0)
    for handler in set(TABLE.values()):
        assert getattr(Registration, handler.__name__) is handler


OPS = st.one_of(
    st.sampled_from(["start", "stop", "timer", "timeout"]),
    st.sampled_from([100, 200, 401, 407, 423, 500, 503, 603]),
)


@given(st.lists(st.tuples(OPS, st.booleans()), max_size=30), st.booleans())
def test_random_event_sequences(ops: list[tuple[str | int, bool]], good_password: bool) -> None:
    reg = registration(client("secret" if good_password else "wrong"))
    now = 0.0
    for op, flag in ops:
        now += 1.0
        try:
            if op == "start":
                reg.start(now)
            elif op == "stop":
                reg.stop(now)
            elif op == "timer":
                reg.on_timer(now)
            elif op == "timeout":
                reg.on_timeout(now)
            elif reg._pending is not None:
                assert isinstance(op, int)
                extra = (("Min-Expires", "7200"),) if flag else ()
                reg.on_response(answer(reg, op, *extra, stale=flag), now)
        except RegistrationError:
            pass
        assert reg.state in RegState
        assert (reg._pending is not None) == (
            reg.state in (RegState.REGISTERING, RegState.REFRESHING, RegState.UNREGISTERING)
        )
        if reg.state is RegState.REGISTERED:
            assert reg.expires_at is not None and reg.expires_at > now - 1.0
