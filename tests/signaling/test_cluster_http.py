"""The signature of requests forwarded between cluster instances (gateway/signaling/cluster_http.py)."""

from __future__ import annotations

from gateway.signaling.cluster_http import MAX_SKEW, sign, verify

SECRET = b"unit-cluster-secret-0123"


def test_a_signature_names_its_instance_and_binds_method_path_and_time() -> None:
    header = sign(SECRET, "gw1", "POST", "/webrtc/close", 1_700_000_000)
    assert verify(SECRET, header, "POST", "/webrtc/close", 1_700_000_005) == "gw1"
    assert verify(SECRET, header, "GET", "/webrtc/close", 1_700_000_005) is None
    assert verify(SECRET, header, "POST", "/webrtc/offer", 1_700_000_005) is None
    assert verify(b"another-secret-of-16+", header, "POST", "/webrtc/close", 1_700_000_005) is None
    assert verify(SECRET, header, "POST", "/webrtc/close", 1_700_000_000 + MAX_SKEW + 1) is None
    forged = header.replace("gw1", "gw2", 1)
    assert verify(SECRET, forged, "POST", "/webrtc/close", 1_700_000_005) is None


def test_malformed_headers_are_refused_without_an_error() -> None:
    for header in ("", "gw1", "gw1;x;y", "gw1;1700000000", ";;", "gw1;99999999999999;ab", "a;1;b;c"):
        assert verify(SECRET, header, "GET", "/", 1_700_000_000) is None


def test_a_signature_binds_the_asserted_user_and_the_body() -> None:
    """A forward asserts its user (no credentials of hers travel): the same signature with another user
    or another body fails."""
    header = sign(SECRET, "gw1", "POST", "/webrtc/close", 1_700_000_000, "alice", b'{"session_id": "s1"}')
    now = 1_700_000_001
    assert verify(SECRET, header, "POST", "/webrtc/close", now, "alice", b'{"session_id": "s1"}') == "gw1"
    assert verify(SECRET, header, "POST", "/webrtc/close", now, "bob", b'{"session_id": "s1"}') is None
    assert verify(SECRET, header, "POST", "/webrtc/close", now, "alice", b'{"session_id": "s2"}') is None
    assert verify(SECRET, header, "POST", "/webrtc/close", now) is None  # no user: not the same request
    # fields cannot be shifted into one another (length-prefixed)
    shifted = sign(SECRET, "gw1", "POST", "/webrtc/close", 1_700_000_000, "alic", b"")
    assert verify(SECRET, shifted, "POST", "/webrtc/close", now, "alice", b"") is None
