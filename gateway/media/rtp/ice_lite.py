"""ICE-lite on the SIP leg's RTP socket (RFC 8445 §2.5, §7.3): answer the peer's connectivity checks.

A SIP peer that offers ICE with DTLS-SRTP (baresip with ``mnat ice``, Asterisk with ``ice_support``)
gets an ICE-lite answer: ``a=ice-lite``, our credentials and one host candidate, the RTP socket's own
address. A lite agent sends no checks of its own; it answers each Binding request that carries our
username fragment and a MESSAGE-INTEGRITY made with our password (RFC 8445 §7.3.1, RFC 8489 §9.2) with a
success response holding the source as XOR-MAPPED-ADDRESS. The controlling peer nominates a pair with
USE-CANDIDATE; ``nominated`` is the source of that pair, where media and DTLS go from then on.
Sans-I/O: bytes and an address in, the bytes to send back out. Uses aioice's public ``stun`` module.
"""

from __future__ import annotations

import logging
import secrets
import string

from aioice import stun

import sdp

logger = logging.getLogger(__name__)

Address = tuple[str, int]
_ICE_CHARS = string.ascii_letters + string.digits
HOST_PRIORITY = (126 << 24) | (65535 << 8) | 255  # RFC 8445 §5.1.2.1: host, one address, component 1


def is_stun(data: bytes) -> bool:
    """RFC 7983 §7: a first byte in 0..3 is STUN; RFC 8489 §6 puts the magic cookie at bytes 4..7."""
    return len(data) >= 20 and data[0] < 4 and data[4:8] == b"\x21\x12\xa4\x42"


def new_parameters() -> sdp.IceParameters:
    """Fresh credentials: a 8-char ufrag and a 24-char password (RFC 8445 §5.3: 24 bits and 128 bits)."""
    return sdp.IceParameters(
        "".join(secrets.choice(_ICE_CHARS) for _ in range(8)),
        "".join(secrets.choice(_ICE_CHARS) for _ in range(24)),
        lite=True,
    )


def host_candidate(address: str, port: int, component: int = 1) -> sdp.Candidate:
    """A host candidate of ours: the RTP socket (component 1) or the RTCP one (2) when not muxed
    (RFC 8445 §5.1.2.1: the priority's last byte is 256 - component)."""
    priority = HOST_PRIORITY - (component - 1)
    return sdp.Candidate.parse(f"candidate:1 {component} udp {priority} {address} {port} typ host")


class IceLiteResponder:
    """Answers connectivity checks for credentials ``local``; ``remote`` is the peer's (its ufrag
    ends the USERNAME, RFC 8445 §7.2.2)."""

    def __init__(self, local: sdp.IceParameters, remote: sdp.IceParameters, *, call_id: str = "-") -> None:
        self.local, self.remote = local, remote
        self._call = call_id
        self._key = local.pwd.encode()
        self.nominated: Address | None = None
        self.checks = 0

    def handle(self, data: bytes, source: Address) -> bytes | None:
        """The response to a STUN datagram from ``source``, or None (not a check for us: dropped)."""
        try:
            message = stun.parse_message(data)
        except ValueError as exc:
            logger.debug("call=%s dropping malformed STUN from %s: %s", self._call, source, exc)
            return None
        if message.message_method != stun.Method.BINDING or message.message_class != stun.Class.REQUEST:
            return None  # a lite agent sends no requests, so no responses are expected either
        username = message.attributes.get("USERNAME", "")
        if username.split(":")[0] != self.local.ufrag or not message.check_message_integrity(self._key):
            logger.debug(
                "call=%s STUN check from %s with wrong credentials (%r)", self._call, source, username
            )
            return self._error(message, 401, "Unauthorized")  # RFC 8489 §9.2.4
        if "ICE-CONTROLLED" in message.attributes and not self.remote.lite:
            return self._error(message, 487, "Role Conflict")  # RFC 8445 §7.3.1.1: a lite agent is controlled
        self.checks += 1
        if "USE-CANDIDATE" in message.attributes and self.nominated != source:
            logger.info("call=%s ICE pair nominated: %s:%d", self._call, *source)
            self.nominated = source
        response = stun.Message(
            stun.Method.BINDING,
            stun.Class.RESPONSE,
            transaction_id=message.transaction_id,
            attributes={"XOR-MAPPED-ADDRESS": source},
        )
        response.add_message_integrity(self._key)
        return bytes(response)

    def _error(self, request: stun.Message, code: int, reason: str) -> bytes:
        response = stun.Message(
            stun.Method.BINDING,
            stun.Class.ERROR,
            transaction_id=request.transaction_id,
            attributes={"ERROR-CODE": (code, reason)},
        )
        response.add_fingerprint()
        return bytes(response)
