"""SIP over TLS toward the PBX (RFC 3261 §26, RFC 5922) with a real Kamailio and its TLS module: the
gateway registers alice over TLS, a web user calls the desk phone (registered at Kamailio over UDP)
and the phone calls her back, audio both ways; a Kamailio whose certificate is not signed by the CA the
gateway trusts is refused: no registration, and the web user's call ends saying the PBX's certificate
was rejected, without any plain-TCP or UDP fallback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from gateway.devcert import DevCertificates, make_dev_certificates
from peers.demo import require_desk_phone
from peers.kamailio import running_kamailio
from peers.phone import DeskPhone
from peers.ports import free_port
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from sipcore import RegState
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until


def tls_gateway(pbx: str, ours: DevCertificates, trusted: DevCertificates) -> Any:
    """A gateway registering alice (1001/pw1001) at `pbx` over TLS, trusting `trusted`'s CA."""
    sip = {
        "listen": [
            {"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)},
            {"transport": "tls", "host": "127.0.0.1", "port": free_port()},
        ],
        "trusted_sources": ["127.0.0.1/32"],
        "tls": {
            "certificate": str(ours.certificate),
            "private_key": str(ours.private_key),
            "ca_file": str(trusted.ca),
        },
    }
    return gateway_config(pbx, register=True, alice_auth=("1001", "pw1001"), pbx_transport="tls", sip=sip)


async def test_register_and_calls_both_ways_over_tls_through_kamailio(tmp_path: Path) -> None:
    require_desk_phone()
    certificates = make_dev_certificates(tmp_path / "pki", ["127.0.0.1"])
    tls = (certificates.certificate, certificates.private_key)
    with running_kamailio(tmp_path, users={"1001": "pw1001"}, tls=tls) as kamailio:
        async with (
            DeskPhone(
                tmp_path, user="2000", tone=440, register=kamailio.registrar, password=kamailio.users["2000"]
            ) as phone,
            running_gateway(tls_gateway(kamailio.tls_address, certificates, certificates)) as gateway,
        ):
            await phone.wait_for("registered", code=200)
            assert gateway.sip is not None
            aor = "sip:1001@127.0.0.1"
            await gateway.sip.registrations.wait_for(aor, RegState.REGISTERED)
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                peer = WebPeer(freq=1000)
                try:  # web -> phone: INVITE over TLS to Kamailio, UDP on to the phone
                    call_id = await alice.call("2000", await peer.offer())
                    await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
                    incoming = await phone.wait_for("incoming")
                    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                    await alice.request({"type": "hangup", "call_id": call_id})
                    await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                finally:
                    await peer.close()
                peer = WebPeer(freq=1000)
                try:  # phone -> web: Kamailio reaches the gateway's TLS contact
                    number = await phone.call(kamailio.aor("1001"))
                    ringing = await alice.wait_for("incoming")
                    await alice.answer(ringing["call_id"], peer.answer)
                    await phone.wait_for("state", call=number, state="CONFIRMED")
                    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                    await phone.hangup(number)
                    await alice.wait_for("ended", call_id=ringing["call_id"])
                finally:
                    await peer.close()
    log = kamailio.log()
    assert "REGISTER" in log and "tls" in log.lower()


async def test_a_pbx_certificate_from_an_untrusted_ca_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    ours = make_dev_certificates(tmp_path / "ours", ["127.0.0.1"])
    stranger = make_dev_certificates(tmp_path / "stranger", ["127.0.0.1"])  # another CA
    tls = (stranger.certificate, stranger.private_key)
    with running_kamailio(tmp_path, users={"1001": "pw1001"}, tls=tls) as kamailio:
        async with running_gateway(tls_gateway(kamailio.tls_address, ours, ours)) as gateway:
            assert gateway.sip is not None
            aor = "sip:1001@127.0.0.1"
            await wait_until(lambda: gateway.sip.registration_states()[aor] != "registering", 10)
            assert gateway.sip.registration_states()[aor] != "registered"
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                peer = WebPeer(freq=1000)
                try:
                    call_id = await alice.call("2000", await peer.offer())
                    ended = await alice.wait_for("ended", call_id=call_id, timeout=15)
                finally:
                    await peer.close()
            assert "certificate rejected" in ended["message"].lower(), ended
            await asyncio.sleep(0.2)
    assert "INVITE" not in kamailio.log(), "the INVITE reached the PBX over something else"
