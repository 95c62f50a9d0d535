"""A SIP library's call outlives its WebSocket (issue 34 item 2, RFC 5626): raw SIP over the WebSocket as
JsSIP and SIP.js put it on the wire, aiortc as the browser's WebRTC, the pjsua2 desk phone as the PBX.

The browser's socket closes mid-call (a proxy restart, a NAT timeout, a network change): the call goes on
(no BYE to the phone, the media untouched) while the library reconnects, and its REGISTER on the new
socket (the same +sip.instance, or the same Contact URI without outbound) takes the call's dialog along:
the phone's BYE reaches the browser over the new socket. A browser that does not come back within
`web_auth.reconnect_grace` loses the call as before (BYE to the phone), and one that never registered
(nothing to recognise it by) loses it at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from gateway.app import Gateway
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.websip.test_sip_websocket import (
    ALICE_SIP_PASSWORD,
    SipCall,
    SipSocket,
    header_value,
    no_calls,
    realm_of,
    sip_socket,
    websocket_config,
)
from tests.e2e.websip.test_sip_websocket_outbound import register_outbound

CONTACT = "<sip:k3y9x2@q8w7e6r5t4y3.invalid;transport=ws>"  # the library's, kept across its sockets


async def _register(sip: SipSocket, realm: str, outbound: bool) -> str:
    sip.contact = CONTACT
    if outbound:
        return await register_outbound(sip, realm)
    return (await sip.register("alice", ALICE_SIP_PASSWORD, realm))[1]


async def _call_up(sip: SipSocket, peer: WebPeer, phone: DeskPhone, realm: str) -> tuple[SipCall, int]:
    """alice calls the phone over ``sip``; the call and the phone's number for it, once she hears it."""
    sip.call_id = f"flows-{time.monotonic_ns()}"
    call = SipCall(sip, f"sip:2000@{realm}", f"sip:alice@{realm}")
    final = await call.invite(await peer.offer(), realm)
    assert final.startswith("SIP/2.0 200 "), final
    await call.ack(final, call.remote_target, call.to_tag)
    await peer.accept(final.split("\r\n\r\n", 1)[1])
    number = int((await phone.wait_for("incoming"))["call"])
    await phone.wait_for("state", call=number, state="CONFIRMED")
    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
    return call, number


def _with_grace(phone: DeskPhone, grace: float) -> AbstractAsyncContextManager[Gateway]:
    return running_gateway(websocket_config(phone.address, sections={"web_auth": {"reconnect_grace": grace}}))


async def _still_up(gateway: Gateway, phone: DeskPhone, peer: WebPeer, number: int, seconds: float) -> None:
    """For ``seconds`` the call stays: the phone sees no BYE, the gateway keeps it, the browser hears."""
    await asyncio.sleep(seconds)
    assert not phone.seen("state", call=number, state="DISCONNECTED"), phone.events[-5:]
    assert gateway.driver.calls == 1
    assert peer.heard(440, last=1.0), "the browser's media stopped with its socket"


async def test_the_call_follows_the_library_to_its_new_websocket(tmp_path: Path) -> None:
    """JsSIP's way (outbound, +sip.instance) and SIP.js's default (the same Contact URI): the socket
    closes, 2 s later the call is still up with audio, the REGISTER on a new socket brings it over
    (Require: outbound and Flow-Timer for the outbound one), and the phone's BYE arrives there."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        _with_grace(phone, 30.0) as gateway,
    ):
        realm = realm_of(gateway)
        assert gateway.web_sip is not None
        for outbound in (True, False):
            peer = WebPeer(1000)
            try:
                async with sip_socket(gateway) as old:
                    registered = await _register(old, realm, outbound)
                    assert registered.startswith("SIP/2.0 200 "), registered
                    call, number = await _call_up(old, peer, phone, realm)
                # the socket is gone without a BYE: the call waits for the library
                await _still_up(gateway, phone, peer, number, 2.0)
                assert gateway.web_sip.sessions == 1 and len(gateway.web_sip.lost) == 1
                async with sip_socket(gateway) as new:
                    registered = await _register(new, realm, outbound)
                    assert registered.startswith("SIP/2.0 200 "), registered
                    if outbound:
                        assert header_value(registered, "Require") == "outbound", registered
                        assert header_value(registered, "Flow-Timer") == "120", registered
                    assert len(gateway.web_sip.lost) == 0
                    await _still_up(gateway, phone, peer, number, 1.0)
                    # the phone hangs up: its BYE goes to the library over the new socket
                    call.sip = new
                    await phone.hangup(number)
                    bye = await call.answer_bye()
                    assert bye.startswith(f"BYE {CONTACT.strip('<>')}"), bye
                    assert header_value(bye, "Call-ID") == old.call_id
                    await phone.wait_for("state", call=number, state="DISCONNECTED")
                    assert await no_calls(gateway)
            finally:
                await peer.close()


async def test_a_library_that_does_not_come_back_loses_the_call_after_the_grace(tmp_path: Path) -> None:
    """reconnect_grace 3 s: the socket closes, the phone hears BYE after the grace (not before it), and
    the gateway holds no session; a call on a socket that never registered ends at once."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        _with_grace(phone, 3.0) as gateway,
    ):
        realm = realm_of(gateway)
        assert gateway.web_sip is not None
        peer = WebPeer(1000)
        try:
            async with sip_socket(gateway) as sip:
                registered = await _register(sip, realm, True)
                assert registered.startswith("SIP/2.0 200 "), registered
                _, number = await _call_up(sip, peer, phone, realm)
            closed = time.monotonic()
            await _still_up(gateway, phone, peer, number, 1.5)
            await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=10)
            waited = time.monotonic() - closed
            assert 2.5 <= waited <= 8.0, waited
            assert await no_calls(gateway)
            assert gateway.web_sip.sessions == 0 and len(gateway.web_sip.lost) == 0
        finally:
            await peer.close()

        peer = WebPeer(1000)
        try:
            async with sip_socket(gateway) as sip:  # no REGISTER: nothing to know the library by
                _, number = await _call_up(sip, peer, phone, realm)
            closed = time.monotonic()
            await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=10)
            assert time.monotonic() - closed < 2.5
            assert await no_calls(gateway)
            assert gateway.web_sip.sessions == 0
        finally:
            await peer.close()


async def test_a_network_change_moves_the_call_before_the_old_socket_is_known_dead(tmp_path: Path) -> None:
    """After a network change the old socket looks open (no FIN came): the library's REGISTER on its new
    socket (same +sip.instance) moves the call there at once; the phone's BYE comes over the new socket,
    not the old one."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        _with_grace(phone, 30.0) as gateway,
    ):
        realm = realm_of(gateway)
        peer = WebPeer(1000)
        try:
            async with sip_socket(gateway) as old, sip_socket(gateway) as new:
                registered = await _register(old, realm, True)
                assert registered.startswith("SIP/2.0 200 "), registered
                call, number = await _call_up(old, peer, phone, realm)
                registered = await _register(new, realm, True)  # the old socket still open
                assert registered.startswith("SIP/2.0 200 "), registered
                await _still_up(gateway, phone, peer, number, 0.5)
                call.sip = new
                await phone.hangup(number)
                bye = await call.answer_bye()
                assert bye.startswith(f"BYE {CONTACT.strip('<>')}"), bye
                await phone.wait_for("state", call=number, state="DISCONNECTED")
                with contextlib.suppress(TimeoutError):  # nothing but the old flow's silence
                    stray = await asyncio.wait_for(old.ws.receive_str(), 0.5)
                    raise AssertionError(f"the old socket got {stray!r}")
                assert await no_calls(gateway)
        finally:
            await peer.close()
