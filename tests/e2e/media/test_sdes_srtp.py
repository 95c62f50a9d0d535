"""SDES-SRTP on the SIP leg (RFC 4568, RFC 3711) with a real desk phone (pjsua2) that insists on it:
the web user calls the phone and the phone calls her, audio both ways by tone and DTMF over SRTP, with
RTP/SAVP (media.sip_srtp: required, a phone demanding SRTP) and with best-effort RTP/AVP + a=crypto
(optional on both sides, RFC 8643). The gateway offers a=crypto (media.sdes_over_plain_sip for this
loopback test; by default only over TLS) and answers the phone's a=crypto with its own key; a phone demanding SRTP of a gateway with
media.sip_srtp: off is refused 488 before anyone rings. With the extension built, the native fast lane
carries both calls (the SIP leg's SRTP in the engine)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from gateway.devcert import make_dev_certificates
from gateway.media import fastlane
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone


async def calls_both_ways(phone: DeskPhone, alice: WebUser, phone_dials: str, digit: str) -> None:
    """Alice calls the phone (tone heard both ways, a DTMF digit it receives, she hangs up), then the phone
    dials ``phone_dials`` to reach her (tone both ways, the phone hangs up)."""
    peer = WebPeer(freq=1000)
    try:  # web -> phone: our offer's a=crypto, the phone's answer its key
        call_id = await alice.call("2000", await peer.offer())
        await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
        incoming = await phone.wait_for("incoming")
        await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
        await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
        await asyncio.sleep(1.0)
        await alice.request({"type": "dtmf", "call_id": call_id, "digits": digit})
        await phone.wait_for("dtmf", digit=digit)
        await alice.request({"type": "hangup", "call_id": call_id})
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        assert wav_has_tone(await phone.wait_for_recording(incoming["call"]), 1000)
    finally:
        await peer.close()
    peer = WebPeer(freq=1000)
    try:  # phone -> web: the phone's offer with a=crypto, answered with ours
        number = await phone.call(phone_dials)
        ringing = await alice.wait_for("incoming")
        await alice.answer(ringing["call_id"], peer.answer)
        await phone.wait_for("state", call=number, state="CONFIRMED")
        peer.clear()
        await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
        await asyncio.sleep(1.0)
        await phone.hangup(number)
        await alice.wait_for("ended", call_id=ringing["call_id"])
        assert wav_has_tone(await phone.wait_for_recording(number), 1000)
    finally:
        await peer.close()


@pytest.mark.parametrize(
    ("srtp", "phone_srtp"),
    [("required", "mandatory"), ("optional", "optional")],  # RTP/SAVP; best effort RTP/AVP + a=crypto
)
async def test_calls_both_ways_over_sdes_srtp(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, srtp: str, phone_srtp: str
) -> None:
    require_desk_phone()
    media = {"rtp_ports": {"start": 31000, "end": 31199}, "sip_srtp": srtp, "sdes_over_plain_sip": True}
    caplog.set_level(logging.DEBUG, logger="gateway.media")
    async with (
        DeskPhone(tmp_path, user="2000", tone=440, extra_args=(f"--srtp={phone_srtp}",)) as phone,
        running_gateway(gateway_config(phone.address, media=media)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        await calls_both_ways(phone, alice, f"sip:1001@{host}:{port}", "7")
    srtp_on = [r for r in caplog.records if "SRTP on (AES_CM_128_HMAC_SHA1_80)" in r.getMessage()]
    assert len(srtp_on) >= 2, "SRTP was not used on both calls"
    if fastlane.available():  # the native engine carried both calls, SRTP on the SIP leg included
        linked = [m for m in caplog.messages if "fast lane linked" in m and "SIP leg SRTP" in m]
        assert len(linked) >= 2, "the fast lane did not link the SRTP calls"


async def test_a_phone_requiring_srtp_is_refused_when_srtp_is_off(tmp_path: Path) -> None:
    require_desk_phone()
    media = {"rtp_ports": {"start": 31200, "end": 31399}, "sip_srtp": "off"}
    async with (
        DeskPhone(tmp_path, user="2000", extra_args=("--srtp=mandatory",)) as phone,
        running_gateway(gateway_config(phone.address, media=media)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        number = await phone.call(f"sip:1001@{host}:{port}")
        state = await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert state["code"] == 488, state
        await asyncio.sleep(0.2)
        assert [e for e in alice.events if e.get("type") == "incoming"] == []


async def test_sdes_srtp_over_tls_with_the_desk_phone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The deployment SDES is meant for (RFC 4568 §8.3: keys only over a secure channel): the desk phone
    speaks SIP over TLS only (its certificate and the gateway's from the dev CA, each verified by the
    other side) and insists on SRTP; the gateway, with no sdes_over_plain_sip, offers a=crypto because the
    hop is TLS. Calls both ways, tone heard on each side, DTMF."""
    require_desk_phone()
    pki = make_dev_certificates(tmp_path / "pki", ["127.0.0.1"])
    phone_tls, gateway_tls = free_port(), free_port()
    tls_args = (
        "--srtp=mandatory",
        f"--tls-port={phone_tls}",
        f"--tls-cert={pki.certificate}",
        f"--tls-key={pki.private_key}",
        f"--tls-ca={pki.ca}",
    )
    sip = {
        "listen": [
            {"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)},
            {"transport": "tls", "host": "127.0.0.1", "port": gateway_tls},
        ],
        "trusted_sources": ["127.0.0.1/32"],
        "tls": {
            "certificate": str(pki.certificate),
            "private_key": str(pki.private_key),
            "ca_file": str(pki.ca),
        },
    }
    media = {"rtp_ports": {"start": 31400, "end": 31599}, "sip_srtp": "required"}
    caplog.set_level(logging.DEBUG, logger="gateway.media")
    async with (
        DeskPhone(tmp_path, user="2000", tone=440, extra_args=tls_args) as phone,
        running_gateway(
            gateway_config(f"127.0.0.1:{phone_tls}", pbx_transport="tls", sip=sip, media=media)
        ) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        await calls_both_ways(phone, alice, f"sip:1001@127.0.0.1:{gateway_tls};transport=tls", "3")
    srtp_on = [r for r in caplog.records if "SRTP on (AES_CM_128_HMAC_SHA1_80)" in r.getMessage()]
    assert len(srtp_on) >= 2, "SRTP was not used on both calls"
