"""The signatures on cluster records (gateway/cluster/signing.py): bound to their purpose, their context
and the secret; a bad record is ignored and logged once per key."""

from __future__ import annotations

import logging

import pytest

from gateway.cluster.signing import INSTANCE, OWNER, REVOCATION, RecordSigner

SECRET = b"unit-cluster-secret-0123"


def test_a_sealed_value_opens_only_in_its_context() -> None:
    signer = RecordSigner(SECRET)
    sealed = signer.seal(OWNER, "gw1", "session-1")
    assert sealed.startswith("gw1;")
    assert signer.unseal(OWNER, sealed, "k", "an owner", "session-1") == "gw1"
    assert signer.unseal(OWNER, sealed, "k", "an owner", "session-2") is None  # copied to another session
    assert signer.unseal(REVOCATION, sealed, "k", "an owner", "session-1") is None  # another purpose
    assert RecordSigner(b"another-secret-0123456").unseal(OWNER, sealed, "k", "x", "session-1") is None
    assert signer.unseal(OWNER, sealed.replace("gw1", "gw2", 1), "k", "x", "session-1") is None
    for bad in ("gw1", "gw1;", ";", "", "gw1;" + "0" * 64, "gw1;\udcff"):
        assert signer.unseal(OWNER, bad, "k", "x", "session-1") is None
    assert signer.unseal(OWNER, None, "k", "x", "session-1") is None  # absent: not a rejection


def test_instance_signatures_cover_every_field() -> None:
    signer = RecordSigner(SECRET)
    mac = signer.sign(INSTANCE, "gw1", "10.0.0.1:5060", "http://10.0.0.1:8080", "0")
    assert signer.valid(INSTANCE, mac, "gw1", "10.0.0.1:5060", "http://10.0.0.1:8080", "0")
    assert not signer.valid(INSTANCE, mac, "gw1", "10.0.0.1:5060", "http://evil:8080", "0")
    assert not signer.valid(INSTANCE, mac, "gw1", "10.0.0.1:5060", "http://10.0.0.1:8080", "1")
    assert not signer.valid(INSTANCE, mac, "gw2", "10.0.0.1:5060", "http://10.0.0.1:8080", "0")
    assert not signer.valid(INSTANCE, None, "gw1", "10.0.0.1:5060", "http://10.0.0.1:8080", "0")


def test_a_bad_record_is_logged_once_per_key(caplog: pytest.LogCaptureFixture) -> None:
    signer = RecordSigner(SECRET)
    with caplog.at_level(logging.WARNING, logger="gateway.cluster.signing"):
        for _ in range(3):
            assert signer.unseal(OWNER, "evil", "gw:http:s1", "a session owner", "s1") is None
        signer.reject("an instance record", "gw:instance:evil")
    assert signer.rejected == 4
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "gw:http:s1" in messages[0] and "signature is missing or wrong" in messages[0]
