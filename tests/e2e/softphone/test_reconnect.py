"""Reconnect grace with real peers: a web user (aiortc over the WebSocket protocol) whose socket and
RTCPeerConnection go away mid-call gets the call back with audio both ways; a pjsua2 desk phone is the
far end and never notices (no BYE, no re-INVITE). After the grace without a reconnect, the phone gets BYE.

Tones: the phone plays 440 Hz; the web user sends 1000 Hz before the reconnect and 1300 Hz after, so the
phone's recording proves the new web leg reached it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import Config
from peers.audio import detect_tone, read_wav
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway, wait_until


def tail_has_tone(path: Path, freq: float, seconds: float = 1.2) -> bool:
    """The tone in the last `seconds` of the recording (less its last 0.2 s: the hangup)."""
    rate, samples = read_wav(path)
    body = samples[-int((seconds + 0.2) * rate) : -int(0.2 * rate)]
    return detect_tone(body, rate, freq, threshold=0.3)


def config(phone: DeskPhone, rtp: int, grace: float = 30) -> Config:
    return gateway_config(
        phone.address, media={"rtp_ports": {"start": rtp}}, web_auth={"reconnect_grace": grace}
    )


async def call_the_phone(alice: WebUser, peer: WebPeer, phone: DeskPhone) -> tuple[str, int]:
    """Alice calls the desk phone with `peer`'s offer: (the call id, the phone's call number) once up."""
    call_id = await alice.call("2000", await peer.offer())
    connected = await alice.wait_for("connected", call_id=call_id)
    await peer.accept(connected["sdp"])
    number = int((await phone.wait_for("incoming"))["call"])
    await phone.wait_for("state", call=number, state="CONFIRMED")
    return call_id, number


async def test_web_user_reconnects_and_gets_the_call_back(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(config(phone, 36000)) as gateway,
    ):
        first = WebPeer(freq=1000)
        alice = WebUser(gateway.http_url, "alice", ALICE_SECRET)
        await alice.__aenter__()
        try:
            call_id, number = await call_the_phone(alice, first, phone)
            await wait_until(lambda: first.heard(440, last=1.0), timeout=10)
            media_changes = len(phone.seen("media", call=number))
        finally:
            # the page goes: its socket and its RTCPeerConnection (DTLS close_notify) close together
            await asyncio.gather(alice.close(), first.close())
        token = alice.token
        await asyncio.sleep(1.5)
        assert not phone.seen("state", call=number, state="DISCONNECTED")
        assert gateway._health_details()["calls"] == 1

        second = WebPeer(freq=1300)
        try:
            async with WebUser(gateway.http_url, "alice", "", token=token) as again:
                calls = await again.wait_for("calls")
                [summary] = calls["calls"]
                assert summary["call_id"] == call_id and summary["state"] == "connected", calls
                assert summary["direction"] == "outbound" and "2000" in summary["remote"], calls
                ack = await again.request(
                    {"type": "reattach", "call_id": call_id, "sdp": await second.offer()}
                )
                assert ack["request"] == "reattach", ack
                reattached = await again.wait_for("reattached", call_id=call_id)
                assert reattached["held_local"] is False and reattached["held_remote"] is False
                await second.accept(reattached["sdp"])
                await wait_until(lambda: second.heard(440, last=1.0), timeout=10)
                await asyncio.sleep(1.5)  # the new tone in the phone's recording
                # the phone never noticed: no re-INVITE changed its media
                assert len(phone.seen("media", call=number)) == media_changes
                # the call belongs to the new session now: it hangs up as any call
                await again.request({"type": "hangup", "call_id": call_id})
                ended = await again.wait_for("ended", call_id=call_id)
                assert ended["reason"] == "hangup", ended
        finally:
            await second.close()
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        wav = await phone.wait_for_recording(number)
        assert tail_has_tone(wav, 1300), "the phone did not hear the web user after the reconnect"


async def test_same_session_renews_its_media_after_a_network_change(tmp_path: Path) -> None:
    """The WebSocket survives, the RTCPeerConnection does not (its network went): the gateway's web leg
    times out (no RTP), the call waits; the page offers again on the same session and is heard."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(config(phone, 36200)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        first, second = WebPeer(freq=1000), WebPeer(freq=1300)
        try:
            call_id, number = await call_the_phone(alice, first, phone)
            await wait_until(lambda: first.heard(440, last=1.0), timeout=10)
            first.vanish()
            await asyncio.sleep(gateway.config.media.inactivity_timeout + 1.5)  # the web leg is given up
            assert not [e for e in alice.events if e["type"] == "ended"], alice.events
            assert gateway._health_details()["calls"] == 1
            await alice.request({"type": "reattach", "call_id": call_id, "sdp": await second.offer()})
            reattached = await alice.wait_for("reattached", call_id=call_id)
            await second.accept(reattached["sdp"])
            await wait_until(lambda: second.heard(440, last=1.0), timeout=10)
            await asyncio.sleep(1.5)
            await phone.hangup(number)
            ended = await alice.wait_for("ended", call_id=call_id)
            assert ended["reason"] == "remote_hangup", ended
        finally:
            await first.close()
            await second.close()
        wav = await phone.wait_for_recording(number)
        assert tail_has_tone(wav, 1300), "the phone did not hear the renewed media"


async def test_grace_expiry_ends_the_call_with_bye(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(config(phone, 36400, grace=3)) as gateway,
    ):
        peer = WebPeer(freq=1000)
        alice = WebUser(gateway.http_url, "alice", ALICE_SECRET)
        await alice.__aenter__()
        try:
            call_id, number = await call_the_phone(alice, peer, phone)
        finally:
            await asyncio.gather(alice.close(), peer.close())
        loop = asyncio.get_running_loop()
        gone = loop.time()
        await phone.wait_for("state", timeout=10, call=number, state="DISCONNECTED")
        waited = loop.time() - gone
        assert 2.5 <= waited <= 6, f"BYE after {waited:.1f} s, the grace is 3 s"
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
        # the call is gone: a late reattach is refused like any unknown call
        async with WebUser(gateway.http_url, "alice", "", token=alice.token) as again:
            try:
                await again.request({"type": "reattach", "call_id": call_id, "sdp": await WebPeer().offer()})
            except WebUserError as exc:
                assert "not_found" in str(exc), exc
            else:
                raise AssertionError("a reattach after the grace was accepted")


async def test_a_logout_ends_the_call_at_once_and_another_login_cannot_take_it(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(config(phone, 36600)) as gateway,
    ):
        peer = WebPeer(freq=1000)
        alice = WebUser(gateway.http_url, "alice", ALICE_SECRET)
        await alice.__aenter__()
        try:
            call_id, number = await call_the_phone(alice, peer, phone)
            # another login of alice (a password login: another family) sees nothing and may not take it
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as other:
                await alice.close()
                await asyncio.sleep(0.5)
                assert not [e for e in other.events if e["type"] == "calls"]
                try:
                    await other.request(
                        {"type": "reattach", "call_id": call_id, "sdp": await WebPeer().offer()}
                    )
                except WebUserError as exc:
                    assert "not_found" in str(exc), exc
                else:
                    raise AssertionError("another login took the call")
                try:  # nor hang it up (only its own login's page may, having hung up while away)
                    await other.request({"type": "hangup", "call_id": call_id})
                except WebUserError as exc:
                    assert "not_found" in str(exc), exc
                else:
                    raise AssertionError("another login hung the call up")
            # the page of the first login comes back and logs out: the call ends at once
            async with WebUser(gateway.http_url, "alice", "", token=alice.token) as again:
                await again.wait_for("calls")
                await again.request({"type": "logout"})
            await phone.wait_for("state", timeout=5, call=number, state="DISCONNECTED")
        finally:
            await peer.close()


async def test_a_new_login_takes_the_call_from_a_socket_that_lingers(tmp_path: Path) -> None:
    """After a network change the page logs in again (its saved token) before its old socket is known
    dead: the new login is told the call at once, the old socket is closed with 4010, and the call is
    taken back on a new RTCPeerConnection."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(config(phone, 36400)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        first, second = WebPeer(freq=1000), WebPeer(freq=1300)
        try:
            call_id, number = await call_the_phone(alice, first, phone)
            await wait_until(lambda: first.heard(440, last=1.0), timeout=10)
            async with WebUser(gateway.http_url, "alice", "", token=alice.token) as again:
                calls = await again.wait_for("calls")
                assert [c["call_id"] for c in calls["calls"]] == [call_id], calls
                closed = await alice.wait_for("closed", timeout=5)
                assert closed["code"] == 4010, closed
                await again.request({"type": "reattach", "call_id": call_id, "sdp": await second.offer()})
                reattached = await again.wait_for("reattached", call_id=call_id)
                await second.accept(reattached["sdp"])
                await wait_until(lambda: second.heard(440, last=1.0), timeout=10)
                await asyncio.sleep(1.5)
                await again.request({"type": "hangup", "call_id": call_id})
                await again.wait_for("ended", call_id=call_id)
        finally:
            await asyncio.gather(first.close(), second.close())
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert tail_has_tone(await phone.wait_for_recording(number), 1300)


async def web_to_web(
    gateway_url: str, alice_media: WebPeer, bob_media: WebPeer
) -> tuple[WebUser, WebUser, str]:
    """alice (logged in, returned open) calls bob (logged in, closed by the caller too), he answers, and
    both hear each other: (alice, bob, alice's call id)."""
    alice = WebUser(gateway_url, "alice", ALICE_SECRET)
    bob = WebUser(gateway_url, "bob", BOB_SECRET)
    await alice.__aenter__()
    await bob.__aenter__()
    call_id = await alice.call("1002", await alice_media.offer())
    await bob.answer((await bob.wait_for("incoming"))["call_id"], bob_media.answer)
    await alice_media.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
    await wait_until(lambda: alice_media.heard(660, last=1.0) and bob_media.heard(1000, last=1.0), timeout=15)
    return alice, bob, call_id


async def test_a_peer_to_peer_page_that_kept_its_connection_takes_its_call_back_without_an_offer() -> None:
    """`web_calls: p2p`: the media flows between the two browsers. alice's socket goes, her
    RTCPeerConnection stays (its audio with bob never stops); logged in again she finds the call listed
    `end_to_end` and takes it back with a `reattach` without an offer: `reattached` comes without one,
    nothing is renegotiated, and the call is hers again (her hang-up ends bob's call)."""
    config = gateway_config(None, web_auth={"reconnect_grace": 30}, calls={"web_calls": "p2p"})
    alice_media, bob_media = WebPeer(1000), WebPeer(660)
    async with running_gateway(config) as gateway:
        try:
            alice, bob, call_id = await web_to_web(gateway.http_url, alice_media, bob_media)
            try:
                await alice.close()  # the socket only
                await asyncio.sleep(1.0)
                async with WebUser(gateway.http_url, "alice", "", token=alice.token) as again:
                    [summary] = (await again.wait_for("calls"))["calls"]
                    assert summary["call_id"] == call_id and summary["end_to_end"] is True, summary
                    await again.request({"type": "reattach", "call_id": call_id})
                    reattached = await again.wait_for("reattached", call_id=call_id)
                    assert "sdp" not in reattached, reattached
                    assert alice_media.heard(660, last=1.0) and bob_media.heard(1000, last=1.0)
                    await again.request({"type": "hangup", "call_id": call_id})
                    await bob.wait_for("ended", timeout=10)
            finally:
                await bob.close()
        finally:
            await asyncio.gather(alice_media.close(), bob_media.close())


async def test_a_call_whose_media_goes_through_the_gateway_is_not_taken_back_without_an_offer() -> None:
    """`web_calls: direct`: both legs end at the gateway's bridges, so a `reattach` without an offer is
    refused naming `sdp` (the call is not listed `end_to_end`), and one with an offer takes it back."""
    config = gateway_config(None, web_auth={"reconnect_grace": 30})
    alice_media, bob_media = WebPeer(1000), WebPeer(660)
    async with running_gateway(config) as gateway:
        again_media = WebPeer(1300)
        try:
            alice, bob, call_id = await web_to_web(gateway.http_url, alice_media, bob_media)
            try:
                await asyncio.gather(alice.close(), alice_media.close())
                async with WebUser(gateway.http_url, "alice", "", token=alice.token) as again:
                    [summary] = (await again.wait_for("calls"))["calls"]
                    assert summary["end_to_end"] is False, summary
                    try:
                        await again.request({"type": "reattach", "call_id": call_id})
                    except WebUserError as exc:
                        assert "'field': 'sdp'" in str(exc), exc
                    else:
                        raise AssertionError("a reattach without an offer was taken")
                    await again.request(
                        {"type": "reattach", "call_id": call_id, "sdp": await again_media.offer()}
                    )
                    await again_media.accept((await again.wait_for("reattached", call_id=call_id))["sdp"])
                    await wait_until(lambda: again_media.heard(660, last=1.0), timeout=10)
            finally:
                await bob.close()
        finally:
            await asyncio.gather(bob_media.close(), again_media.close())


async def test_a_call_that_lost_only_its_socket_is_taken_back_without_an_offer() -> None:
    """`web_calls: direct` (both legs at the gateway's bridges): alice's socket goes, her RTCPeerConnection
    stays. The gateway keeps her web leg (the call is away, not detached: its media did not go with the
    socket), so she hears bob and he hears her all along; logged in again she takes the call back with a
    `reattach` without an offer (`reattached` without SDP: nothing renegotiated), on the same connection."""
    config = gateway_config(None, web_auth={"reconnect_grace": 30})
    alice_media, bob_media = WebPeer(1000), WebPeer(660)
    async with running_gateway(config) as gateway:
        try:
            alice, bob, call_id = await web_to_web(gateway.http_url, alice_media, bob_media)
            try:
                await alice.close()  # the socket only
                await asyncio.sleep(1.0)
                alice_media.clear()
                bob_media.clear()
                await asyncio.sleep(1.0)  # the socket away: the audio goes on both ways
                assert alice_media.heard(660, last=0.8) and bob_media.heard(1000, last=0.8)
                async with WebUser(gateway.http_url, "alice", "", token=alice.token) as again:
                    [summary] = (await again.wait_for("calls"))["calls"]
                    assert summary["call_id"] == call_id and summary["end_to_end"] is False, summary
                    await again.request({"type": "reattach", "call_id": call_id})
                    reattached = await again.wait_for("reattached", call_id=call_id)
                    assert "sdp" not in reattached, reattached
                    await asyncio.sleep(0.5)
                    assert alice_media.heard(660, last=0.4) and bob_media.heard(1000, last=0.4)
                    await again.request({"type": "hangup", "call_id": call_id})
                    await bob.wait_for("ended", timeout=10)
            finally:
                await bob.close()
        finally:
            await asyncio.gather(alice_media.close(), bob_media.close())
