"""Per-call traces end to end (issue 36 item 6; docs/operations.md "Per-call traces"): a call between a real
desk phone (pjsua2) and the aiortc browser stand-in, then the admin downloads its trace. The text has
both legs in order (the INVITE, 200 OK, ACK and BYE with the SIP SDP; the browser's offer and the
gateway's answer; the decisions), the pcap is read by tshark (Debian `tshark`) with the real ports, and
a real HEP receiver (sngrep, Debian `sngrep`, checking the HEP password) got the call's INVITE."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.config.trace import TraceSection
from peers.binaries import require_binary
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.websip.test_sip_websocket import SipCall, realm_of, sip_socket, websocket_config

ADMIN_TOKEN = "trace-admin-token-for-tests"
HEP_PASSWORD = "hep-secret"


@contextlib.asynccontextmanager
async def sngrep_hep(tmp_path: Path, port: int) -> AsyncIterator[Path]:
    """sngrep listening for HEPv3 on 127.0.0.1:`port` (password checked), writing what it got to a pcap."""
    sngrep = require_binary("sngrep")
    config = tmp_path / "sngreprc"
    config.write_text(f"set eep.listen.pass {HEP_PASSWORD}\n")
    out = tmp_path / "hep.pcap"
    process = await asyncio.create_subprocess_exec(
        sngrep, "-N", "-q", "-F", "-f", str(config), "-L", f"udp:127.0.0.1:{port}", "-O", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await asyncio.sleep(0.5)  # its socket bound
        assert process.returncode is None, await process.stderr.read() if process.stderr else b""
        yield out
    finally:
        if process.returncode is None:
            process.terminate()  # it writes the pcap out as it goes, and closes it on SIGTERM
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


def tshark_sip(path: Path, *ports: int) -> list[list[str]]:
    """(src port, dst port, method, status, Call-ID) of each SIP packet tshark finds in `path`."""
    decode = [arg for port in ports for arg in ("-d", f"udp.port=={port},sip")]
    fields = ["udp.srcport", "udp.dstport", "sip.Method", "sip.Status-Code", "sip.Call-ID"]
    result = subprocess.run(
        [require_binary("tshark"), "-r", str(path), "-n", *decode, "-Y", "sip", "-T", "fields",
         "-E", "separator=|", *(arg for name in fields for arg in ("-e", name))],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [line.split("|") for line in result.stdout.splitlines()]


async def test_a_calls_trace_as_text_pcap_and_hep(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_desk_phone()
    caplog.set_level(logging.INFO)  # the gateway's default log level (logging.level): its decisions
    hep_port = free_port(socket.SOCK_DGRAM)
    trace = {
        "enabled": True,
        "hep": {"address": f"127.0.0.1:{hep_port}", "agent_id": 7, "password": HEP_PASSWORD},
    }
    async with (
        sngrep_hep(tmp_path, hep_port) as hep_pcap,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address, trace=trace, admin={"token": ADMIN_TOKEN})) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        aiohttp.ClientSession() as http,
    ):
        peer = WebPeer(1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
            await wait_until(lambda: peer.heard(440, last=1.0))
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
            await phone.wait_for("state", state="DISCONNECTED")
        finally:
            await peer.close()
        url = f"{gateway.http_url}/admin/api/calls/{call_id}/trace"
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with http.get(url) as reply:
            assert reply.status == 401, await reply.text()
        async with http.get(url.replace(call_id, "no-such-call"), headers=admin) as reply:
            assert reply.status == 404 and (await reply.json())["reason"] == "not_found"
        async with http.get(url.replace(call_id, "bad!id"), headers=admin) as reply:
            assert reply.status == 400 and (await reply.json())["field"] == "call_id"

        async def text() -> str:
            async with http.get(url, headers=admin) as reply:
                assert reply.status == 200, await reply.text()
                return await reply.text()

        for _ in range(50):  # the BYE's 200 comes in after `ended`
            body = await text()
            if "SIP/2.0 200 OK" in body.split("BYE sip:", 1)[-1]:
                break
            await asyncio.sleep(0.1)
        async with http.get(url + ".pcap", headers=admin) as reply:
            assert reply.status == 200 and reply.content_type == "application/vnd.tcpdump.pcap"
            (tmp_path / "call.pcap").write_bytes(await reply.read())
    (tmp_path / "call.txt").write_text(body)
    # the text: both legs in time order, both SDPs, the decisions
    headings = [line for line in body.splitlines() if line[:2] == "20"]
    firsts = [line for line in body.splitlines() if line.startswith("    ") and "SIP/2.0" in line]
    assert f"call {call_id}" in body
    order = ["INVITE sip:2000", "SIP/2.0 200 OK", "ACK sip:", "BYE sip:"]
    positions = [next(i for i, line in enumerate(firsts) if marker in line) for marker in order]
    assert positions == sorted(positions), firsts
    assert "RTP/AVP" in body and "UDP/TLS/RTP/SAVPF" in body  # the SIP leg's SDP and the browser's
    assert any(" web in json WebDial" in line for line in headings), headings
    assert any(" web out json connected" in line for line in headings), headings
    assert any(" gateway INFO " in line and "connected" in line for line in headings), headings
    assert any(f" sip out UDP {gateway.sip_address[0]}:{gateway.sip_address[1]} -> {phone.address}" in line
               for line in headings), headings  # fmt: skip
    # the pcap, read by tshark: the SIP flow between the gateway's and the phone's real ports
    gateway_port, phone_port = gateway.sip_address[1], int(phone.address.rsplit(":", 1)[1])
    packets = tshark_sip(tmp_path / "call.pcap", gateway_port, phone_port)
    flow = [(int(p[0]), int(p[1]), p[2] or p[3]) for p in packets]
    assert (gateway_port, phone_port, "INVITE") in flow, packets
    assert (phone_port, gateway_port, "200") in flow, packets
    assert (gateway_port, phone_port, "ACK") in flow and (gateway_port, phone_port, "BYE") in flow, packets
    assert len({p[4] for p in packets}) == 1, packets  # one SIP Call-ID: this call's
    # HEP: sngrep received the call's INVITE (with the password it checks)
    hep = tshark_sip(hep_pcap, gateway_port, phone_port)
    assert any(p[2] == "INVITE" and p[4] == packets[0][4] for p in hep), hep


async def test_a_sip_websocket_calls_trace_has_the_browsers_sip_too(tmp_path: Path) -> None:
    """The sip_ws dialect: the browser's own SIP (over its WebSocket) is the trace's web leg, beside the
    desk phone's leg; both are in the pcap, each with its real ports."""
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000") as phone:
        config = dataclasses.replace(websocket_config(phone.address), trace=TraceSection(enabled=True))
        async with running_gateway(config) as gateway, sip_socket(gateway) as sip:
            realm = realm_of(gateway)
            peer = WebPeer(1000)
            try:
                call = SipCall(sip, f"sip:2000@{realm}", f"sip:alice@{realm}")
                final = await call.invite(await peer.offer(), realm)
                assert final.startswith("SIP/2.0 200 "), final
                await call.ack(final, call.remote_target, call.to_tag)
                await peer.accept(final.split("\r\n\r\n", 1)[1])
                incoming = await phone.wait_for("incoming")
                await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                reply = await call.bye()
                assert reply.startswith("SIP/2.0 200 "), reply
                await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            finally:
                await peer.close()
            tracing = gateway.ops.tracing
            assert tracing is not None
            await wait_until(lambda: tracing.store.call_of(sip.call_id) is not None)
            call_id = tracing.store.call_of(sip.call_id)
            assert call_id is not None
            await wait_until(
                lambda: "SIP/2.0 200 OK" in (tracing.text(call_id) or "").rsplit("BYE sip:", 1)[-1]
            )
            text, pcap = tracing.text(call_id), tracing.pcap(call_id)
            http_port, sip_port = gateway.config.http.port, gateway.sip_address[1]
    assert text is not None and pcap is not None
    headings = [line for line in text.splitlines() if line[:2] == "20"]
    assert any(" web in WS " in line for line in headings), headings  # the browser's INVITE, ACK, BYE
    assert any(" sip out UDP " in line for line in headings), headings  # the phone's leg
    (tmp_path / "ws.pcap").write_bytes(pcap)
    phone_port = int(phone.address.rsplit(":", 1)[1])
    packets = tshark_sip(tmp_path / "ws.pcap", http_port, phone_port, sip_port)
    methods = {(p[2], p[4]) for p in packets if p[2]}
    assert ("INVITE", sip.call_id) in methods and ("BYE", sip.call_id) in methods, packets
    assert any(m == "INVITE" and c != sip.call_id for m, c in methods), packets  # the phone leg's
    assert any(int(p[1]) == http_port and p[2] == "INVITE" for p in packets), packets  # to the WS listener
