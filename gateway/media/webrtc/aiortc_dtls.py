"""Freeing a connected web leg's OpenSSL connection (issue 14 goal 4): aiortc 1.16's ``RTCDtlsTransport``.

Once DTLS-SRTP is set up (RFC 5764 §4.2: the SRTP keys are exported), a web leg without a data channel
never needs its ``SSL*`` again for media: SRTP and SRTCP go through libsrtp sessions (aiortc's, or the
fast lane's). Yet OpenSSL keeps ~90 KiB per DTLS connection after the handshake (record buffers, the
handshake's buffered flight, the peer's certificate): a third of a pass-through call's RSS.
``release_when_done(dtls, media_count)`` swaps aiortc's ``RTCDtlsTransport._ssl`` (a pyOpenSSL
``Connection``) for ``ReleasedSsl``, a stand-in of the few methods aiortc still calls, once no peer can
need an answer from it any more (DTLS 1.2, RFC 6347 §4.2.4):

* we are the client: our handshake completed on the server's Finished, the last flight; nothing the
  server sends later needs a handshake reply from us;
* we are the server: our ChangeCipherSpec + Finished were the last flight; a client that lost it
  retransmits its own last flight and needs ours again (§4.2.4), so the connection stays until the
  browser's SRTP arrives (``media_count()`` > 0: it has its keys, its handshake is done), checked every
  ``RECHECK`` seconds;
* never while a data channel (SCTP over DTLS, RFC 8261) is registered, never for another protocol version
  (DTLS 1.3's client sends the last flight and ACKs follow, RFC 9147 §5.8), never with a timer pending.

After the release: a record of content type alert (21, in clear in the DTLS 1.2 record header, RFC 6347
§4.1) is the browser's close_notify or a fatal alert: aiortc's reader sees ``ZeroReturnError`` and closes
the transport as before ("the browser closed DTLS"); other DTLS records are dropped. At hangup no
close_notify goes out (it cannot be encrypted any more; RFC 5246 §7.2.1 lets a peer close without one:
the browser learns of the hangup by signaling, and ICE consent ends the rest).

``tests/media/webrtc/test_aiortc_dtls.py`` fails if aiortc's transport changes what this relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from OpenSSL import SSL

from gateway.media import coarse_timers

logger = logging.getLogger(__name__)

FIRST_CHECK = 1.0  # seconds after DTLS connected: stray retransmissions of the last flight land first
RECHECK = 5.0  # the server's wait for the browser's first SRTP
_ALERT = 21  # TLS ContentType alert (RFC 5246 §6.2.1)


class ReleasedSsl:
    """What aiortc's DTLS transport calls on ``_ssl`` once connected, without an OpenSSL connection."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False  # an alert came: the peer closed DTLS

    def bio_write(self, data: bytes) -> int:
        if data[:1] == bytes((_ALERT,)):
            self.closed = True
        return len(data)

    def recv(self, bufsiz: int) -> bytes:
        if self.closed:
            raise SSL.ZeroReturnError()
        raise SSL.WantReadError()

    def bio_read(self, bufsiz: int) -> bytes:
        raise SSL.WantReadError()

    def shutdown(self) -> bool:
        return False  # no close_notify: nothing left to encrypt it with (module note)

    def send(self, data: bytes) -> int:
        raise SSL.Error("the DTLS connection was released after the handshake")

    def DTLSv1_get_timeout(self) -> float | None:  # pyOpenSSL's name
        return None

    def DTLSv1_handle_timeout(self) -> bool:  # pyOpenSSL's name
        return False


def releasable(dtls: RTCDtlsTransport, media_count: Callable[[], int]) -> bool:
    """Whether ``dtls``'s OpenSSL connection can go now (module note)."""
    ssl = dtls._ssl
    if not isinstance(ssl, SSL.Connection) or dtls._state is not State.CONNECTED:
        return False
    if dtls._data_receiver is not None or dtls._rx_srtp is None:
        return False
    if ssl.get_protocol_version_name() != "DTLSv1.2" or ssl.DTLSv1_get_timeout() is not None:
        return False
    return dtls._role == "client" or media_count() > 0


def release(dtls: RTCDtlsTransport) -> None:
    """Swap the transport's OpenSSL connection for ``ReleasedSsl`` (freed with its last reference)."""
    dtls._ssl = ReleasedSsl()  # type: ignore[assignment]


def release_when_done(dtls: RTCDtlsTransport, media_count: Callable[[], int], *, call_id: str = "-") -> None:
    """Release ``dtls``'s OpenSSL connection as soon as ``releasable`` (checked on the coarse timers, first
    ``FIRST_CHECK`` s from now, then every ``RECHECK`` s while the transport is connected)."""

    def check() -> None:
        if dtls._state is not State.CONNECTED or not isinstance(dtls._ssl, SSL.Connection):
            return
        if releasable(dtls, media_count):
            release(dtls)
            logger.debug("call=%s DTLS connection released after the handshake (%s)", call_id, dtls._role)
        elif dtls._data_receiver is None and dtls._ssl.get_protocol_version_name() == "DTLSv1.2":
            coarse_timers.coarse_timers().call_later(RECHECK, check)

    coarse_timers.coarse_timers().call_later(FIRST_CHECK, check)
