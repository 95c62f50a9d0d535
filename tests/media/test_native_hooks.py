"""Guards of gateway/media/native_hooks.py: the pylibsrtp, PyAV and asyncio internals the fast lane
and the transcoder use. Each test fails when an upgrade changes what the hook relies on."""

from __future__ import annotations

import asyncio
import ctypes
import fractions
import inspect
import socket

import av
import pylibsrtp
import pytest

from gateway.media import native_hooks
from gateway.media.fastlane.native import OPUS_FUNCTIONS
from peers.audio import sine


def test_srtp_functions_and_session_pointer() -> None:
    # pylibsrtp keeps the srtp_t in _srtp, and libsrtp's functions have the signature _fastlane.c calls
    # them with: int (*)(srtp_t, void *packet, int *length)
    assert "self._srtp = ffi.gc(srtp," in inspect.getsource(pylibsrtp.Session.__init__)
    from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]

    for name in native_hooks.SRTP_FUNCTION_NAMES:
        ctype = ffi.typeof(ffi.addressof(lib, name))
        assert [ffi.getctype(a) for a in ctype.args] == ["struct srtp_ctx_t_ *", "void *", "int *"], name
        assert ctype.result.kind in ("primitive", "enum"), name
    addresses = native_hooks.srtp_functions()
    assert len(set(addresses)) == 4 and all(addresses)
    key = bytes(range(30))
    session = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    pointer = native_hooks.srtp_session_pointer(session)
    assert pointer and pointer == int(ffi.cast("uintptr_t", session._srtp[0]))


def test_opus_library_candidates_has_libopus() -> None:
    candidates = native_hooks.opus_library_candidates()
    assert candidates, "neither PyAV's bundled libopus nor a system one"
    library = ctypes.CDLL(candidates[0])
    assert all(getattr(library, name) for name in OPUS_FUNCTIONS)


def test_frame_encoder_skips_the_graph_and_encodes_like_encode() -> None:
    direct_context = av.CodecContext.create("pcm_mulaw", "w")
    direct_context.format, direct_context.layout, direct_context.sample_rate = "s16", "mono", 8000
    direct_context.time_base = fractions.Fraction(1, 8000)
    direct_context.open()
    assert hasattr(direct_context, "_send_frame_and_recv"), "PyAV's _send_frame_and_recv is gone"
    encode = native_hooks.frame_encoder(direct_context)
    assert getattr(encode, "__name__", "") == "_send_frame_and_recv"
    frame = av.AudioFrame(format="s16", layout="mono", samples=160)
    frame.planes[0].update(sine(1000, 8000, 0.02).tobytes())
    frame.sample_rate, frame.pts = 8000, 0
    packets = list(encode(frame))
    assert sum(len(bytes(p)) for p in packets) == 160


async def test_socket_handover_takes_and_gives_back_reading() -> None:
    loop = asyncio.get_running_loop()
    received: list[bytes] = []

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.append(data)

    transport, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    address = transport.get_extra_info("sockname")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        handover = native_hooks.SocketHandover(loop, [transport])
        assert handover.fds == [transport.get_extra_info("socket").fileno()]
        handover.take()
        sender.sendto(b"while taken", address)
        await asyncio.sleep(0.1)
        assert received == []  # asyncio no longer reads it
        handover.give_back()
        await asyncio.sleep(0.1)
        assert received == [b"while taken"]  # the transport's own callback reads again
    finally:
        sender.close()
        transport.close()


def test_socket_handover_refuses_what_is_not_a_plain_socket() -> None:
    class Relay:
        def get_extra_info(self, name: str) -> None:
            return None

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="not a plain UDP socket"):
            native_hooks.SocketHandover(loop, [Relay()])  # type: ignore[list-item]
    finally:
        loop.close()
