"""TURN REST API credentials against a real coturn (`use-auth-secret`): the web user's RTCPeerConnection
is relay-only (iceTransportPolicy "relay", as a browser whose direct path is blocked) with the TURN
credential its login got from the gateway, and a call to a pjsua2 desk phone carries audio both ways
through coturn. An expired or forged credential gets no allocation.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aioice.stun
import pytest
from aioice.turn import create_turn_endpoint
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from gateway.media.webrtc import aiortc_hooks
from gateway.signaling.turn_rest import turn_rest_credential, turn_rest_username
from peers.audio import has_tone, read_wav
from peers.coturn import Coturn, running_coturn
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.softphone.test_reconnect import call_the_phone

SECRET = "coturn-test-shared-secret-0123"
PHONE_TONE = 600


def relay_only(servers: list[dict[str, Any]]) -> RTCConfiguration:
    """The page's RTCConfiguration from its login's `ice_servers`, relay candidates only."""
    ice = [RTCIceServer(s["urls"], s.get("username"), s.get("credential")) for s in servers]
    return RTCConfiguration(iceServers=ice, iceTransportPolicy=RTCIceTransportPolicy.RELAY)


async def allocate(turn: Coturn, username: str, password: str) -> None:
    """One TURN allocation (RFC 8656 §7.2) with these credentials; TransactionFailed when refused."""
    transport, _ = await asyncio.wait_for(
        create_turn_endpoint(asyncio.DatagramProtocol, (turn.host, turn.port), username, password), 10
    )
    transport.close()


async def test_call_relayed_through_coturn_with_the_gateway_issued_credential(tmp_path: Path) -> None:
    require_desk_phone()
    with running_coturn(tmp_path, SECRET) as turn:
        async with (
            DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
            running_gateway(
                gateway_config(
                    phone.address,
                    media={"rtp_ports": {"start": 37600}},
                    ice={"turn": {"urls": [turn.url], "shared_secret": SECRET, "ttl": 600}},
                )
            ) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            [server] = alice.ice_servers  # a TURN entry minted for this login, no static one
            assert server["urls"] == [turn.url]
            expiry, _, user = str(server["username"]).partition(":")
            assert user == "alice" and 590 <= int(expiry) - time.time() <= 610
            peer = WebPeer(freq=1000, configuration=relay_only(alice.ice_servers))
            try:
                call_id, number = await call_the_phone(alice, peer, phone)
                await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=15)
                [pair] = aiortc_hooks.ice_connection(peer.pc)._nominated.values()
                assert pair.local_candidate.type == "relay", pair
                assert turn.allocations() >= 1, turn.log_text()[-2000:]
                await asyncio.sleep(1.5)  # the web user's tone in the phone's recording
                await phone.hangup(number)
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
            rate, samples = read_wav(await phone.wait_for_recording(number))
            assert has_tone(samples[-int(1.5 * rate) :], rate, 1000), "the phone did not hear the web user"


@pytest.mark.parametrize("kind", ["expired", "forged"])
async def test_coturn_refuses_an_expired_or_forged_credential(tmp_path: Path, kind: str) -> None:
    with running_coturn(tmp_path, SECRET) as turn:
        now = int(time.time())
        good = turn_rest_username(now + 600, "alice")
        await allocate(turn, good, turn_rest_credential(SECRET.encode(), good))  # the control: accepted
        if kind == "expired":
            username = turn_rest_username(now - 60, "alice")
            password = turn_rest_credential(SECRET.encode(), username)
        else:
            username = turn_rest_username(now + 600, "mallory")
            password = turn_rest_credential(b"a guess at the shared secret", username)
        with pytest.raises(aioice.stun.TransactionFailed) as refused:
            await allocate(turn, username, password)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 401, refused.value
