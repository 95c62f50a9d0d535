"""Several PBXs and tenants (issue 37 item 5), on the wire with real peers:

- two sipp PBXs (A on 127.0.0.1, B on 127.0.0.2) that challenge every INVITE and check the digest
  answer against their own credentials (verifyauth): alice (no tenant: `pbx:`, A) and bob (tenant acme:
  `pbxs.b`) both dial 1001, and each INVITE reaches its own PBX with its own credentials; alice dialling
  9 020 1234 5678 is routed to B by prefix, the 9 stripped and B's E.164 rule applied in the
  Request-URI, answered with B's trunk credentials (never alice's), the route's caller ID in the From;
- an INVITE for extension 2001 (alice's and bob's) rings the user of the PBX it came from;
- two Kamailio registrars: each user registers at her own PBX (the other one would refuse her
  password), B's trunk with its own credentials; each PBX has its own OPTIONS keep-alive, shown by
  name in /readyz and /metrics and to its own users' pages.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import Config
from peers.binaries import require_binary
from peers.demo import ALICE_HASH
from peers.kamailio import running_kamailio
from peers.sipp import Sipp
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from sipcore import RegState
from tests.e2e.harness import ALICE_SECRET, BOB_HASH, BOB_SECRET, gateway_config, running_gateway

B_HOST = "127.0.0.2"  # PBX B's own loopback address: the gateway tells the PBXs apart by source


def users(alice_password: str = "pw-a", bob_password: str = "pw-b") -> list[dict[str, Any]]:
    """alice and bob share extension 2001: alice at `pbx:` (A), bob in tenant acme (B); 1001 is a phone
    at each PBX (no web user's number: dialling it goes to the PBX). `voicemail: false`: each user's
    mailbox SUBSCRIBE would reach her own PBX, and these sipp PBXs and Kamailio registrars take calls and
    REGISTERs only (subscriptions at two PBXs: `lamp_users`, the last test)."""
    return [
        {"id": "alice", "display_name": "Alice", "sip": "2001", "allow_outbound": ["."],
         "web_secret_hash": ALICE_HASH, "pbx_auth": {"username": "2001", "password": alice_password}, "voicemail": False},
        {"id": "bob", "display_name": "Bob", "sip": "2001", "tenant": "acme", "allow_outbound": ["."],
         "web_secret_hash": BOB_HASH, "pbx_auth": {"username": "2001", "password": bob_password}, "voicemail": False},
    ]  # fmt: skip


def several(
    a: str, b: str, *, domains: tuple[str, str], register: bool = False, keepalive: float = 0.0
) -> Config:
    """`pbx:` is A (`a`), `pbxs.b` is B; tenant acme at B; a route by prefix 9 to B's trunk."""
    base = gateway_config(None)
    listen = [{"transport": "udp", "host": "127.0.0.1", "port": base.sip.listen[0].port}]
    config = gateway_config(
        a,
        domain=domains[0],
        register=register,
        sip={"listen": listen, "trusted_sources": ["127.0.0.1/32", f"{B_HOST}/32"]},
        pbxs={
            "b": {
                "address": b,
                "domain": domains[1],
                "register": register,
                "keepalive_interval": keepalive,
                "auth": {"username": "trunk", "password": "pw-trunk"},
                "rewrite": [{"match": "0(\\d+)", "replace": "+44\\1"}],  # E.164 for the UK trunk
            }
        },
        tenants={"acme": {"pbx": "b"}},
        routes=[
            {
                "match": "9.",
                "pbx": "b",
                "rewrite": [{"strip": 1}],
                "caller_id": {"display": "ACME Sales", "user": "+442000000000"},
            }
        ],
        users=users(),
    )
    return dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=keepalive))


async def call_and_hang_up(user: WebUser, number: str) -> None:
    peer = WebPeer(freq=1000)
    try:
        call_id = await user.call(number, await peer.offer())
        connected = await user.wait_for(("connected", "ended"), call_id=call_id, timeout=15)
        assert connected["type"] == "connected", connected
        await peer.accept(connected["sdp"])
        await user.request({"type": "hangup", "call_id": call_id})
        await user.wait_for("ended", call_id=call_id)
    finally:
        await peer.close()


async def test_each_tenant_reaches_its_pbx_and_a_prefix_route_rewrites_the_number(tmp_path: Path) -> None:
    require_binary("sipp")
    pbx_a = Sipp(tmp_path, "uas_pbx_challenge", calls=1, rtp_echo=True, inf=[["2001", "pw-a"]])
    pbx_b = Sipp(
        tmp_path, "uas_pbx_challenge", host=B_HOST, calls=2, rtp_echo=True,
        inf=[["2001", "pw-b"], ["trunk", "pw-trunk"]],  # bob's call, then alice's through the trunk
    )  # fmt: skip
    await pbx_a.start()
    await pbx_b.start()
    try:
        config = several(pbx_a.address, pbx_b.address, domains=("a.example", "b.example"))
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
        ):
            await call_and_hang_up(alice, "1001")  # to A, with alice's A credentials
            await call_and_hang_up(bob, "1001")  # to B, with bob's B credentials
            await call_and_hang_up(alice, "9 020 1234 5678")  # by prefix to B, with B's trunk credentials
        result_a, result_b = await pbx_a.wait(10), await pbx_b.wait(10)
    finally:
        await pbx_a.stop()
        await pbx_b.stop()
    assert result_a.ok and result_b.ok, (result_a, result_b)
    a, b = result_a.messages, result_b.messages
    # A: alice's call, challenged and answered with her credentials (verifyauth let it through to 200)
    assert a.count("INVITE sip:1001@a.example SIP/2.0") == 2, a  # without, then with credentials
    assert 'Authorization: Digest username="2001"' in a and "+44" not in a
    # B: bob's call with his credentials, then alice's routed one: 9 stripped, 020... made E.164
    assert b.count("INVITE sip:1001@b.example SIP/2.0") == 2, b
    assert b.count("INVITE sip:+442012345678@b.example SIP/2.0") == 2, b
    routed = b[b.index("INVITE sip:+442012345678@b.example") :]
    assert 'Authorization: Digest username="trunk"' in routed, routed  # the trunk's, never alice's
    assert 'From: "ACME Sales" <sip:+442000000000@b.example>' in routed, routed  # caller-ID presentation
    assert 'P-Asserted-Identity: "ACME Sales" <sip:+442000000000@b.example>' in routed  # B is trusted
    assert "SIP/2.0 403" not in a + b  # no credentials were refused


async def test_an_inbound_call_rings_the_tenant_of_the_pbx_it_came_from(tmp_path: Path) -> None:
    require_binary("sipp")
    config = several("127.0.0.1:5", f"{B_HOST}:5", domains=("a.example", "b.example"))
    async with (
        running_gateway(config) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
    ):
        host, port = gateway.sip_address
        for source, rung, quiet in ((B_HOST, bob, alice), ("127.0.0.1", alice, bob)):
            uac = Sipp(tmp_path, "uac_basic_call", f"{host}:{port}", host=source, service="2001")
            run = asyncio.create_task(uac.run())
            incoming = await rung.wait_for("incoming", timeout=10)
            await rung.request({"type": "reject", "call_id": incoming["call_id"], "status": 486})
            await run
            try:
                extra = await quiet.wait_for("incoming", timeout=0.5)
            except WebUserError:
                extra = None
            assert extra is None, f"a call from {source} also rang {extra}"


async def readyz_and_metrics(gateway: Any) -> tuple[dict[str, Any], dict[tuple[str, str], float]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.http_url + "/readyz") as reply:
            body: dict[str, Any] = await reply.json()
        async with http.get(gateway.ops.metrics_url) as reply:
            text = await reply.text()
    samples = {
        (sample.name, sample.labels.get("pbx", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("gateway_pbx")
    }
    return body, samples


async def test_users_register_at_their_own_pbx_and_each_pbx_is_kept_alive(tmp_path: Path) -> None:
    with (
        running_kamailio(tmp_path / "a", users={"2001": "pw-a"}) as kam_a,
        running_kamailio(tmp_path / "b", users={"2001": "pw-b", "trunk": "pw-trunk"}, host=B_HOST) as kam_b,
    ):
        config = several(
            kam_a.address, kam_b.address, domains=("127.0.0.1", B_HOST), register=True, keepalive=0.5
        )
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
        ):
            assert gateway.sip is not None
            # each password is known only to its own registrar: a REGISTER sent to the other one fails
            await gateway.sip.registrations.wait_for("sip:2001@127.0.0.1", RegState.REGISTERED)
            await gateway.sip.registrations.wait_for(f"sip:2001@{B_HOST}", RegState.REGISTERED)
            await gateway.sip.registrations.wait_for(f"sip:trunk@{B_HOST}", RegState.REGISTERED)  # b's own
            assert gateway.sip.pbx_names() == ("default", "b")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while True:
                body, samples = await readyz_and_metrics(gateway)
                if body["checks"]["pbxs"]["state"] == "ok" and samples.get(("gateway_pbxs_reachable", "b")):
                    break
                assert loop.time() < deadline, (body, samples)
                await asyncio.sleep(0.2)
            assert body["checks"]["pbxs"]["detail"] == "b: reachable", body
            assert body["checks"]["pbx"]["state"] == "ok", body  # the `pbx:` entry's check as before
            assert samples[("gateway_pbx_reachable", "")] == 1  # unlabelled, as before: `default`
            assert samples[("gateway_pbxs_reachable", "default")] == 1
            # each page hears its own PBX's state
            assert (await alice.wait_for("pbx", state="reachable"))["type"] == "pbx"
            assert (await bob.wait_for("pbx", state="reachable"))["type"] == "pbx"
            kam_b.stop()  # B goes away: only B shows it
            deadline = loop.time() + 15
            while (await readyz_and_metrics(gateway))[1].get(("gateway_pbxs_reachable", "b")) != 0:
                assert loop.time() < deadline
                await asyncio.sleep(0.3)
            body, samples = await readyz_and_metrics(gateway)
            assert body["checks"]["pbxs"] == {**body["checks"]["pbxs"], "state": "degraded"}, body
            assert "b: unreachable" in body["checks"]["pbxs"]["detail"]
            assert samples[("gateway_pbxs_reachable", "default")] == 1
            assert (await bob.wait_for("pbx", state="unreachable"))["type"] == "pbx"  # bob's page is told
            assert not [e for e in alice.events if e.get("type") == "pbx" and e.get("state") == "unreachable"]


def lamp_users() -> list[dict[str, Any]]:
    """alice (A) and bob (acme: B) share extension 2001 and both watch 2002; voicemail on (the default)."""
    return [{**{k: v for k, v in user.items() if k != "voicemail"}, "watch": ["2002"]} for user in users()]


def lamps_at_two_pbxs(a: str, b: str) -> Config:
    """A (`pbx:`, realm pbx-a.test) and B (`pbxs.b`, realm pbx-b.test, pickup code *9); no keep-alives."""
    base = gateway_config(None)
    listen = [{"transport": "udp", "host": "127.0.0.1", "port": base.sip.listen[0].port}]
    config = gateway_config(
        a,
        domain="a.example",
        sip={"listen": listen, "trusted_sources": ["127.0.0.1/32", f"{B_HOST}/32"]},
        pbxs={
            "b": {
                "address": b,
                "domain": "b.example",
                "realm": "pbx-b.test",
                "pickup_prefix": "*9",
                "keepalive_interval": 0,
            },
        },
        tenants={"acme": {"pbx": "b"}},
        users=lamp_users(),
    )
    pbx = dataclasses.replace(config.pbx, keepalive_interval=0.0, realm="pbx-a.test")
    return dataclasses.replace(config, pbx=pbx)


def lamp_events(user: WebUser) -> list[dict[str, Any]]:
    return [e for e in user.events if e.get("type") in ("contact_state", "voicemail")]


async def test_each_users_lamps_and_mailbox_are_subscribed_at_her_own_pbx(tmp_path: Path) -> None:
    """Two sipp notifiers that challenge every SUBSCRIBE and check the answer (uas_blf_mwi_auth.xml):
    alice's watch and mailbox reach A only, bob's B only, each with the Request-URI in her PBX's domain
    and her own credentials answering her PBX's realm; each NOTIFY reaches its own user's page."""
    require_binary("sipp")
    # rows: user; password; realm challenged; new messages; the watched extension's dialog state
    pbx_a = Sipp(tmp_path, "uas_blf_mwi_auth", calls=2, inf=[["2001", "pw-a", "pbx-a.test", "4", "early"]])
    pbx_b = Sipp(
        tmp_path, "uas_blf_mwi_auth", host=B_HOST, calls=2, inf=[["2001", "pw-b", "pbx-b.test", "7", "early"]]
    )
    await pbx_a.start()
    await pbx_b.start()
    try:
        async with (
            running_gateway(lamps_at_two_pbxs(pbx_a.address, pbx_b.address)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
        ):
            assert (await alice.wait_for("voicemail", timeout=15))["new"] == 4  # A's count
            assert (await bob.wait_for("voicemail", timeout=15))["new"] == 7  # B's count
            ringing = await alice.wait_for("contact_state", number="2002", state="ringing", timeout=15)
            assert ringing["pickup"] == "**2002", ringing  # A's pickup_prefix (the default)
            ringing = await bob.wait_for("contact_state", number="2002", state="ringing", timeout=15)
            assert ringing["pickup"] == "*92002", ringing  # B's own pickup_prefix
            await asyncio.sleep(0.3)
            assert [e.get("new") for e in lamp_events(alice) if e["type"] == "voicemail"] == [4], alice.events
            assert [e.get("new") for e in lamp_events(bob) if e["type"] == "voicemail"] == [7], bob.events
            assert "*9" not in str(lamp_events(alice)) and "**" not in str(lamp_events(bob))
        result_a, result_b = await pbx_a.wait(10), await pbx_b.wait(10)  # the unsubscribes end each call
    finally:
        await pbx_a.stop()
        await pbx_b.stop()
    assert result_a.ok and result_b.ok, (result_a, result_b)
    for result, domain, realm in (
        (result_a, "a.example", "pbx-a.test"),
        (result_b, "b.example", "pbx-b.test"),
    ):
        messages = result.messages
        # each subscription: unauthenticated, with credentials (verifyauth let it through), unsubscribed
        assert result.count(f"SUBSCRIBE sip:2002@{domain} SIP/2.0") == 2, messages
        assert result.count(f"SUBSCRIBE sip:2001@{domain} SIP/2.0") == 2, messages
        assert result.count("SUBSCRIBE") == 6, messages
        assert f'Authorization: Digest username="2001", realm="{realm}"' in messages, messages
        assert "SIP/2.0 403" not in messages  # no credentials were refused
        assert result.logs.count("unsubscribed: Expires 0") == 2, result.logs
    assert "b.example" not in result_a.messages and "a.example" not in result_b.messages
