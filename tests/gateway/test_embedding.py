"""Embedding (docs/embedding.md): `Gateway.add_record_sink` hands each call's record to the program's
own function; one that raises costs neither the other sinks nor the gateway (logged, with the call)."""

from __future__ import annotations

import contextlib
import logging
import socket

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from gateway.ops.records import CallRecord
from gateway.signaling.client import WebRtcClient, WebRtcClientError
from peers.ports import free_port
from tests.e2e.harness import gateway_config, running_gateway, wait_until

KEY = "embedding-test-key-0123456789"


async def test_every_record_sink_gets_the_record_though_one_raises(caplog: pytest.LogCaptureFixture) -> None:
    nobody = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"  # the PBX refuses (ICMP): the call ends at once
    config = gateway_config(nobody, alice_extra={"api_keys": [{"key": KEY, "name": "embedding"}]})
    records: list[CallRecord] = []

    def broken(record: CallRecord) -> None:
        raise RuntimeError("the program's own bug")

    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    try:
        async with running_gateway(config) as gateway:
            gateway.add_record_sink(broken)
            gateway.add_record_sink(records.append)
            await pc.setLocalDescription(await pc.createOffer())
            async with WebRtcClient(gateway.http_url, api_key=KEY) as client:
                # (refused or answered: the record is what this test is about)
                with contextlib.suppress(WebRtcClientError):
                    await client.send_offer(pc.localDescription.sdp, "embedded-1", {"dial": "2000"})
                await wait_until(lambda: bool(records), timeout=15)
    finally:
        await pc.close()
    (record,) = records
    assert record.direction == "outbound" and record.to_uri is not None and "2000" in record.to_uri
    failed = [r for r in caplog.records if r.levelno == logging.ERROR and "record sink" in r.getMessage()]
    assert len(failed) == 1 and record.call_id in failed[0].getMessage()
