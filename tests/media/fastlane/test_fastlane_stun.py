"""The browser's ICE consent checks answered by the fast lane's thread (_stun.c): a valid check from the
pair's remote address gets aioice's response (XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT) from the
thread; every check aioice must see (a role conflict, an ICE restart's username, a bad integrity or
fingerprint, another address, an attribute we do not know) still reaches Python, unanswered by the thread;
a real aiortc browser's checks on a linked call are answered there and the call stays up."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import socket
import zlib
from collections.abc import Callable
from typing import Any

import aioice.ice
import aioice.stun as stun
import pytest

from gateway.media.rtp.ports import RtpPortAllocator
from tests.media.bridge_harness import Call, allocator
from tests.media.fastlane.test_fastlane_engine import Linked, open_link
from tests.media.fastlane.test_fastpath import counters, linked, require_fast_lane, time_stun_requests

OURS, THEIRS, PASSWORD = "ourU", "theirU", "our-ice-password-22chars"
USERNAME = f"{OURS}:{THEIRS}".encode()


@pytest.fixture(autouse=True)
def fast_lane_built() -> None:
    require_fast_lane()


@pytest.fixture
def ports() -> RtpPortAllocator:
    return allocator()


def test_the_threads_hmac_sha1_and_crc32_are_pythons() -> None:
    from gateway.media.fastlane import _fastlane  # type: ignore[attr-defined]  # built: the autouse fixture

    for size in (0, 1, 20, 55, 56, 63, 64, 65, 119, 200, 1000):
        for key in (b"k", os.urandom(22), os.urandom(64), os.urandom(65), os.urandom(256)):
            data = os.urandom(size)
            digest, crc = _fastlane.stun_digests(key, data)
            assert digest == hmac.new(key, data, "sha1").digest(), (size, len(key))
            assert crc == zlib.crc32(data), size


def check(
    *,
    username: str = f"{OURS}:{THEIRS}",
    password: str = PASSWORD,
    role: str = "ICE-CONTROLLING",
    priority: bool = True,
    extra: dict[str, Any] | None = None,
    fingerprint: bool = True,
    method: stun.Method = stun.Method.BINDING,
    message_class: stun.Class = stun.Class.REQUEST,
) -> stun.Message:
    """A consent check as a browser sends it (aioice's build_request, USE-CANDIDATE as Chrome's)."""
    message = stun.Message(message_method=method, message_class=message_class)
    message.attributes["USERNAME"] = username
    if priority:
        message.attributes["PRIORITY"] = 1853824767
    message.attributes[role] = 0x1122334455667788
    message.attributes["USE-CANDIDATE"] = None
    message.attributes.update(extra or {})
    message.add_message_integrity(password.encode())
    if not fingerprint:
        del message.attributes["FINGERPRINT"]
    return message


async def exchange(link: Linked, browser: socket.socket, data: bytes) -> bytes | None:
    """Send ``data`` to the link's web socket from ``browser``; the thread's answer, or None (after
    Python got the datagram instead)."""
    browser.sendto(data, link.web)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    while loop.time() < deadline:
        try:
            return browser.recv(2048)
        except BlockingIOError:
            pass
        link.link.drain()
        if data in link.handler.web_datagrams:
            return None
        await asyncio.sleep(0.005)
    raise AssertionError("neither an answer nor Python got the check")


def browser_socket(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    browser = socket.socket(family, socket.SOCK_DGRAM)
    browser.bind((host, 0))
    browser.setblocking(False)
    return browser


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_a_consent_check_from_the_pair_is_answered_by_the_thread(host: str) -> None:
    async with open_link(host=host) as link:
        browser = browser_socket(host)
        try:
            link.link.native.ice(USERNAME, PASSWORD.encode(), False, browser.getsockname()[:2])
            for _ in range(3):
                request = check()
                answer = await exchange(link, browser, bytes(request))
                assert answer is not None
                response = stun.parse_message(answer)  # raises on a bad FINGERPRINT
                assert (response.message_method, response.message_class) == (
                    stun.Method.BINDING,
                    stun.Class.RESPONSE,
                )
                assert response.transaction_id == request.transaction_id
                source = browser.getsockname()[:2]
                mapped = response.attributes["XOR-MAPPED-ADDRESS"]
                assert (ipaddress.ip_address(mapped[0]), mapped[1]) == (
                    ipaddress.ip_address(source[0]),
                    source[1],
                )
                assert response.check_message_integrity(PASSWORD.encode())
                assert "FINGERPRINT" in response.attributes
                assert stun.message_fingerprint(answer[:-8]) == response.attributes["FINGERPRINT"]
            assert link.link.native.stun_answered() == 3
            assert link.handler.web_datagrams == []  # Python never saw them
        finally:
            browser.close()


def corrupt_fingerprint(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def unknown_attribute(data: bytes) -> bytes:
    """A comprehension-required attribute we do not know (0x0030), before MESSAGE-INTEGRITY."""
    message = stun.parse_message(data)
    raw = bytearray(data[:20]) + b"\x00\x30\x00\x04abcd" + data[20:]
    raw[2:4] = (len(raw) - 20).to_bytes(2, "big")
    del message  # re-signed below: the integrity covers the new attribute
    body = bytes(raw)
    mi = body.index(b"\x00\x08\x00\x14")
    signed = bytearray(body[:mi])
    signed[2:4] = (mi - 20 + 24).to_bytes(2, "big")
    digest = hmac.new(PASSWORD.encode(), bytes(signed), "sha1").digest()
    out = bytearray(signed) + b"\x00\x08\x00\x14" + digest
    out[2:4] = (len(out) - 20 + 8).to_bytes(2, "big")
    crc = zlib.crc32(bytes(out)) ^ 0x5354554E
    return bytes(out) + b"\x80\x28\x00\x04" + crc.to_bytes(4, "big")


CASES: dict[str, Callable[[], bytes]] = {
    "role conflict (we are controlling too)": lambda: bytes(check(role="ICE-CONTROLLING")),
    "an ICE restart's username": lambda: bytes(check(username=f"{OURS}:newU")),
    "another session's username": lambda: bytes(check(username=f"otherU:{THEIRS}")),
    "a wrong password": lambda: bytes(check(password="not-our-password-22chars")),
    "a corrupt fingerprint": lambda: corrupt_fingerprint(bytes(check())),
    "no PRIORITY": lambda: bytes(check(priority=False)),
    "an unknown comprehension-required attribute": lambda: unknown_attribute(bytes(check())),
    "a Binding indication": lambda: bytes(check(message_class=stun.Class.INDICATION)),
    "a Binding success response": lambda: bytes(check(message_class=stun.Class.RESPONSE)),
    "a truncated check": lambda: bytes(check())[:-4],
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_checks_aioice_must_see_still_go_to_python(case: str) -> None:
    async with open_link() as link:
        browser = browser_socket()
        try:
            controlling = case.startswith("role conflict")
            link.link.native.ice(USERNAME, PASSWORD.encode(), controlling, browser.getsockname())
            data = CASES[case]()
            assert await exchange(link, browser, data) is None
            assert link.handler.web_datagrams == [data]
            assert link.link.native.stun_answered() == 0
        finally:
            browser.close()


async def test_a_check_without_fingerprint_is_answered_and_one_from_elsewhere_is_not() -> None:
    async with open_link() as link:
        browser, elsewhere = browser_socket(), browser_socket()
        try:
            link.link.native.ice(USERNAME, PASSWORD.encode(), False, browser.getsockname())
            assert await exchange(link, browser, bytes(check(fingerprint=False))) is not None
            data = bytes(check())
            assert await exchange(link, elsewhere, data) is None  # aioice's: a new pair, maybe
            link.link.native.ice(None)  # unlinked consent: everything to Python
            again = bytes(check())
            assert await exchange(link, browser, again) is None
            assert link.handler.web_datagrams == [data, again]
            assert link.link.native.stun_answered() == 1
        finally:
            browser.close()
            elsewhere.close()


async def test_ice_refuses_bad_arguments() -> None:
    async with open_link() as link:
        native = link.link.native
        with pytest.raises(ValueError, match="username or password"):
            native.ice(b"", b"pwd", False, ("127.0.0.1", 9))
        with pytest.raises(ValueError, match="username or password"):
            native.ice(b"a:b", b"x" * 257, False, ("127.0.0.1", 9))
        with pytest.raises(TypeError):
            native.ice("a:b", b"pwd", False, ("127.0.0.1", 9))  # type: ignore[arg-type]
        with pytest.raises((TypeError, ValueError)):
            native.ice(b"a:b", b"pwd", False, "127.0.0.1:9")  # type: ignore[arg-type]
        link.link.close()
        native.ice(b"a:b", b"pwd", False, ("127.0.0.1", 9))  # a closed link: nothing to do, no error
        assert native.stun_answered() == 0


async def test_a_browsers_consent_checks_on_a_linked_call_are_answered_by_the_thread(
    ports: RtpPortAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiortc's own checks (RFC 7675, here every ~0.15 s) on the fast lane's pair: the thread answers
    them, aioice on the gateway's side no longer sees them, the browser's checks succeed at once."""
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.15)
    seen: list[aioice.ice.Connection] = []
    received = aioice.ice.Connection.request_received

    def counted(self: aioice.ice.Connection, *args: Any, **kwargs: Any) -> None:
        seen.append(self)
        received(self, *args, **kwargs)

    monkeypatch.setattr(aioice.ice.Connection, "request_received", counted)
    durations = time_stun_requests(monkeypatch)
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await linked(call)
        await asyncio.sleep(0.2)  # checks already on their way to Python when it linked
        ours = aioice_connection(call)
        before = sum(1 for connection in seen if connection is ours)
        await call.play(1.5)
        assert call.link is not None
        answered = call.link.native.stun_answered()
        assert answered >= 5, answered
        assert sum(1 for connection in seen if connection is ours) == before  # none reached aioice
        assert call.web.pc.connectionState == "connected" and counters(call)[1] > 50
        assert durations and max(durations) < 0.4, sorted(durations)
    finally:
        await call.close()


def aioice_connection(call: Call) -> aioice.ice.Connection:
    from gateway.media.webrtc import aiortc_hooks

    return aiortc_hooks.ice_connection(call.bridge._web._pc)
