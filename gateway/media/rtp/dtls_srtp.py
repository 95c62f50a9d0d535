"""DTLS-SRTP on the SIP leg (RFC 5763, RFC 5764): one DTLS association per RTP socket, keys for SRTP.

How it works: ``DtlsSrtp`` is sans-I/O. OpenSSL (pyOpenSSL) runs the handshake over memory BIOs:
datagrams go in through ``receive(data, now)``, the datagrams to send come back as a list, and
``deadline`` says when ``expire(now)`` must run for OpenSSL's retransmission timer (RFC 6347 §4.2.4).
The role comes from the SDP (a=setup, RFC 5763 §5): ``active`` is the DTLS client, ``passive`` the
server. The peer's certificate is checked against its a=fingerprint during the handshake (RFC 5763 §5:
a mismatch aborts it with a bad_certificate alert). Once connected, the SRTP keys are exported
("EXTRACTOR-dtls_srtp", RFC 5764 §4.2) for the negotiated profile (SRTP_AES128_CM_SHA1_80 or _32) into
two pylibsrtp sessions: the same protect/unprotect interface and ``sessions`` as ``srtp.SdesSrtp``.

States: NEW -> CONNECTING -> CONNECTED -> CLOSED, or FAILED (handshake error, fingerprint mismatch, no
SRTP profile, no handshake in time). ``TABLE`` maps (state, event) to a handler; a pair not in it
raises ``DtlsError`` naming both. ``DtlsCertificates`` holds the gateway's certificate (one per process,
renewed before it expires).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import pylibsrtp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL, crypto

import sdp
from gateway.media.errors import MediaError
from sipcore.tables import transition_table

logger = logging.getLogger(__name__)

CERTIFICATE_DAYS = 30
RENEW_BEFORE = datetime.timedelta(days=1)
MTU = 1200  # bytes of a DTLS datagram: fits any path's MTU with room for IP, UDP and TURN headers
HANDSHAKE_TIMEOUT = 10.0  # seconds from start() to a finished handshake
_DTLS1_2_VERSION: Final = 0xFEFD  # DTLS 1.2 (RFC 6347), what SIP peers speak; OpenSSL's constant
_LABEL: Final = b"EXTRACTOR-dtls_srtp"  # RFC 5764 §4.2
_DIGESTS: Final[dict[str, hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1(),  # RFC 8122 §5 still lets a peer send it
    "sha-224": hashes.SHA224(),
    "sha-256": hashes.SHA256(),
    "sha-384": hashes.SHA384(),
    "sha-512": hashes.SHA512(),
}


class DtlsError(MediaError):
    """A DTLS association used in a state that does not allow it, or keys asked for before the handshake."""


@dataclass(frozen=True, slots=True)
class SrtpProfile:
    """An RFC 5764 §4.1.2 protection profile: OpenSSL's name, libsrtp's, master key and salt lengths."""

    openssl: bytes
    libsrtp: int
    key: int = 16
    salt: int = 14

    def keys(self, material: bytes, index: int) -> bytes:
        """Master key + salt of side ``index`` (0: client, 1: server) from the exported material, which
        is client key | server key | client salt | server salt (RFC 5764 §4.2)."""
        key = material[index * self.key : (index + 1) * self.key]
        start = 2 * self.key + index * self.salt
        return key + material[start : start + self.salt]


PROFILES: Final = (
    SrtpProfile(b"SRTP_AES128_CM_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80),
    SrtpProfile(b"SRTP_AES128_CM_SHA1_32", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32),
)


def fingerprint_of(certificate: x509.Certificate, algorithm: str = "sha-256") -> sdp.Fingerprint:
    """The a=fingerprint of ``certificate`` (RFC 8122 §5: upper-case hex pairs)."""
    digest = certificate.fingerprint(_DIGESTS[algorithm.lower()]).hex().upper()
    return sdp.Fingerprint(algorithm, ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)))


class DtlsCertificate:
    """A self-signed ECDSA P-256 certificate and its key (RFC 5763 §5: self-signed is expected)."""

    def __init__(self, now: datetime.datetime | None = None) -> None:
        now = now or datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, os.urandom(8).hex())])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
            .sign(self.key, hashes.SHA256())
        )
        self.fingerprint = fingerprint_of(self.certificate)

    @property
    def expires(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    def context(self, verify: Callable[[x509.Certificate], bool]) -> SSL.Context:
        """An OpenSSL DTLS 1.2 context with this certificate, use_srtp (RFC 5764 §4.1.1) and a peer
        certificate required and checked by ``verify`` (the SDP fingerprint, not a CA)."""
        context = SSL.Context(SSL.DTLS_METHOD)
        context.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)  # memory BIOs: MTU set below
        context.set_max_proto_version(_DTLS1_2_VERSION)
        context.use_certificate(self.certificate)
        context.use_privatekey(self.key)

        def check(_: SSL.Connection, cert: crypto.X509, _errno: int, depth: int, _ok: int) -> bool:
            return depth > 0 or verify(cert.to_cryptography())

        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, check)
        context.set_tlsext_use_srtp(b":".join(p.openssl for p in PROFILES))
        return context


class DtlsCertificates:
    """The gateway's DTLS certificate, one per process (made by ``gateway.app``): making one costs a key
    generation and a signature, and the fingerprint in the SDP, not the certificate, is what the peer
    checks. ``current()`` makes a new one when the old one has less than a day to live."""

    def __init__(self, clock: Callable[[], datetime.datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._current: DtlsCertificate | None = None

    def current(self) -> DtlsCertificate:
        now = self._clock()
        if self._current is None or self._current.expires - now < RENEW_BEFORE:
            self._current = DtlsCertificate(now)
        return self._current


class DtlsState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class DtlsEvent(enum.Enum):
    START = "start"
    DATAGRAM = "datagram"
    TIMEOUT = "timeout"
    CLOSE = "close"


def is_dtls(data: bytes) -> bool:
    """RFC 7983 §7: a first byte in 20..63 is DTLS (0..3 STUN, 128..191 RTP/RTCP)."""
    return bool(data) and 20 <= data[0] <= 63


class DtlsSrtp:
    """One DTLS-SRTP association. ``client``: we take a=setup:active and send the ClientHello."""

    def __init__(
        self,
        certificate: DtlsCertificate,
        *,
        client: bool,
        remote: Sequence[sdp.Fingerprint],
        call_id: str = "-",
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        if not remote:
            raise DtlsError(f"call={call_id} DTLS needs the peer's a=fingerprint (RFC 8122 §5)")
        self.certificate, self.client, self.remote = certificate, client, tuple(remote)
        self._call = call_id
        self._state = DtlsState.NEW
        self._ssl = SSL.Connection(certificate.context(self._verify))
        self._ssl.set_ciphertext_mtu(MTU)
        self._out: list[bytes] = []
        self._give_up = 0.0
        self._handshake_timeout = handshake_timeout
        self.deadline: float | None = None  # when expire() must run (OpenSSL's retransmission timer)
        self.reason: str | None = None  # why it failed or closed
        self.profile: SrtpProfile | None = None
        self._rx: pylibsrtp.Session | None = None
        self._tx: pylibsrtp.Session | None = None

    def __repr__(self) -> str:
        return f"<DtlsSrtp {'client' if self.client else 'server'} {self._state.value}>"

    @property
    def state(self) -> DtlsState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is DtlsState.CONNECTED

    def _set_state(self, state: DtlsState) -> None:
        logger.info("call=%s DTLS %s -> %s", self._call, self._state.value, state.value)
        self._state = state

    # ------------------------------------------------------------------------------------- events

    def start(self, now: float) -> list[bytes]:
        """Begin the handshake: the client's ClientHello, nothing for the server (it waits for one)."""
        return self._handle(DtlsEvent.START, b"", now)

    def receive(self, data: bytes, now: float) -> list[bytes]:
        """A datagram from the peer (anything but DTLS is ignored); the datagrams to send back."""
        return self._handle(DtlsEvent.DATAGRAM, data, now) if is_dtls(data) else []

    def expire(self, now: float) -> list[bytes]:
        """The timer at ``deadline`` fired: retransmit the last flight, or give up."""
        return self._handle(DtlsEvent.TIMEOUT, b"", now)

    def close(self) -> list[bytes]:
        """End the association (a close_notify alert once connected). Idempotent."""
        return self._handle(DtlsEvent.CLOSE, b"", 0.0)

    def _handle(self, event: DtlsEvent, data: bytes, now: float) -> list[bytes]:
        handler = TABLE.get((self._state, event))
        if handler is None:
            raise DtlsError(f"call={self._call} DTLS event {event.value} in state {self._state.value}")
        handler(self, data, now)
        out, self._out = self._out, []
        return out

    # ----------------------------------------------------------------------------------- handlers

    def _absorb(self, data: bytes, now: float) -> None:
        """A datagram or timer the state has no use for (after failure or close)."""

    def _start(self, data: bytes, now: float) -> None:
        if self.client:
            self._ssl.set_connect_state()
        else:
            self._ssl.set_accept_state()
        self._give_up = now + self._handshake_timeout
        self._set_state(DtlsState.CONNECTING)
        self._handshake(now)

    def _datagram(self, data: bytes, now: float) -> None:
        self._ssl.bio_write(data)
        self._handshake(now)

    def _handshake(self, now: float) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            self._flush(now)
            return
        except SSL.Error as exc:
            self._flush(now)
            self._fail(self.reason or f"handshake failed: {_ssl_reason(exc)}")
            return
        self._connected()
        self._flush(now)

    def _connected(self) -> None:
        selected = self._ssl.get_selected_srtp_profile()
        profile = next((p for p in PROFILES if p.openssl == selected), None)
        if profile is None:
            self._fail(f"no SRTP protection profile agreed (RFC 5764 §4.1.2), peer chose {selected!r}")
            return
        material = self._ssl.export_keying_material(_LABEL, 2 * (profile.key + profile.salt))
        ours, theirs = (0, 1) if self.client else (1, 0)
        self._tx = _session(profile, profile.keys(material, ours), pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self._rx = _session(profile, profile.keys(material, theirs), pylibsrtp.Policy.SSRC_ANY_INBOUND)
        self.profile = profile
        self._set_state(DtlsState.CONNECTED)
        logger.info("call=%s DTLS-SRTP keys for %s", self._call, profile.openssl.decode())

    def _after_handshake(self, data: bytes, now: float) -> None:
        """Connected: the peer's retransmitted last flight (answered by OpenSSL) or its close_notify."""
        self._ssl.bio_write(data)
        try:
            self._ssl.recv(2048)  # no application data is expected on DTLS-SRTP (RFC 5764 §4)
        except SSL.ZeroReturnError:
            self._flush(now)
            self.reason = "the peer closed DTLS (close_notify)"
            self._set_state(DtlsState.CLOSED)
            return
        except SSL.Error:
            pass  # WantRead, or a record OpenSSL dropped
        self._flush(now)

    def _timeout(self, data: bytes, now: float) -> None:
        """OpenSSL keeps its own clock: when it finds its timer not yet due, ``_flush`` re-arms ours."""
        if self._state is DtlsState.CONNECTING and now >= self._give_up:
            self._fail(f"no DTLS handshake within {self._handshake_timeout:g} s")
            return
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(f"handshake failed: {_ssl_reason(exc)}")
            return
        self._flush(now)

    def _close(self, data: bytes, now: float) -> None:
        if self._state is DtlsState.CONNECTED:
            with contextlib.suppress(SSL.Error):
                self._ssl.shutdown()
            self._flush(None)
        self.reason = self.reason or "closed"
        self.deadline = None
        self._set_state(DtlsState.CLOSED)

    # ------------------------------------------------------------------------------------ helpers

    def _verify(self, certificate: x509.Certificate) -> bool:
        """RFC 5763 §5 / RFC 8122 §5: every fingerprint of a hash function we know must match."""
        known = [f for f in self.remote if f.algorithm.lower() in _DIGESTS]
        if not known:
            names = ", ".join(f.algorithm for f in self.remote)
            self.reason = f"no a=fingerprint with a hash function we know (offered {names})"
            return False
        for expected in known:
            actual = fingerprint_of(certificate, expected.algorithm)
            if actual.value.upper() != expected.value.upper():
                self.reason = (
                    f"the peer's certificate does not match its a=fingerprint ({expected.algorithm} "
                    f"{actual.value}, SDP says {expected.value})"
                )
                return False
        return True

    def _fail(self, reason: str) -> None:
        self.reason = reason
        self.deadline = None
        logger.warning("call=%s DTLS failed: %s", self._call, reason)
        self._set_state(DtlsState.FAILED)

    def _flush(self, now: float | None) -> None:
        """Move what OpenSSL wrote to the memory BIO into ``_out`` (one DTLS flight record per read),
        and re-read its retransmission timer."""
        while True:
            try:
                data = self._ssl.bio_read(65536)
            except SSL.WantReadError:
                break
            if not data:
                break
            self._out.append(data)
        if now is None:
            return
        timeout = self._ssl.DTLSv1_get_timeout()
        self.deadline = now + timeout if timeout is not None else None
        if self._state is DtlsState.CONNECTING and self.deadline is None:
            self.deadline = self._give_up
        elif self._state is DtlsState.CONNECTING and self.deadline is not None:
            self.deadline = min(self.deadline, self._give_up)

    # --------------------------------------------------------------------- SRTP (as srtp.SdesSrtp)

    @property
    def sessions(self) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
        """The (rx, tx) libsrtp sessions, once connected (for the fast lane)."""
        if self._rx is None or self._tx is None or self._state is not DtlsState.CONNECTED:
            raise DtlsError(f"call={self._call} no SRTP keys in DTLS state {self._state.value}")
        return self._rx, self._tx

    def protect(self, packet: bytes) -> bytes:
        return bytes(self.sessions[1].protect(packet))

    def protect_rtcp(self, packet: bytes) -> bytes:
        return bytes(self.sessions[1].protect_rtcp(packet))

    def unprotect(self, packet: bytes) -> bytes:
        return bytes(self.sessions[0].unprotect(packet))

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        return bytes(self.sessions[0].unprotect_rtcp(packet))


def _session(profile: SrtpProfile, key: bytes, ssrc_type: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=profile.libsrtp)
    policy.allow_repeat_tx = False  # never two packets under one index (RFC 3711 §9.1): see srtp.py
    policy.window_size = 1024
    return pylibsrtp.Session(policy=policy)


def _ssl_reason(exc: SSL.Error) -> str:
    """OpenSSL's reasons (``[(lib, func, reason), ...]``) or the exception itself."""
    first = exc.args[0] if exc.args else None
    if isinstance(first, list):
        reasons = [str(part[-1]) for part in first if isinstance(part, tuple) and part]
        if reasons:
            return ", ".join(reasons)
    return str(exc) or type(exc).__name__


_Handler = Callable[[DtlsSrtp, bytes, float], None]
TABLE: Final[dict[tuple[DtlsState, DtlsEvent], _Handler]] = transition_table(
    DtlsState,
    DtlsEvent,
    ("NEW", "START", DtlsSrtp._start),
    ("NEW", "DATAGRAM,TIMEOUT", DtlsSrtp._absorb),  # nothing is read before start()
    ("NEW,CONNECTING,CONNECTED", "CLOSE", DtlsSrtp._close),
    ("CONNECTING", "DATAGRAM", DtlsSrtp._datagram),
    ("CONNECTING,CONNECTED", "TIMEOUT", DtlsSrtp._timeout),
    ("CONNECTED", "DATAGRAM", DtlsSrtp._after_handshake),
    ("FAILED,CLOSED", "DATAGRAM,TIMEOUT,CLOSE", DtlsSrtp._absorb),
)

__all__ = [
    "PROFILES",
    "DtlsCertificate",
    "DtlsCertificates",
    "DtlsError",
    "DtlsEvent",
    "DtlsSrtp",
    "DtlsState",
    "SrtpProfile",
    "fingerprint_of",
    "is_dtls",
]
