"""Every use of pylibsrtp's, PyAV's and asyncio's private internals, in one place (pylibsrtp 1.0,
av 18, CPython's selector event loops). ``tests/media/test_native_hooks.py`` fails when an upgrade
changes any of them; pyproject pins pylibsrtp and av to the versions checked.

The native fast lane (``gateway.media.fastlane``) needs, below the public APIs:

* ``srtp_functions()``, ``srtp_session_pointer(session)``: the addresses of libsrtp's
  ``srtp_protect``/``srtp_unprotect`` (and the RTCP pair) in the libsrtp that pylibsrtp bundles, and
  the ``srtp_t`` a ``pylibsrtp.Session`` keeps in ``_srtp``: the engine thread protects and unprotects
  with aiortc's own sessions (libsrtp 2's ``srtp_protect(srtp_t, void *, int *)``).
* ``opus_library_candidates()``: libopus files to load for the engine's transcoding: the copy PyAV
  bundles (``av.libs`` beside the ``av`` package, where auditwheel puts it), else the system's.
* ``SocketHandover``: the engine reads a call's two UDP sockets itself; asyncio must stop reading them
  meanwhile (``_remove_reader`` of the selector loop) and resume with the transport's own callback
  (``_selector_transport._read_ready``) afterwards. uvloop has neither: the fast lane is not used.

The transcoder needs one more:

* ``frame_encoder(context)``: PyAV's ``_send_frame_and_recv`` encodes a frame that already has the
  encoder's frame size without the re-chunking audio graph of ``encode()`` (falls back to ``encode``).
"""

from __future__ import annotations

import asyncio
import ctypes.util
import glob
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import av
import pylibsrtp
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

__all__ = [
    "FrameEncoder",
    "SocketHandover",
    "frame_encoder",
    "opus_library_candidates",
    "srtp_functions",
    "srtp_session_pointer",
]

SRTP_FUNCTION_NAMES = ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp", "srtp_unprotect_rtcp")


def _binding() -> tuple[Any, Any]:
    from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]  # the libsrtp of aiortc's sessions

    return ffi, lib


def srtp_functions() -> tuple[int, int, int, int]:
    """Addresses of libsrtp's protect/unprotect functions (RTP, then RTCP) in pylibsrtp's library."""
    ffi, lib = _binding()
    a, b, c, d = (int(ffi.cast("uintptr_t", ffi.addressof(lib, name))) for name in SRTP_FUNCTION_NAMES)
    return a, b, c, d


def srtp_session_pointer(session: pylibsrtp.Session) -> int:
    """The ``srtp_t`` of a pylibsrtp session (it stays owned by the session object)."""
    ffi, _ = _binding()
    return int(ffi.cast("uintptr_t", session._srtp[0]))


def opus_library_candidates() -> list[str]:
    """Paths of libopus to try, best first: PyAV's bundled copy, then the system's (if any)."""
    bundled = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
    candidates = sorted(glob.glob(os.path.join(bundled, "libopus*.so*")))
    system = ctypes.util.find_library("opus")
    return candidates + ([system] if system else [])


FrameEncoder = Callable[[AudioFrame], Iterable[Any]]  # a frame -> its packets (av.Packet)


def frame_encoder(context: AudioCodecContext) -> FrameEncoder:
    """Encode one frame that already has the encoder's frame size, skipping PyAV's re-chunking graph."""
    direct = getattr(context, "_send_frame_and_recv", None)  # PyAV's encode() minus that graph
    return cast(FrameEncoder, direct or context.encode)


class SocketHandover:
    """Take the reading of datagram transports' sockets away from the event loop, and give it back.

    ``ValueError`` at construction when a transport is not a plain UDP socket of a selector loop (a
    TURN relay, uvloop): the engine would see framing it does not know, or asyncio would keep reading.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, transports: Sequence[asyncio.DatagramTransport]
    ) -> None:
        self._loop: Any = loop
        self._transports = tuple(transports)
        self.fds: list[int] = []
        for transport in self._transports:
            sock = transport.get_extra_info("socket")
            if sock is None or not hasattr(transport, "_read_ready"):
                raise ValueError("not a plain UDP socket (a TURN relay?)")
            self.fds.append(sock.fileno())
        if not all(hasattr(self._loop, name) for name in ("_add_reader", "_remove_reader")):
            raise ValueError(f"not a selector event loop: {type(loop).__name__}")

    def take(self) -> None:
        """asyncio stops reading the sockets (the engine thread reads them; never two readers at once)."""
        for fd in self.fds:
            self._loop._remove_reader(fd)

    def give_back(self) -> None:
        """asyncio reads the sockets again, with each transport's own callback."""
        for transport, fd in zip(self._transports, self.fds, strict=True):
            if not transport.is_closing() and not self._loop.is_closed():
                self._loop._add_reader(fd, getattr(transport, "_read_ready"))  # noqa: B009
