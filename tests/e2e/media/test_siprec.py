"""SIPREC (RFC 7866) to a recording server, with real peers: a pjsua2 desk phone (440 Hz) called by an
aiortc web user (1000 Hz) through a gateway whose `recording` is `always` with `siprec` set.

The SRS is sipp (peers/scenarios/uas_siprec.xml): it checks the INVITE is a recording session
(Require: siprec, +sip.src, multipart/mixed with two labelled send-only PCMU m-lines and the RFC 7865
metadata) and answers with the ports of this test's own UDP sockets, which receive the RTP: the web
user's 1 kHz on label 1, the phone's 440 Hz on label 2. The hang-up sends BYE (sipp then ends, passed).
An unreachable SRS (a closed port: ICMP port unreachable) leaves the call and its own file untouched;
the recording's state says why (`siprec`)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp

from gateway.sip.useragent.siprec import RecordedCall, answered_streams, metadata, multipart, offer_sdp
from peers.audio import detect_tone, ulaw_decode
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, running_gateway, wait_until
from tests.e2e.ops.test_admin_api import ADMIN, admin_config, connect

WEB_TONE, PHONE_TONE = 1000.0, 440.0


class _RtpSink(asyncio.DatagramProtocol):
    """One stream's RTP as the SRS gets it: PCMU payloads (the 12-byte header checked and dropped)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.payload_types: set[int] = set()
        self.marked = 0  # packets with the marker bit: one per talkspurt (the start, each resume)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if len(data) > 12 and data[0] >> 6 == 2:
            self.payload_types.add(data[1] & 0x7F)
            self.marked += data[1] >> 7
            self.payloads.append(data[12:])

    def samples(self, seconds: float) -> list[int]:
        wanted = int(seconds * 50)
        return list(ulaw_decode(b"".join(self.payloads[-wanted:])))


async def _sinks() -> tuple[list[asyncio.DatagramTransport], list[_RtpSink], list[int]]:
    loop = asyncio.get_running_loop()
    transports, sinks, ports = [], [], []
    for _ in range(2):
        transport, sink = await loop.create_datagram_endpoint(_RtpSink, local_addr=("127.0.0.1", 0))
        transports.append(transport)
        sinks.append(sink)
        ports.append(int(transport.get_extra_info("sockname")[1]))
    return transports, sinks, ports


def test_offer_metadata_and_answer_parsing() -> None:
    offer = offer_sdp("192.0.2.1", (4000, 4002))
    assert offer.count("a=sendonly") == 2 and "a=label:1" in offer and "a=label:2" in offer
    xml = metadata(RecordedCall("c-1", ("abc@h",), "sip:alice@example.com", "sip:2000@pbx"))
    assert "<callID>c-1</callID>" in xml and '<nameID aor="sip:alice@example.com"/>' in xml
    kind, body = multipart((("application/sdp", offer), ("application/rs-metadata+xml", xml)))
    boundary = kind.split("boundary=")[1]
    assert body.count(f"--{boundary}\r\n") == 2 and body.endswith(f"--{boundary}--\r\n")
    answer = offer.replace("sendonly", "recvonly").replace("m=audio 4000", "m=audio 0")
    assert answered_streams(answer) == (None, ("192.0.2.1", 4002))


async def test_siprec_streams_both_legs_to_the_srs_and_byes_at_the_end(tmp_path: Path) -> None:
    require_desk_phone()
    transports, sinks, ports = await _sinks()
    try:
        async with (
            DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
            Sipp(tmp_path, "uas_siprec", keys={"port1": str(ports[0]), "port2": str(ports[1])}) as srs,
        ):
            recording = {
                "mode": "always",
                "directory": str(tmp_path / "recordings"),
                "siprec": {"server": srs.uri("srs"), "transport": "udp"},
            }
            config = admin_config(phone, [], 38800, recording=recording)
            async with (
                running_gateway(config) as gateway,
                WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            ):
                peer = WebPeer(freq=WEB_TONE)
                try:
                    call_id, _ = await connect(alice, peer, phone)
                    told = await alice.wait_for("recording", call_id=call_id)
                    assert told["state"] == "recording", told
                    await wait_until(lambda: all(len(s.payloads) >= 100 for s in sinks), timeout=15)
                    await asyncio.sleep(1.0)
                    web, sip = sinks[0].samples(1.5), sinks[1].samples(1.5)
                    assert sinks[0].payload_types == sinks[1].payload_types == {0}
                    assert all(len(p) == 160 for s in sinks for p in s.payloads), "not 20 ms PCMU frames"
                    assert detect_tone(web, 8000, WEB_TONE), "no 1 kHz from the web user on label 1"
                    assert not detect_tone(web, 8000, PHONE_TONE, threshold=0.2)
                    assert detect_tone(sip, 8000, PHONE_TONE), "no 440 Hz from the phone on label 2"
                    assert not detect_tone(sip, 8000, WEB_TONE, threshold=0.2)
                    assert [s.marked for s in sinks] == [1, 1]

                    # a pause sends nothing (no re-INVITE); a resume starts a talkspurt (marker bit)
                    url = f"{gateway.http_url}/admin/api/calls/{call_id}/recording"
                    async with aiohttp.ClientSession() as http:
                        for action in ("pause", "resume"):
                            async with http.post(url, json={"action": action}, headers=ADMIN) as reply:
                                info = await reply.json()
                                assert reply.status == 200 and info["siprec"] == "recording", info
                            if action == "pause":
                                await asyncio.sleep(0.3)
                                paused = [len(s.payloads) for s in sinks]
                                await asyncio.sleep(1.0)
                                assert [len(s.payloads) for s in sinks] == paused, "RTP while paused"
                    await wait_until(
                        lambda: all(len(s.payloads) >= n + 50 for s, n in zip(sinks, paused, strict=True)),
                        timeout=10,
                    )
                    assert [s.marked for s in sinks] == [2, 2]
                    await alice.request({"type": "hangup", "call_id": call_id})
                    await alice.wait_for("ended", call_id=call_id)
                finally:
                    await peer.close()
                result = await srs.wait(timeout=10)  # its BYE came: sipp's one call passed
                assert result.ok, result
                received = [len(s.payloads) for s in sinks]
                await asyncio.sleep(0.5)
                assert [len(s.payloads) for s in sinks] == received, "RTP after the BYE"
        [path] = list((tmp_path / "recordings").rglob("*.wav"))  # the file recording is still made
        sidecar = path.with_suffix(".json")
        await wait_until(sidecar.exists, timeout=10)
        noted = json.loads(sidecar.read_text())["siprec"]
        assert noted["server"] == srs.uri("srs") and noted["state"] == "answered", noted
        assert noted["sip_call_id"] in (srs.workdir / "messages.log").read_text(), noted
    finally:
        for transport in transports:
            transport.close()


async def test_an_unreachable_srs_never_touches_the_call(tmp_path: Path) -> None:
    require_desk_phone()
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody there: the INVITE gets an ICMP port unreachable
    async with DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone:
        server = f"sip:srs@127.0.0.1:{port}"
        recording = {"mode": "always", "directory": str(tmp_path / "rec"), "siprec": {"server": server}}
        config = admin_config(phone, [], 39000, recording=recording)
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        ):
            peer = WebPeer(freq=WEB_TONE)
            try:
                call_id, _ = await connect(alice, peer, phone)
                told = await alice.wait_for("recording", call_id=call_id)
                assert told["state"] == "recording", told
                await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)
                await asyncio.sleep(2.0)
                url = f"{gateway.http_url}/admin/api/calls/{call_id}/recording"
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(url, json={"action": "stop"}, headers=ADMIN) as reply,
                ):
                    info = await reply.json()
                assert reply.status == 200 and info["state"] == "stopped", info
                assert str(info["siprec"]).startswith("failed: "), info
                assert peer.heard(PHONE_TONE, last=1.0), "the call lost its audio"
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
            finally:
                await peer.close()
        [path] = list((tmp_path / "rec").rglob("*.wav"))
        assert path.stat().st_size > 8000
        sidecar = path.with_suffix(".json")
        await wait_until(sidecar.exists, timeout=10)
        assert json.loads(sidecar.read_text())["siprec"]["state"].startswith("failed: ")
