"""The gateway in front of the shared Asterisk (pbx.py), with web users registered there and logged in,
and a web call with an aiortc browser stand-in that sends a tone and records what it hears."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.config import Config
from peers.asterisk import Asterisk
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from sipcore import RegState
from tests.e2e.asterisk.pbx import ALICE_EXT, BOB_EXT, PASSWORDS, PHONE_EXT
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

ALICE_AOR, BOB_AOR = "sip:1001@127.0.0.1", "sip:1002@127.0.0.1"


def asterisk_gateway_config(
    pbx: Asterisk, alice_extra: dict[str, Any] | None = None, **sections: Any
) -> Config:
    """alice (1001) and bob (1002) registered at ``pbx`` with their extensions' credentials;
    ``alice_extra``: more of alice's users[] entry (watch...)."""
    return gateway_config(
        pbx.address,
        register=True,
        alice_auth=(ALICE_EXT, PASSWORDS[ALICE_EXT]),
        bob_auth=(BOB_EXT, PASSWORDS[BOB_EXT]),
        alice_extra=alice_extra,
        **sections,
    )


@asynccontextmanager
async def alice_registered(
    pbx: Asterisk, alice_extra: dict[str, Any] | None = None, **sections: Any
) -> AsyncIterator[tuple[Gateway, WebUser]]:
    """The gateway in front of ``pbx`` with alice's and bob's extensions registered there, and alice
    logged in (``sections``: more of the gateway's configuration)."""
    async with running_gateway(asterisk_gateway_config(pbx, alice_extra, **sections)) as gateway:
        assert gateway.sip is not None
        for aor in ALICE_AOR, BOB_AOR:
            await gateway.sip.registrations.wait_for(aor, RegState.REGISTERED)
        async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
            yield gateway, alice


@asynccontextmanager
async def asterisk_phone(
    pbx: Asterisk, workdir: Path, tone: float, **options: Any
) -> AsyncIterator[DeskPhone]:
    """The pjsua2 desk phone 2000 registered at ``pbx`` (``options``: DeskPhone's, answer="ring"...)."""
    require_desk_phone()
    async with DeskPhone(
        workdir,
        user=PHONE_EXT,
        tone=tone,
        register=f"sip:{pbx.address}",
        password=PASSWORDS[PHONE_EXT],
        **options,
    ) as phone:
        await phone.wait_for("registered", code=200)
        yield phone


@asynccontextmanager
async def web_call(alice: WebUser, number: str, freq: float = 1000.0) -> AsyncIterator[tuple[str, WebPeer]]:
    peer = WebPeer(freq=freq)
    try:
        call_id = await alice.call(number, await peer.offer())
        connected = await alice.wait_for("connected", call_id=call_id)
        await peer.accept(connected["sdp"])
        await peer.connected()
        yield call_id, peer
        if not any(e.get("type") == "ended" and e.get("call_id") == call_id for e in alice.events):
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
    finally:
        await peer.close()
