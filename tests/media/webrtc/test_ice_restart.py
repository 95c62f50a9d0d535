"""ICE restart in place (gateway.media.webrtc.ice_restart) with real aioice connections on 127.0.0.1.

The gateway's side is a controlled aioice ``Connection`` that connected once to a client; the client
"moves": a new controlling ``Connection`` (new socket, so a new address, new credentials) checks the
gateway's unchanged candidates with the credentials the restart returned. Fails if an aioice upgrade
changes what the restart relies on (the version guard, the check list, nomination, consent).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import aioice.ice
import aioice.stun
import pytest
from aioice import Candidate, Connection
from aioice.ice import CandidatePair, StunProtocol

from gateway.media.webrtc.aiortc_hooks import HookError
from gateway.media.webrtc.ice_restart import (
    RENOMINATIONS,
    Credentials,
    InPlaceRestart,
    RestartRefused,
    check_internals,
    take_control_in_conflicts,
)


@pytest.fixture(autouse=True)
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves 127.0.0.1 out when gathering; consent every 0.1 s, expired after 3 misses (of 0.1 s
    each: an unauthenticated 401 is discarded, the check times out)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.1)
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.1)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 3)


async def _pair(client: Connection, server: Connection, *, trickle_client: bool = True) -> None:
    """Exchange credentials and candidates, connect both."""
    await asyncio.gather(client.gather_candidates(), server.gather_candidates())
    client.remote_username, client.remote_password = server.local_username, server.local_password
    server.remote_username, server.remote_password = client.local_username, client.local_password
    for candidate in server.local_candidates:
        await client.add_remote_candidate(candidate)
    await client.add_remote_candidate(None)
    if trickle_client:
        for candidate in client.local_candidates:
            await server.add_remote_candidate(candidate)
        await server.add_remote_candidate(None)
    await asyncio.wait_for(asyncio.gather(client.connect(), server.connect()), 10)


async def _roundtrip(client: Connection, server: Connection, text: bytes) -> None:
    await server.send(b"to client " + text)
    assert await asyncio.wait_for(client.recv(), 5) == b"to client " + text
    await client.send(b"to server " + text)
    assert await asyncio.wait_for(server.recv(), 5) == b"to server " + text


@pytest.fixture
async def connected() -> AsyncIterator[tuple[Connection, Connection]]:
    client, server = Connection(ice_controlling=True), Connection(ice_controlling=False)
    await _pair(client, server)
    try:
        yield client, server
    finally:
        await client.close()
        await server.close()


async def _connected(moved: Connection, selected: list[Any]) -> None:
    """The moved client connects; wait (5 s at most) for the restart's pair to be selected."""
    await asyncio.wait_for(moved.connect(), 10)
    for _ in range(100):
        if selected:
            break
        await asyncio.sleep(0.05)


async def _knows(moved: Connection, server: Connection, new: Credentials) -> None:
    """The moved client takes the server's new credentials and its (unchanged) candidates."""
    moved.remote_username, moved.remote_password = new.local_ufrag, new.local_pwd
    for candidate in server.local_candidates:
        await moved.add_remote_candidate(candidate)
    await moved.add_remote_candidate(None)


def _address(server: Connection) -> tuple[str, int]:
    return tuple(server._nominated[1].remote_addr)  # type: ignore[return-value]


@pytest.mark.parametrize("trickle", [True, False], ids=["trickled", "peer-reflexive"])
async def test_the_client_moves_and_media_and_consent_follow(
    connected: tuple[Connection, Connection], trickle: bool
) -> None:
    old_client, server = connected
    await _roundtrip(old_client, server, b"before")
    before = _address(server)
    selected: list[Any] = []
    restart = InPlaceRestart(server, selected.append, label="test")

    moved = Connection(ice_controlling=True)
    await moved.gather_candidates()
    old_local = server.local_username
    new = restart.restart(moved.local_username, moved.local_password)
    assert (new.remote_ufrag, new.remote_pwd) == (moved.local_username, moved.local_password)
    assert new.local_ufrag != old_local and server.local_username == new.local_ufrag
    assert restart.pending and server._nominated[1].remote_addr == before  # media stays meanwhile
    assert server.remote_candidates == []  # RFC 8445 §9: the new session's candidates only

    # the old client's consent checks (old credentials) are still answered while the restart is pending
    await asyncio.sleep(1.0)
    assert not old_client._closed
    await _roundtrip(old_client, server, b"during")

    await _knows(moved, server, new)  # unchanged candidates: the same sockets
    if trickle:
        for candidate in moved.local_candidates:
            await server.add_remote_candidate(candidate)
        await server.add_remote_candidate(None)
    try:
        await _connected(moved, selected)
        assert len(selected) == 1 and not restart.pending
        assert _address(server) != before and _address(server) == selected[0].remote_addr
        assert _address(server)[1] == moved.local_candidates[0].port
        await old_client.close()  # the old path is gone for good
        await _roundtrip(moved, server, b"after")
        await asyncio.sleep(1.0)  # consent (0.1 s, 3 misses) holds on the new pair with the new credentials
        assert not server._closed
        await _roundtrip(moved, server, b"still")
    finally:
        await moved.close()
    for _ in range(60):  # and expires once the moved client is gone too
        if server._closed:
            break
        await asyncio.sleep(0.05)
    assert server._closed


async def test_a_second_restart_before_the_first_completed(connected: tuple[Connection, Connection]) -> None:
    old_client, server = connected
    selected: list[Any] = []
    restart = InPlaceRestart(server, selected.append)
    restart.restart("abandoned1", "a" * 22)
    moved = Connection(ice_controlling=True)
    await moved.gather_candidates()
    new = restart.restart(moved.local_username, moved.local_password)
    await _roundtrip(old_client, server, b"first credentials still answered")
    await _knows(moved, server, new)
    try:
        await _connected(moved, selected)
        assert restart.restarts == 2 and restart.completed == 1
        await _roundtrip(moved, server, b"after two restarts")
    finally:
        await moved.close()


async def test_the_agent_that_offered_first_answers_a_restart_as_controlled(
    connected: tuple[Connection, Connection],
) -> None:
    """The gateway offered the call (a call to the browser: it controls); the browser's re-offer
    restarts ICE and libwebrtc makes the restart's offerer controlling: the gateway turns controlled
    and takes the pair the browser nominates."""
    gateway, old_browser = connected
    await _roundtrip(old_browser, gateway, b"before")
    selected: list[Any] = []
    restart = InPlaceRestart(gateway, selected.append, label="test")
    moved = Connection(ice_controlling=True)
    await moved.gather_candidates()
    new = restart.restart(moved.local_username, moved.local_password)
    assert not gateway.ice_controlling
    await _knows(moved, gateway, new)
    try:
        await _connected(moved, selected)
        assert len(selected) == 1 and not restart.pending
        await old_browser.close()
        await _roundtrip(moved, gateway, b"after")
    finally:
        await moved.close()


async def test_a_browser_controlled_in_the_session_it_keeps_is_controlled_by_us() -> None:
    """Issue 65 item 4: a browser keeps an ICE session in which it was controlled (a SIP library's offer in
    the 200 to our re-INVITE without one) and meets our new leg, which answers as controlled: both agents
    controlled. Whatever the browser's tie-breaker, ours wins the conflict (RFC 8445 §7.3.1.1): we control,
    the browser stays controlled as it was, and once a pair is nominated we nominate it again with rising
    NOMINATION values (libwebrtc's renomination), which a controlled libwebrtc agent follows at once."""
    browser, ours = Connection(ice_controlling=False), Connection(ice_controlling=False)
    browser._tie_breaker = (1 << 64) - 2  # the highest a random one could be, but ours
    nominations: list[int] = []
    received = browser.request_received

    def request_received(message: aioice.stun.Message, addr: Any, protocol: Any) -> None:
        if "NOMINATION" in message.attributes:
            nominations.append(message.attributes["NOMINATION"])
        received(message, addr, protocol)

    browser.request_received = request_received  # type: ignore[method-assign]
    tasks: list[asyncio.Task[None]] = []
    take_control_in_conflicts(ours, lambda coroutine: tasks.append(asyncio.ensure_future(coroutine)))
    try:
        await _pair(browser, ours)
        assert ours.ice_controlling and not browser.ice_controlling
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert nominations == list(range(2, 2 + RENOMINATIONS)), nominations
        await _roundtrip(browser, ours, b"both ways")
    finally:
        await browser.close()
        await ours.close()


async def _two_sockets(monkeypatch: pytest.MonkeyPatch) -> tuple[Connection, Connection]:
    """A client (one socket) connected to a server with two (127.0.0.1 and 127.0.0.2): the client knows the
    first one's candidate only, and the server checks only what the client's checks trigger (the client's
    candidate is learned as peer-reflexive), so the pair on 127.0.0.1 is the one nominated."""
    server = Connection(ice_controlling=False)
    monkeypatch.setattr(
        aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1", "127.0.0.2"]
    )
    await server.gather_candidates()
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    client = await _client_of(server)
    client.remote_username, client.remote_password = server.local_username, server.local_password
    server.remote_username, server.remote_password = client.local_username, client.local_password
    await asyncio.wait_for(asyncio.gather(client.connect(), server.connect()), 10)
    return client, server


async def _client_of(server: Connection) -> Connection:
    """A controlling client with one socket that knows the server's first candidate (127.0.0.1) only."""
    client = Connection(ice_controlling=True)
    await client.gather_candidates()
    await client.add_remote_candidate(_on(server, "127.0.0.1"))
    return client


def _on(server: Connection, host: str) -> Candidate:
    return next(c for c in server.local_candidates if c.host == host)


async def _nominates(client: Connection, candidate: Candidate) -> CandidatePair:
    """The controlling client checks its pair with ``candidate`` and nominates it (USE-CANDIDATE on the
    check: aioice's aggressive nomination), as Chromium does when it switches its selected pair to another
    of its valid pairs (RFC 8445 §8.1.1), e.g. to the gateway's IPv6 candidate after an IPv4 one."""
    await client.add_remote_candidate(candidate)
    pair = next(p for p in client._check_list if p.remote_addr == (candidate.host, candidate.port))
    await asyncio.wait_for(client.check_start(pair), 5)
    assert client._nominated[1] is pair, "the client's check of the new pair failed"
    return pair


async def _reported(selected: list[Any], count: int) -> None:
    for _ in range(100):
        if len(selected) >= count:
            break
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("restarted", [True, False], ids=["after-a-restart", "without-restart"])
async def test_a_later_nomination_on_another_socket_is_reported(
    monkeypatch: pytest.MonkeyPatch, restarted: bool
) -> None:
    """After the restart's first pair (or the first session's, the restart object made at connect as the
    web leg does), the browser nominates a pair on another of the gateway's sockets: the gateway's aioice
    sends on it from then on, and ``on_selected`` gets it (the fast lane must move to that socket)."""
    client, server = await _two_sockets(monkeypatch)
    clients = [client]
    selected: list[Any] = []
    restart = InPlaceRestart(server, selected.append, label="test")
    try:
        assert server._nominated[1].local_addr[0] == "127.0.0.1"
        if restarted:
            moved = await _client_of(server)
            clients.append(moved)
            new = restart.restart(moved.local_username, moved.local_password)
            moved.remote_username, moved.remote_password = new.local_ufrag, new.local_pwd
            await _connected(moved, selected)
            assert len(selected) == 1 and selected[0] is server._nominated[1] and not restart.pending
            assert selected[0].local_addr[0] == "127.0.0.1" and restart.completed == 1
            await client.close()  # the old path is gone
            client = moved
        else:
            await _roundtrip(client, server, b"first session")
            assert selected == []  # the pair nominated before the object was made is not news

        await _nominates(client, _on(server, "127.0.0.2"))
        await _reported(selected, len(selected) + 1)
        second = server._nominated[1]
        assert second.local_addr[0] == "127.0.0.2" and selected[-1] is second
        assert len(selected) == (2 if restarted else 1) and restart.completed == (1 if restarted else 0)
        assert not restart.pending
        await _roundtrip(client, server, b"on the second socket")
        await _nominates(client, _on(server, "127.0.0.2"))  # the same pair nominated again: no news
        await asyncio.sleep(0.2)
        assert selected[-1] is second and len(selected) == (2 if restarted else 1)
    finally:
        for each in clients:
            await each.close()
        await server.close()


async def test_refusals(connected: tuple[Connection, Connection]) -> None:
    _, server = connected
    restart = InPlaceRestart(server, lambda pair: None)
    with pytest.raises(RestartRefused, match="new ice-ufrag"):
        restart.restart(server.remote_username or "", "b" * 22)
    with pytest.raises(RestartRefused, match="remote_pwd"):
        restart.restart("fresh1", "short")
    with pytest.raises(RestartRefused, match="remote_ufrag"):
        restart.restart("bad ufrag", "c" * 22)
    assert not restart.pending
    idle = Connection(ice_controlling=False)
    with pytest.raises(RestartRefused, match="not connected"):
        InPlaceRestart(idle, lambda pair: None).restart("fresh3", "e" * 22)
    await server.close()
    with pytest.raises(RestartRefused, match="closing"):
        restart.restart("fresh4", "f" * 22)


def test_the_version_guard_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = Connection(ice_controlling=False)
    check_internals(connection)
    with pytest.raises(HookError, match="not an aioice Connection"):
        check_internals(object())
    monkeypatch.delattr(Connection, "check_complete")
    with pytest.raises(HookError, match="check_complete"):
        check_internals(connection)
    monkeypatch.setattr(aioice, "__version__", "0.14.0")
    with pytest.raises(HookError, match=r"0\.14\.0"):
        InPlaceRestart(connection, lambda pair: None)


def test_the_aioice_code_paths_the_restart_relies_on() -> None:
    """Consent and checks go through ``pair.protocol.request`` with credentials read at each check;
    incoming checks go through ``self.request_received``/``self.check_complete`` (instance lookups)."""
    consent = inspect.getsource(Connection.query_consent)
    assert "self.build_request(pair, nominate=False)" in consent
    assert "await pair.protocol.request(" in consent and "self.remote_password.encode" in consent
    assert "self.receiver.request_received(message, addr, self)" in inspect.getsource(
        StunProtocol.datagram_received
    )
    incoming = inspect.getsource(Connection.check_incoming)
    assert "self.check_complete(pair)" in incoming and "self.check_start_task(pair)" in incoming
    assert "self._nominated[pair.component] = pair" in inspect.getsource(Connection.check_complete)
    assert "self.protocol = protocol" in inspect.getsource(CandidatePair.__init__)
    assert 'f"{self.remote_username}:{self.local_username}"' in inspect.getsource(Connection.build_request)
    # take_control_in_conflicts: the tie-breaker each check carries and each conflict compares, the role
    # switched through self.switch_role, and the STUN codec's attribute tables
    build = inspect.getsource(Connection.build_request)
    assert 'request.attributes["ICE-CONTROLLED"] = self._tie_breaker' in build
    assert "self._tie_breaker >= message.attributes" in inspect.getsource(Connection.request_received)
    assert "self.switch_role(ice_controlling=True)" in inspect.getsource(Connection.check_start)
    assert {"ATTRIBUTES_BY_TYPE", "ATTRIBUTES_BY_NAME", "pack_unsigned"} <= set(vars(aioice.stun))
