"""The server side of digest: challenges per algorithm, verification, stale nonces, replayed counts."""

from __future__ import annotations

from sipcore.auth.digest import Algorithm, DigestClient, parse_challenges
from sipcore.auth.digest_server import DigestServer, Outcome, Verified, ha1
from sipcore.syntax.message import Request, Response
from sipcore.syntax.parser import parse_message

REALM = "gw.example"
REGISTER = (
    "REGISTER sip:gw.example SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
    "To: <sip:alice@gw.example>\r\nFrom: <sip:alice@gw.example>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n"
    "Content-Length: 0\r\n\r\n"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request() -> Request:
    message = parse_message(REGISTER.encode())
    assert isinstance(message, Request)
    return message


def challenge_response(server: DigestServer, stale: bool = False) -> Response:
    headers = "".join(f"{name}: {value}\r\n" for name, value in server.challenge(stale=stale))
    text = (
        "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\nTo: <sip:alice@gw.example>;tag=2\r\n"
        f"From: <sip:alice@gw.example>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n{headers}Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Response)
    return message


def passwords(table: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda user, realm, algorithm: ha1(algorithm, user, realm, table[user]) if user in table else None


def test_one_challenge_per_algorithm_in_order_and_a_client_passes() -> None:
    clock = Clock()
    server = DigestServer(REALM, passwords({"alice": "pw"}), clock=clock)
    challenges = parse_challenges(challenge_response(server))
    assert [c.algorithm for c in challenges] == [Algorithm.SHA_256, Algorithm.MD5]
    assert all(c.qop == ("auth",) and c.realm == REALM for c in challenges)
    signed = DigestClient("alice", "pw").authorize(request(), challenge_response(server))
    outcome = server.check(signed)
    assert isinstance(outcome, Verified) and outcome.username == "alice"
    assert outcome.algorithm is Algorithm.SHA_256  # our client answers the strongest


def test_no_credentials_wrong_password_unknown_user() -> None:
    server = DigestServer(REALM, passwords({"alice": "pw"}), clock=Clock())
    outcome = server.check(request())
    assert isinstance(outcome, Outcome) and outcome.status == 401 and len(outcome.headers) == 2
    wrong = DigestClient("alice", "nope").authorize(request(), challenge_response(server))
    assert isinstance(outcome := server.check(wrong), Outcome) and outcome.status == 403
    assert outcome.reason == "wrong password"
    nobody = DigestClient("mallory", "pw").authorize(request(), challenge_response(server))
    assert isinstance(outcome := server.check(nobody), Outcome) and outcome.status == 403


def test_stale_nonce_is_rechallenged_with_stale_true() -> None:
    clock = Clock()
    server = DigestServer(REALM, passwords({"alice": "pw"}), clock=clock, nonce_ttl=300)
    signed = DigestClient("alice", "pw").authorize(request(), challenge_response(server))
    clock.now += 301
    outcome = server.check(signed)
    assert isinstance(outcome, Outcome) and outcome.status == 401 and "stale=true" in outcome.headers[0][1]


def test_a_replayed_authorization_is_refused() -> None:
    server = DigestServer(REALM, passwords({"alice": "pw"}), clock=Clock())
    signed = DigestClient("alice", "pw").authorize(request(), challenge_response(server))
    assert isinstance(server.check(signed), Verified)
    outcome = server.check(signed)
    assert isinstance(outcome, Outcome) and outcome.status == 401 and "replayed" in outcome.reason


def test_a_nonce_from_another_key_is_not_ours() -> None:
    ours = DigestServer(REALM, passwords({"alice": "pw"}), clock=Clock())
    theirs = DigestServer(REALM, passwords({"alice": "pw"}), clock=Clock())
    signed = DigestClient("alice", "pw").authorize(request(), challenge_response(theirs))
    outcome = ours.check(signed)
    assert isinstance(outcome, Outcome) and outcome.reason == "not our nonce"


def test_md5_only_and_ha1_credentials() -> None:
    stored = ha1(Algorithm.MD5, "alice", REALM, "pw")
    server = DigestServer(
        REALM, lambda user, realm, algorithm: stored if user == "alice" and algorithm is Algorithm.MD5 else None,
        algorithms=(Algorithm.MD5,), clock=Clock(),
    )  # fmt: skip
    signed = DigestClient("alice", "pw").authorize(request(), challenge_response(server))
    assert isinstance(server.check(signed), Verified)
