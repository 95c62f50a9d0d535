"""SIPREC (RFC 7866) to a recording server, with real peers: a pjsua2 desk phone (440 Hz) called by an
aiortc web user (1000 Hz) through a gateway whose `recording` is `always` with `siprec` set.

The SRS is sipp (peers/scenarios/uas_siprec.xml): it checks the INVITE is a recording session
(Require: siprec, +sip.src, multipart/mixed with two labelled send-only PCMU m-lines and the RFC 7865
metadata) and answers with the ports of this test's own UDP sockets, which receive the RTP: the web
user's 1 kHz on label 1, the phone's 440 Hz on label 2; a pause sends no RTP, a resume restarts it with
the marker bit; the hang-up sends BYE (sipp then ends, passed); the sidecar notes the session. An
unreachable SRS (a closed port: ICMP port unreachable) or one that sends its own BYE
(uas_siprec_bye.xml) leaves the call and its own file untouched; the recording's state says why."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.app import Gateway
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


def _counts(sinks: list[_RtpSink]) -> list[int]:
    return [len(s.payloads) for s in sinks]


@asynccontextmanager
async def _srs_sockets() -> AsyncIterator[tuple[list[_RtpSink], dict[str, str]]]:
    """The SRS's two RTP sinks, and the sipp keys (port1, port2) that put them in its answer."""
    loop = asyncio.get_running_loop()
    transports, sinks = [], []
    try:
        for _ in range(2):
            transport, sink = await loop.create_datagram_endpoint(_RtpSink, local_addr=("127.0.0.1", 0))
            transports.append(transport)
            sinks.append(sink)
        ports = [str(t.get_extra_info("sockname")[1]) for t in transports]
        yield sinks, {"port1": ports[0], "port2": ports[1]}
    finally:
        for transport in transports:
            transport.close()


@dataclass
class _Call:
    gateway: Gateway
    peer: WebPeer
    call_id: str

    async def recording(self, action: str) -> dict[str, Any]:
        """The admin API's `POST .../recording {action}`: its answer (200 asserted)."""
        url = f"{self.gateway.http_url}/admin/api/calls/{self.call_id}/recording"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json={"action": action}, headers=ADMIN) as reply,
        ):
            info: dict[str, Any] = await reply.json()
        assert reply.status == 200, info
        return info


@asynccontextmanager
async def _recorded_call(
    phone: DeskPhone, server: str, directory: Path, rtp_start: int
) -> AsyncIterator[_Call]:
    """A gateway recording `always` with SIPREC to ``server``; the web user's answered call to the phone,
    hung up when the block ends."""
    recording = {
        "mode": "always",
        "directory": str(directory),
        "siprec": {"server": server, "transport": "udp"},
    }
    config = admin_config(phone, [], rtp_start, recording=recording)
    async with (
        running_gateway(config) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=WEB_TONE)
        try:
            call_id, _ = await connect(alice, peer, phone)
            told = await alice.wait_for("recording", call_id=call_id)
            assert told["state"] == "recording", told
            yield _Call(gateway, peer, call_id)
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()


async def _sidecar(directory: Path) -> dict[str, Any]:
    [path] = list(directory.rglob("*.wav"))  # the file recording is still made
    assert path.stat().st_size > 8000
    sidecar = path.with_suffix(".json")
    await wait_until(sidecar.exists, timeout=10)
    return dict(json.loads(sidecar.read_text()))


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
    directory = tmp_path / "recordings"
    async with (
        _srs_sockets() as (sinks, keys),
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        Sipp(tmp_path, "uas_siprec", keys=keys) as srs,
    ):
        async with _recorded_call(phone, srs.uri("srs"), directory, 38800) as call:
            await wait_until(lambda: all(n >= 100 for n in _counts(sinks)), timeout=15)
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
            assert (await call.recording("pause"))["siprec"] == "recording"
            await asyncio.sleep(0.3)
            paused = _counts(sinks)
            await asyncio.sleep(1.0)
            assert _counts(sinks) == paused, "RTP while paused"
            assert (await call.recording("resume"))["siprec"] == "recording"
            await wait_until(lambda: all(n >= p + 50 for n, p in zip(_counts(sinks), paused, strict=True)))
            assert [s.marked for s in sinks] == [2, 2]
        result = await srs.wait(timeout=10)  # its BYE came: sipp's one call passed
        assert result.ok, result
        received = _counts(sinks)
        await asyncio.sleep(0.5)
        assert _counts(sinks) == received, "RTP after the BYE"
    noted = (await _sidecar(directory))["siprec"]
    assert noted["server"] == srs.uri("srs") and noted["state"] == "answered", noted
    assert noted["sip_call_id"] in (srs.workdir / "messages.log").read_text(), noted


async def test_an_unreachable_srs_never_touches_the_call(tmp_path: Path) -> None:
    require_desk_phone()
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody there: the INVITE gets an ICMP port unreachable
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        _recorded_call(phone, f"sip:srs@127.0.0.1:{port}", tmp_path / "rec", 39000) as call,
    ):
        await wait_until(lambda: call.peer.heard(PHONE_TONE, last=1.0), timeout=10)
        await asyncio.sleep(2.0)
        info = await call.recording("stop")
        assert info["state"] == "stopped" and str(info["siprec"]).startswith("failed: "), info
        assert call.peer.heard(PHONE_TONE, last=1.0), "the call lost its audio"
    assert (await _sidecar(tmp_path / "rec"))["siprec"]["state"].startswith("failed: ")


async def test_a_bye_from_the_srs_ends_its_session_only(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        _srs_sockets() as (sinks, keys),
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        Sipp(tmp_path, "uas_siprec_bye", keys=keys, duration_ms=1500) as srs,
        _recorded_call(phone, srs.uri(), tmp_path / "r", 39200) as call,
    ):
        result = await srs.wait(timeout=15)  # its BYE was answered 200
        assert result.ok, result
        assert all(n > 20 for n in _counts(sinks)), "no RTP before the server's BYE"
        await asyncio.sleep(0.3)
        after_bye = _counts(sinks)
        await asyncio.sleep(1.0)
        assert _counts(sinks) == after_bye, "RTP after the server's BYE"
        assert call.peer.heard(PHONE_TONE, last=1.0), "the call lost its audio"
        info = await call.recording("stop")
        assert info["state"] == "stopped" and info["siprec"] == "ended by the server", info
