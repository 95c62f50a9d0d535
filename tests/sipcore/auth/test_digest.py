"""Digest client: RFC 7616 §3.9.1 and RFC 2617 §3.5 vectors, algorithm choice, nonce counts."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from sipcore import DigestError, Headers, Request, Response, SipURI
from sipcore.auth.digest import Algorithm, Challenge, DigestClient, digest_response, parse_auth_header

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def rfc7616_client() -> DigestClient:
    return DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (Algorithm.MD5, "8ca523f5e9506fed4657c9700eebdbec"),
        (Algorithm.SHA_256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm: Algorithm, expected: str) -> None:
    # RFC 7616 §3.9.1 (HTTP: method GET, uri /dir/index.html).
    assert (
        digest_response(
            algorithm,
            username="Mufasa",
            password="Circle of Life",
            realm="http-auth@example.org",
            nonce=RFC7616_NONCE,
            method="GET",
            uri="/dir/index.html",
            qop="auth",
            nc="00000001",
            cnonce=RFC7616_CNONCE,
        )
        == expected
    )
    challenge = Challenge(
        "http-auth@example.org", RFC7616_NONCE, algorithm, ("auth", "auth-int"), RFC7616_OPAQUE
    )
    value = rfc7616_client().credentials(challenge, "GET", "/dir/index.html")
    assert value == (
        'Digest username="Mufasa", realm="http-auth@example.org", '
        f'nonce="{RFC7616_NONCE}", uri="/dir/index.html", response="{expected}", '
        f'algorithm={algorithm.value}, cnonce="{RFC7616_CNONCE}", opaque="{RFC7616_OPAQUE}", '
        "qop=auth, nc=00000001"
    )


def test_rfc2617_vector() -> None:
    # RFC 2617 §3.5.
    challenge = Challenge(
        "testrealm@host.com",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        Algorithm.MD5,
        ("auth", "auth-int"),
        "5ccc069c403ebaf9f0171e9517f40e41",
    )
    client = DigestClient("Mufasa", "Circle Of Life", cnonce_factory=lambda: "0a4f113b")
    value = client.credentials(challenge, "GET", "/dir/index.html")
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value and "nc=00000001" in value


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_legacy_no_qop_and_sess_and_auth_int() -> None:
    legacy = Challenge("r", "n")
    value = DigestClient("u", "p").credentials(legacy, "REGISTER", "sip:r")
    expected = md5(f"{md5('u:r:p')}:n:{md5('REGISTER:sip:r')}")
    assert f'response="{expected}"' in value and "qop" not in value and "cnonce" not in value
    sess = Challenge("r", "n", Algorithm.MD5_SESS, ("auth",))
    value = DigestClient("u", "p", cnonce_factory=lambda: "c").credentials(sess, "INVITE", "sip:b@r")
    ha1 = md5(f"{md5('u:r:p')}:n:c")
    ha2 = md5("INVITE:sip:b@r")
    assert f'response="{md5(f"{ha1}:n:00000001:c:auth:{ha2}")}"' in value
    auth_int = Challenge("r", "n", Algorithm.SHA_256, ("auth-int",))
    value = DigestClient("u", "p", cnonce_factory=lambda: "c").credentials(
        auth_int, "MESSAGE", "sip:x", b"hi"
    )
    assert "qop=auth-int" in value
    with pytest.raises(DigestError, match="qop"):
        DigestClient("u", "p").credentials(Challenge("r", "n", qop=("other",)), "BYE", "sip:x")


def test_userhash() -> None:
    challenge = Challenge("r", "n", Algorithm.SHA_256, ("auth",), userhash=True)
    value = DigestClient("Mufasa", "x").credentials(challenge, "REGISTER", "sip:r")
    assert f'username="{hashlib.sha256(b"Mufasa:r").hexdigest()}"' in value and "userhash=true" in value


def test_parse_auth_header_with_several_challenges() -> None:
    value = (
        'Digest realm="a", qop="auth,auth-int", algorithm=SHA-256, nonce="n1", '
        'Digest realm="a", nonce="n2", algorithm=MD5, Basic realm="b"'
    )
    items = parse_auth_header(value)
    assert [scheme for scheme, _ in items] == ["Digest", "Digest", "Basic"]
    assert items[0][1] == {"realm": "a", "qop": "auth,auth-int", "algorithm": "SHA-256", "nonce": "n1"}


REGISTER = Request(
    "REGISTER",
    SipURI("example.com"),
    Headers(
        (
            ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa"),
            ("From", "<sip:alice@example.com>;tag=1"),
            ("To", "<sip:alice@example.com>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 REGISTER"),
        )
    ),
)


def challenge_response(*values: str, header: str = "WWW-Authenticate", status: int = 401) -> Response:
    return Response(status, "Unauthorized", REGISTER.headers.replace(header, *values))


def counter_cnonce() -> DigestClient:
    counter = itertools.count(1)
    return DigestClient("alice", "secret", cnonce_factory=lambda: f"c{next(counter)}")


def test_authorize_picks_the_strongest_and_bumps_cseq() -> None:
    response = challenge_response(
        'Digest realm="example.com", nonce="n1", algorithm=MD5, qop="auth"',
        'Digest realm="example.com", nonce="n2", algorithm=SHA-256, qop="auth", opaque="op"',
        'Digest realm="example.com", nonce="n3", algorithm=UNKNOWN-ALG',
    )
    client = counter_cnonce()
    retry = client.authorize(REGISTER, response)
    auth = retry.headers.get("Authorization") or ""
    assert "algorithm=SHA-256" in auth and 'nonce="n2"' in auth and 'opaque="op"' in auth
    assert retry.cseq is not None and retry.cseq.seq == 2 and retry.call_id == "c1"
    assert retry.top_via is not None and retry.top_via.branch != "z9hG4bKa"
    assert retry.top_via.branch is not None and retry.top_via.branch.startswith("z9hG4bK")
    # The same nonce used again: nc increments (RFC 7616 §3.4).
    signed = client.sign(REGISTER)
    assert "nc=00000002" in (signed.headers.get("Authorization") or "")


def test_refused_credentials_and_stale() -> None:
    client = counter_cnonce()
    first = client.authorize(REGISTER, challenge_response('Digest realm="example.com", nonce="n1"'))
    with pytest.raises(DigestError, match="refused"):
        client.authorize(first, challenge_response('Digest realm="example.com", nonce="n2"'))
    # stale=true: same credentials, new nonce (RFC 7616 §3.3), nonce count restarts.
    again = client.authorize(
        first, challenge_response('Digest realm="example.com", nonce="n2", stale=TRUE, qop=auth')
    )
    values = again.headers.get_all("Authorization")
    assert len(values) == 1 and 'nonce="n2"' in values[0] and "nc=00000001" in values[0]


def test_proxy_and_several_realms() -> None:
    response = Response(
        407,
        "Proxy Authentication Required",
        REGISTER.headers.add("Proxy-Authenticate", 'Digest realm="proxy", nonce="p1", qop="auth"').add(
            "WWW-Authenticate", 'Digest realm="pbx", nonce="w1"'
        ),
    )
    retry = counter_cnonce().authorize(REGISTER, response)
    assert 'realm="proxy"' in (retry.headers.get("Proxy-Authorization") or "")
    assert 'realm="pbx"' in (retry.headers.get("Authorization") or "")


def test_credentials_bound_to_a_realm_answer_no_other() -> None:
    """A PBX's `realm` (several PBXs): her credentials answer that realm only, never another's."""
    client = DigestClient("alice", "secret", realm="pbx-b.test")
    with pytest.raises(DigestError, match=r"withheld: realm \['pbx-a.test'\] is not 'pbx-b.test'"):
        client.authorize(REGISTER, challenge_response('Digest realm="pbx-a.test", nonce="n1"'))
    mixed = challenge_response('Digest realm="pbx-b.test", nonce="n1"', 'Digest realm="evil", nonce="n2"')
    with pytest.raises(DigestError, match="'evil'"):
        client.authorize(REGISTER, mixed)
    retry = client.authorize(REGISTER, challenge_response('Digest realm="pbx-b.test", nonce="n1"'))
    assert 'realm="pbx-b.test"' in (retry.headers.get("Authorization") or "")


def test_no_usable_challenge() -> None:
    for value in ['Basic realm="x"', 'Digest realm="x", nonce="n", algorithm=SHA-1', 'Digest realm="x"']:
        with pytest.raises(DigestError, match="no supported Digest challenge"):
            counter_cnonce().authorize(REGISTER, challenge_response(value))


def test_challenge_validation() -> None:
    with pytest.raises(ValueError, match="'r'"):
        Challenge("r", "")
    with pytest.raises(ValueError, match="'Authorization'"):
        Challenge("r", "n", header="Authorization")
    assert Algorithm.from_token("sha-512-256-SESS") is Algorithm.SHA_512_256_SESS
    assert Algorithm.SHA_512_256.strength > Algorithm.SHA_256.strength > Algorithm.MD5.strength
