"""DTLS-SRTP on the SIP leg (gateway/media/rtp/dtls_srtp.py, ice_lite.py): two instances of our own
association talk to each other in memory, no network; the clock is a number the test moves."""

from __future__ import annotations

import logging
import os
import struct
import time

import pytest
from aioice import stun

import sdp
from gateway.media.rtp import dtls_srtp, ice_lite
from gateway.media.rtp.dtls_srtp import (
    TABLE,
    DtlsCertificate,
    DtlsCertificates,
    DtlsError,
    DtlsEvent,
    DtlsSrtp,
    DtlsState,
)
from gateway.media.rtp.srtp import SrtpError

CLIENT_CERT = DtlsCertificate()
SERVER_CERT = DtlsCertificate()


def pair(
    client_sees: sdp.Fingerprint = SERVER_CERT.fingerprint,
    server_sees: sdp.Fingerprint = CLIENT_CERT.fingerprint,
) -> tuple[DtlsSrtp, DtlsSrtp]:
    client = DtlsSrtp(CLIENT_CERT, client=True, remote=[client_sees], call_id="client")
    server = DtlsSrtp(SERVER_CERT, client=False, remote=[server_sees], call_id="server")
    return client, server


def run(client: DtlsSrtp, server: DtlsSrtp, now: float = 0.0, *, noise: list[bytes] | None = None) -> int:
    """Deliver datagrams both ways until neither side has more; ``noise`` goes to each side first.
    Returns how many datagrams were delivered."""
    queue = [(server, d) for d in client.start(now)] + [(client, d) for d in server.start(now)]
    delivered = 0
    while queue:
        target, data = queue.pop(0)
        other = server if target is client else client
        for junk in noise or ():
            assert target.receive(junk, now) == []
        queue += [(other, d) for d in target.receive(data, now)]
        delivered += 1
    return delivered


def rtp(sequence: int, payload: bytes = b"\x55" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, sequence, 160 * sequence, 0x1234) + payload


def test_a_handshake_gives_both_sides_the_same_keys() -> None:
    client, server = pair()
    run(client, server)
    assert client.state is DtlsState.CONNECTED and server.state is DtlsState.CONNECTED
    assert client.profile is not None and client.profile.openssl == b"SRTP_AES128_CM_SHA1_80"
    assert client.deadline is None and server.deadline is None
    for sequence in range(3):
        assert server.unprotect(client.protect(rtp(sequence))) == rtp(sequence)
        assert client.unprotect(server.protect(rtp(sequence))) == rtp(sequence)
    report = bytes([0x80, 201, 0, 1]) + struct.pack("!I", 0x1234)  # an empty RR
    assert client.unprotect_rtcp(server.protect_rtcp(report)) == report
    rx, tx = client.sessions
    assert rx is not tx


def test_an_index_used_already_is_refused_not_encrypted_again() -> None:
    """RFC 3711 §9.1: two packets under one index share a keystream (and with GCM a nonce). A late packet
    whose number was never sent still goes."""
    client, server = pair()
    run(client, server)
    first = client.protect(rtp(10, b"A" * 160))
    client.protect(rtp(11))
    with pytest.raises(SrtpError, match="replay"):
        client.protect(rtp(10, b"B" * 160))
    assert server.unprotect(client.protect(rtp(9))) == rtp(9)
    assert server.unprotect(first) == rtp(10, b"A" * 160)


def test_the_32_bit_tag_profile_is_taken_when_the_peer_offers_only_that(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = DtlsSrtp(CLIENT_CERT, client=True, remote=[SERVER_CERT.fingerprint])
    monkeypatch.setattr(dtls_srtp, "PROFILES", dtls_srtp.PROFILES[1:])
    server = DtlsSrtp(SERVER_CERT, client=False, remote=[CLIENT_CERT.fingerprint])
    run(client, server)
    assert client.profile == server.profile == dtls_srtp.PROFILES[0]
    packet = client.protect(rtp(1))
    assert len(packet) == len(rtp(1)) + 4  # a 32-bit tag (RFC 5764 §4.1.2)
    assert server.unprotect(packet) == rtp(1)


def test_no_media_before_the_handshake() -> None:
    client, _ = pair()
    with pytest.raises(DtlsError, match="no SRTP keys in DTLS state new"):
        client.protect(rtp(1))
    with pytest.raises(DtlsError):
        _ = client.sessions


def test_a_certificate_that_does_not_match_the_fingerprint_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = DtlsCertificate().fingerprint
    client, server = pair(client_sees=wrong)
    run(client, server)
    assert client.state is DtlsState.FAILED
    assert client.reason is not None and "does not match its a=fingerprint" in client.reason
    assert wrong.value in client.reason
    assert server.state is DtlsState.FAILED  # told by the bad_certificate alert
    with pytest.raises(DtlsError):
        client.protect(rtp(1))


def test_the_server_refuses_a_client_whose_certificate_is_not_the_one_in_the_sdp() -> None:
    client, server = pair(server_sees=DtlsCertificate().fingerprint)
    run(client, server)
    assert server.state is DtlsState.FAILED and "does not match" in (server.reason or "")
    assert client.state is not DtlsState.CONNECTED or server.state is DtlsState.FAILED


def test_a_fingerprint_with_an_unknown_hash_only_is_refused() -> None:
    unknown = sdp.Fingerprint("md5", ":".join(["AB"] * 16))
    client, server = pair(client_sees=unknown)
    run(client, server)
    assert client.state is DtlsState.FAILED and "hash function we know" in (client.reason or "")


def test_garbage_datagrams_are_ignored_and_the_handshake_completes() -> None:
    noise = [
        b"",
        b"\x16",  # a lone handshake content type
        b"\x16\xfe\xfd" + os.urandom(60),  # DTLS 1.2 header, random rest
        bytes([23]) + os.urandom(40),  # "application data" nobody keyed
        rtp(7),  # RTP is not DTLS (RFC 7983): not fed to OpenSSL at all
        b"\x00\x01\x00\x00" + os.urandom(16),  # STUN-like
    ]
    client, server = pair()
    run(client, server, noise=noise)
    assert client.connected and server.connected
    assert server.unprotect(client.protect(rtp(1))) == rtp(1)


def test_a_lost_flight_is_sent_again_when_the_timer_fires() -> None:
    client, server = pair()
    start = time.monotonic()  # OpenSSL's retransmission timer runs on its own (real) clock
    lost = client.start(start)  # the ClientHello never arrives
    assert lost and server.start(start) == []
    assert client.deadline is not None and 0 < client.deadline - start <= 10
    assert client.expire(start) == [] and client.deadline is not None  # not due yet: re-armed
    time.sleep(max(0.0, client.deadline - time.monotonic()) + 0.05)
    again = client.expire(time.monotonic())
    assert again, "the ClientHello is sent again"
    queue = [(server, d) for d in again]
    while queue:
        target, data = queue.pop(0)
        other = server if target is client else client
        queue += [(other, d) for d in target.receive(data, time.monotonic())]
    assert client.connected and server.connected


def test_a_silent_peer_fails_the_handshake_after_the_timeout() -> None:
    client = DtlsSrtp(CLIENT_CERT, client=True, remote=[SERVER_CERT.fingerprint], handshake_timeout=3)
    client.start(0.0)
    now = 0.0
    while client.state is DtlsState.CONNECTING:
        assert client.deadline is not None and client.deadline <= 3.0
        now = client.deadline
        client.expire(now)
    assert client.state is DtlsState.FAILED and client.reason == "no DTLS handshake within 3 s"
    assert now == 3.0


def test_close_notify_closes_the_peer_and_close_is_idempotent() -> None:
    client, server = pair()
    run(client, server)
    alerts = client.close()
    assert alerts and client.state is DtlsState.CLOSED
    assert client.close() == []
    for alert in alerts:
        server.receive(alert, 1.0)
    assert server.state is DtlsState.CLOSED and "close_notify" in (server.reason or "")


def test_the_state_change_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.media.rtp.dtls_srtp")
    client, server = pair()
    run(client, server)
    messages = [r.getMessage() for r in caplog.records]
    assert "call=client DTLS new -> connecting" in messages
    assert "call=client DTLS connecting -> connected" in messages


@pytest.mark.parametrize("state", list(DtlsState))
@pytest.mark.parametrize("event", list(DtlsEvent))
def test_every_state_and_event_pair_is_handled_or_refused_by_name(state: DtlsState, event: DtlsEvent) -> None:
    association = DtlsSrtp(CLIENT_CERT, client=True, remote=[SERVER_CERT.fingerprint], call_id="walk")
    association._state = state
    datagram = b"\x16\xfe\xfd" + bytes(20)
    act = {
        DtlsEvent.START: lambda: association.start(0.0),
        DtlsEvent.DATAGRAM: lambda: association.receive(datagram, 0.0),
        DtlsEvent.TIMEOUT: lambda: association.expire(0.0),
        DtlsEvent.CLOSE: association.close,
    }[event]
    if (state, event) in TABLE:
        act()
    else:
        with pytest.raises(DtlsError, match=f"DTLS event {event.value} in state {state.value}"):
            act()
        assert association.state is state


def test_the_process_certificate_is_kept_and_renewed_before_it_expires() -> None:
    import datetime

    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    certificates = DtlsCertificates(clock=lambda: now)
    first = certificates.current()
    assert certificates.current() is first
    assert first.fingerprint.algorithm == "sha-256" and len(first.fingerprint.value.split(":")) == 32
    now += datetime.timedelta(days=dtls_srtp.CERTIFICATE_DAYS - 0.5)
    assert certificates.current() is not first


def test_a_peer_without_fingerprints_is_an_error() -> None:
    with pytest.raises(DtlsError, match="a=fingerprint"):
        DtlsSrtp(CLIENT_CERT, client=True, remote=[])


# ------------------------------------------------------------------------------------------ ICE-lite

LOCAL = ice_lite.new_parameters()
REMOTE = sdp.IceParameters("peer", "peerpasswordpeerpassword")


def check(username: str, pwd: str, *, nominate: bool = False, controlled: bool = False) -> stun.Message:
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLED" if controlled else "ICE-CONTROLLING"] = 42
    if nominate:
        request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(pwd.encode())
    return request


def test_ice_lite_answers_a_check_with_our_credentials_and_follows_the_nomination() -> None:
    responder = ice_lite.IceLiteResponder(LOCAL, REMOTE)
    request = check(f"{LOCAL.ufrag}:{REMOTE.ufrag}", LOCAL.pwd)
    assert ice_lite.is_stun(bytes(request))
    data = responder.handle(bytes(request), ("127.0.0.1", 40000))
    assert data is not None
    response = stun.parse_message(data)
    assert response.message_class == stun.Class.RESPONSE
    assert response.transaction_id == request.transaction_id
    assert response.attributes["XOR-MAPPED-ADDRESS"] == ("127.0.0.1", 40000)
    assert response.check_message_integrity(LOCAL.pwd.encode())
    assert responder.nominated is None
    responder.handle(
        bytes(check(f"{LOCAL.ufrag}:{REMOTE.ufrag}", LOCAL.pwd, nominate=True)), ("127.0.0.1", 40002)
    )
    assert responder.nominated == ("127.0.0.1", 40002)


@pytest.mark.parametrize(
    ("username", "pwd", "controlled", "code"),
    [
        ("someoneelse:peer", LOCAL.pwd, False, 401),
        (f"{LOCAL.ufrag}:peer", "wrongpasswordwrongpasswo", False, 401),
        (f"{LOCAL.ufrag}:peer", LOCAL.pwd, True, 487),  # both controlled: a role conflict
    ],
    ids=["foreign-ufrag", "wrong-password", "role-conflict"],  # LOCAL is random: the same ids in every worker
)
def test_ice_lite_refuses_checks_it_cannot_take(username: str, pwd: str, controlled: bool, code: int) -> None:
    responder = ice_lite.IceLiteResponder(LOCAL, REMOTE)
    data = responder.handle(bytes(check(username, pwd, controlled=controlled)), ("127.0.0.1", 40000))
    assert data is not None and stun.parse_message(data).error_code == code
    assert responder.checks == 0


def test_ice_lite_drops_what_is_not_a_binding_request() -> None:
    responder = ice_lite.IceLiteResponder(LOCAL, REMOTE)
    indication = stun.Message(stun.Method.BINDING, stun.Class.INDICATION)
    assert responder.handle(bytes(indication), ("127.0.0.1", 1)) is None
    assert responder.handle(b"\x00\x01\x00\x04" + bytes(16), ("127.0.0.1", 1)) is None
    assert not ice_lite.is_stun(rtp(1))
