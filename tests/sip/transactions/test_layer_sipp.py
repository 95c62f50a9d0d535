"""The transaction layer against real peers: sipp (Debian sip-tester) as UAC over UDP and TCP, as
UAS for our client transactions, a CANCEL scenario; and calls through a lossy UDP relay."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.sip.transactions.layer import TransactionLayer
from gateway.sip.transactions.policy import AcceptAll
from peers.binaries import require_binary
from peers.ports import free_port
from peers.sipp import Sipp
from sipcore.location.routing import Target
from sipcore.transaction import TimerConfig
from tests.sip.layer_ua import TestUA
from tests.sip.lossy import LossyRelay

DEFAULT_TIMERS = TimerConfig()


@contextlib.asynccontextmanager
async def running_layer(
    timers: TimerConfig = DEFAULT_TIMERS, *, ring: bool = True, answer: bool = True
) -> AsyncIterator[tuple[TransactionLayer, TestUA]]:
    tu = TestUA(ring=ring, answer=answer)
    layer = TransactionLayer(tu, policy=AcceptAll(), timers=timers, user_agent="test-layer")
    tu.layer = layer
    try:
        tcp = await layer.listen("tcp", "127.0.0.1", 0)
        await layer.listen("udp", "127.0.0.1", tcp.local[1])
        yield layer, tu
    finally:
        await layer.close()


def port_of(layer: TransactionLayer) -> int:
    return layer.transports[0].local[1]


async def run_sipp(workdir: Path, *args: str, timeout: float = 30) -> int:
    """sipp in the foreground with our own arguments (the harness assumes UDP); killed by PID
    on timeout."""
    workdir.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        "sipp", *args, "-nostdin", "-timeout", f"{timeout}s", "-timeout_error",
        "-trace_err", "-error_file", str(workdir / "errors.log"),
        "-trace_msg", "-message_file", str(workdir / "messages.log"),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, cwd=workdir,
    )  # fmt: skip
    try:
        return await asyncio.wait_for(process.wait(), timeout + 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_sipp_uac_calls_us_over_udp(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_layer() as (layer, tu):
        result = await Sipp(tmp_path, "uac", f"127.0.0.1:{port_of(layer)}", calls=5, rate=10).run()
        assert result.ok, result
        await tu.wait_for(lambda: len(tu.ack_results) == 5)
        assert tu.methods().count("INVITE") == 5 and tu.methods().count("BYE") == 5
        assert tu.ack_results == [True] * 5 and len(tu.acks) == 5
        assert result.count("SIP/2.0 180") == 5 and result.count("SIP/2.0 100") == 5


async def test_sipp_uac_calls_us_over_tcp(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_layer() as (layer, tu):
        port = port_of(layer)
        code = await run_sipp(tmp_path, "-sn", "uac", f"127.0.0.1:{port}", "-t", "t1", "-m", "3",
                              "-i", "127.0.0.1", "-p", str(free_port()))  # fmt: skip
        assert code == 0, (
            (tmp_path / "errors.log").read_text() if (tmp_path / "errors.log").exists() else code
        )
        await tu.wait_for(lambda: len(tu.ack_results) == 3)
        assert tu.methods() == ["INVITE", "BYE"] * 3 and tu.ack_results == [True] * 3
        assert all(incoming.source.transport.name == "TCP" for incoming in tu.requests)


async def test_we_call_sipp_uas(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_layer() as (_, tu), Sipp(tmp_path, "uas", calls=1) as uas:
        final = await tu.call(uas.uri("service"))
        assert final.status == 200 and b"m=audio" in final.body
        result = await uas.wait(timeout=15)
        assert result.ok, result
        # sipp saw our INVITE (with rport and a fresh branch), the ACK and the BYE.
        assert (
            result.count("INVITE sip:") == 1
            and result.count("ACK sip:") == 1
            and result.count("BYE sip:") == 1
        )
        assert ";rport;branch=z9hG4bK" in result.messages


async def test_sipp_cancels_our_ringing_invite(tmp_path: Path) -> None:
    require_binary("sipp")
    async with running_layer(answer=False) as (layer, tu):
        result = await Sipp(tmp_path, "uac_cancel", f"127.0.0.1:{port_of(layer)}", service="uas").run()
        assert result.ok, result
        assert len(tu.cancels) == 1 and tu.requests[0].cancelled
        assert result.count("SIP/2.0 487") == 1


async def test_calls_survive_20_percent_loss_both_ways() -> None:
    """20 INVITE/ACK/BYE between two of our layers through a relay dropping 20% of datagrams in
    each direction: retransmissions (timers A, E, G, the 2xx retransmission, re-ACKs) carry all
    of them through."""
    timers = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
    async with running_layer(timers) as (uas_layer, uas), running_layer(timers) as (_, uac):
        relay = await LossyRelay.start(("127.0.0.1", port_of(uas_layer)), loss=0.2, seed=20261121)
        try:
            via_relay = Target("UDP", *relay.address)
            started = time.monotonic()
            finals = await asyncio.wait_for(
                asyncio.gather(
                    *(uac.call(f"sip:uas@127.0.0.1:{port_of(uas_layer)}", via_relay) for _ in range(20))
                ),
                60,
            )
            assert [final.status for final in finals] == [200] * 20
            assert time.monotonic() - started < 60
            assert uas.methods().count("INVITE") == 20 and uas.methods().count("BYE") == 20
            assert relay.dropped > 20, (relay.dropped, relay.forwarded)
        finally:
            relay.close()


async def test_sipp_calls_through_lossy_relay(tmp_path: Path) -> None:
    """sipp's requests cross a relay dropping 20% (our responses go straight back along sipp's
    Via, which has no rport): INVITE and BYE retransmissions by sipp, absorbed by our server
    transactions, resend our last response."""
    require_binary("sipp")
    async with running_layer(TimerConfig(t1=0.1, t2=0.8)) as (layer, tu):
        relay = await LossyRelay.start(("127.0.0.1", port_of(layer)), loss=0.2, seed=7)
        try:
            host, port = relay.address
            result = await Sipp(tmp_path, "uac", f"{host}:{port}", calls=20, rate=10, limit=10).run(
                timeout=60
            )
            assert result.ok, result
            assert uas_calls(tu) == 20
        finally:
            relay.close()


def uas_calls(tu: TestUA) -> int:
    return tu.methods().count("INVITE")
