"""Benchmark of the SIP stack: parsing, transactions through the layer on loopback, calls from sipp.

Run: python bench/sip_bench.py [--no-sipp]   (about 30 seconds; numbers depend on the machine and
its load: compare ratios measured in one run)

1. messages parsed per second (parse_message on a typical INVITE with SDP);
2. transactions per second through the transaction layer, our UAC layer to our UAS layer over UDP
   on loopback (OPTIONS, 50 in flight), and calls per second (INVITE/200/ACK, BYE/200);
3. calls per second against sipp's built-in UAC (-sn uac) at rising rates until calls fail or
   the rate is no longer reached;
4. calls per second of the gateway's UserAgent against sipp over loopback: as UAC (INVITE, ACK,
   BYE) against ``sipp -sn uas``, with a fixed number of calls in flight, and as UAS (180, 200
   with SDP, then sipp's BYE) for ``sipp -sn uac`` at rising rates.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from gateway.sip.transactions.layer import TransactionLayer
from gateway.sip.transactions.policy import AcceptAll
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.transports.transport import Source
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.ua import Listen, UASettings, UserAgent
from gateway.sip.useragent.ua_events import Answered, Bye, Failed
from peers.ports import free_port
from sipcore import Headers, Request, Response, make_response, new_call_id, new_tag, parse_message, parse_uri
from sipcore.location.routing import Target

INVITE = (
    b"INVITE sip:1001@192.0.2.10:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5060;rport;branch=z9hG4bK-524287-1---b5b4c0b6d2f1\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:2001@192.0.2.20:5060;transport=udp>\r\n"
    b'To: <sip:1001@192.0.2.10>\r\nFrom: "Desk 2001" <sip:2001@pbx.example.org>;tag=3b9a1f0c\r\n'
    b"Call-ID: 8d5c2e1a7f3b4c9d@192.0.2.20\r\nCSeq: 1 INVITE\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"Content-Type: application/sdp\r\nSupported: replaces, timer\r\nUser-Agent: Desk/1.0\r\n"
    b"Content-Length: 219\r\n\r\n"
    b"v=0\r\no=- 1700000000 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)


def bench_parse(seconds: float = 2.0) -> None:
    for _ in range(200):
        parse_message(INVITE)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            parse_message(INVITE)
        count += 200
    elapsed = time.perf_counter() - start
    print(
        f"parse_message (INVITE, {len(INVITE)} bytes): {count / elapsed:10.0f} msg/s  {elapsed / count * 1e6:6.1f} us"
    )


class BenchUA:
    """UAS: 200 to everything (INVITE: with SDP, retransmitted until ACK); UAC: re-ACK strays."""

    def __init__(self) -> None:
        self.layer: TransactionLayer | None = None

    async def on_request(self, incoming: IncomingRequest) -> None:
        if incoming.method == "INVITE":
            contact = f"<sip:b@{incoming.source.local[0]}:{incoming.source.local[1]}>"
            response = make_response(incoming.request, 200, to_tag=new_tag(), headers=(("Contact", contact),))
            await incoming.respond_until_ack(response)
        else:
            incoming.reply(200)

    def on_cancel(self, incoming: IncomingRequest, cancel: Request) -> None:
        incoming.reply(487)

    def on_ack(self, ack: Request, source: Source) -> None:
        pass

    def on_stray_response(self, response: Response, source: Source) -> None:
        pass


def request(method: str, uri: str, call_id: str, cseq: int, to: str | None = None) -> Request:
    headers = (
        ("From", "<sip:bench@127.0.0.1>;tag=b1"),
        ("To", to or f"<{uri}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
    )
    return Request(method, parse_uri(uri), Headers(headers))


async def one_call(uac: TransactionLayer, uri: str, target: Target) -> bool:
    call_id = new_call_id("bench")
    final = await (await uac.request(request("INVITE", uri, call_id, 1), target)).final_response()
    if final.status != 200:
        return False
    to = final.headers.get("To") or ""
    await uac.send_stateless(request("ACK", uri, call_id, 1, to), target)
    bye = await (await uac.request(request("BYE", uri, call_id, 2, to), target)).final_response()
    return bye.status == 200


async def bench_layer(seconds: float = 3.0, in_flight: int = 50) -> None:
    uas = TransactionLayer(BenchUA(), policy=AcceptAll())
    uac = TransactionLayer(BenchUA(), policy=AcceptAll())
    try:
        transport = await uas.listen("udp", "127.0.0.1", 0)
        await uac.listen("udp", "127.0.0.1", 0)
        target = Target("UDP", *transport.local)
        uri = f"sip:b@127.0.0.1:{transport.local[1]}"
        done = failed = 0

        async def options_worker(deadline: float) -> None:
            nonlocal done, failed
            while time.perf_counter() < deadline:
                handle = await uac.request(request("OPTIONS", uri, new_call_id("bench"), 1), target)
                if (await handle.final_response()).status == 200:
                    done += 1
                else:
                    failed += 1

        start = time.perf_counter()
        await asyncio.gather(*(options_worker(start + seconds) for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
        print(
            f"layer->layer OPTIONS transactions (UDP, {in_flight} in flight): {done / elapsed:8.0f} /s  ({failed} failed)"
        )

        calls = failed = 0

        async def call_worker(deadline: float) -> None:
            nonlocal calls, failed
            while time.perf_counter() < deadline:
                if await one_call(uac, uri, target):
                    calls += 1
                else:
                    failed += 1

        start = time.perf_counter()
        await asyncio.gather(*(call_worker(start + seconds) for _ in range(in_flight // 2)))
        elapsed = time.perf_counter() - start
        print(
            f"layer->layer calls INVITE/ACK/BYE (UDP, {in_flight // 2} in flight): {calls / elapsed:8.0f} /s  ({failed} failed)"
        )
    finally:
        await uac.close()
        await uas.close()


async def bench_sipp(rates: tuple[int, ...] = (50, 100, 200, 400, 800, 1600), seconds: float = 3.0) -> None:
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp not installed: skipped")
        return
    uas = TransactionLayer(BenchUA(), policy=AcceptAll())
    try:
        transport = await uas.listen("udp", "127.0.0.1", 0)
        for rate in rates:
            calls = int(rate * seconds)
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe,
                tempfile.TemporaryDirectory() as tmp,
            ):
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
                probe.close()
                start = time.perf_counter()
                process = await asyncio.create_subprocess_exec(
                    sipp, "-sn", "uac", f"127.0.0.1:{transport.local[1]}", "-i", "127.0.0.1", "-p", str(port),
                    "-r", str(rate), "-m", str(calls), "-l", str(rate * 2), "-nostdin", "-timeout", "30s",
                    "-timeout_error", "-trace_stat", "-stf", f"{tmp}/stat.csv",
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL, cwd=tmp,
                )  # fmt: skip
                try:
                    code = await asyncio.wait_for(process.wait(), 45)
                finally:
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
                elapsed = time.perf_counter() - start
                failed = _failed_calls(Path(tmp) / "stat.csv")
            status = "ok" if code == 0 else f"sipp exit {code}"
            print(f"sipp uac -> layer at -r {rate:4d}: {calls} calls in {elapsed:5.2f} s = {calls / elapsed:6.0f} calls/s, "
                  f"{failed} failed ({status})")  # fmt: skip
            if code != 0:
                break
            if calls / elapsed < 0.8 * rate:
                print(f"saturated: about {calls / elapsed:.0f} calls/s (sipp and the layer share the CPUs)")
                break
    finally:
        await uas.close()


SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


async def _start_ua(on_call: object = None) -> UserAgent:
    ua = UserAgent(
        UASettings(listen=(Listen("udp", "127.0.0.1", 0),)),
        policy=AcceptAll(),
        on_incoming_call=on_call,  # type: ignore[arg-type]
    )
    await ua.start()
    return ua


async def _stop(process: asyncio.subprocess.Process) -> int:
    """Wait for sipp to end (it is killed, by its own PID, if it does not)."""
    try:
        return await asyncio.wait_for(process.wait(), 45)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def bench_ua_uac(seconds: float = 4.0, in_flight: int = 20) -> None:
    """The UserAgent places calls (INVITE/ACK, then BYE at once) to ``sipp -sn uas``."""
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp not installed: skipped")
        return
    port = free_port(socket.SOCK_DGRAM)
    with tempfile.TemporaryDirectory() as tmp:
        process = await asyncio.create_subprocess_exec(
            sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-nostdin", "-m", "1000000",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, cwd=tmp,
        )  # fmt: skip
        ua = await _start_ua()
        try:
            await asyncio.sleep(0.5)  # sipp binds its socket
            target = f"sip:service@127.0.0.1:{port}"
            calls = failed = late = 0

            async def one() -> bool:
                call = await ua.invite(target, SDP, "sip:bench@127.0.0.1")
                event = await call.next_event()
                while not isinstance(event, (Answered, Failed)):
                    event = await call.next_event()
                if isinstance(event, Failed):
                    return False
                await call.bye()
                ended = await call.next_event()
                while not isinstance(ended, Bye):
                    ended = await call.next_event()
                return ended.status == 200

            async def worker(deadline: float) -> None:
                nonlocal calls, failed, late
                while time.perf_counter() < deadline:
                    try:
                        ok = await asyncio.wait_for(one(), 10)
                    except TimeoutError:
                        ok = False
                    if time.perf_counter() > deadline:
                        late += 1  # ended after the window: not counted
                    elif ok:
                        calls += 1
                    else:
                        failed += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker(start + seconds) for _ in range(in_flight)))
            print(f"UserAgent UAC -> sipp uas (UDP, {in_flight} in flight): {calls / seconds:6.0f} calls/s  "
                  f"({calls} calls in {seconds:.0f} s, {failed} failed, {late} ended after the window)")  # fmt: skip
        finally:
            await ua.close()
            process.terminate()
            await _stop(process)


async def bench_ua_uas(rates: tuple[int, ...] = (50, 100, 200, 400, 800), seconds: float = 3.0) -> None:
    """``sipp -sn uac`` calls the UserAgent, which rings and answers each call at once."""
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp not installed: skipped")
        return
    answered = 0

    def on_call(call: IncomingCall) -> None:
        nonlocal answered
        call.ring()
        call.answer(SDP)
        answered += 1

    ua = await _start_ua(on_call)
    try:
        local = ua.layer.transports[0].local
        for rate in rates:
            calls = int(rate * seconds)
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                process = await asyncio.create_subprocess_exec(
                    sipp, "-sn", "uac", f"127.0.0.1:{local[1]}", "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)),
                    "-r", str(rate), "-m", str(calls), "-l", str(rate * 2), "-nostdin", "-timeout", "30s",
                    "-timeout_error", "-trace_stat", "-stf", f"{tmp}/stat.csv",
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL, cwd=tmp,
                )  # fmt: skip
                code = await _stop(process)
                elapsed = time.perf_counter() - start
                failed = _failed_calls(Path(tmp) / "stat.csv")
            status = "ok" if code == 0 else f"sipp exit {code}"
            print(f"sipp uac -> UserAgent UAS at -r {rate:4d}: {calls} calls in {elapsed:5.2f} s = "
                  f"{calls / elapsed:6.0f} calls/s, {failed} failed ({status})")  # fmt: skip
            if code != 0:
                break
            if calls / elapsed < 0.8 * rate:
                print(f"saturated: about {calls / elapsed:.0f} calls/s (sipp and the UA share the CPUs)")
                break
    finally:
        await ua.close()
    print(f"  ({answered} calls answered by the UserAgent)")


def _failed_calls(path: Path) -> str:
    """FailedCall(C) of sipp's last statistics line, or '?'."""
    try:
        lines = [line.split(";") for line in path.read_text().splitlines() if line]
        column = lines[0].index("FailedCall(C)")
        return lines[-1][column]
    except (OSError, ValueError, IndexError):
        return "?"


def main() -> int:
    # Beyond saturation calls end on timeouts: their warnings would bury the figures.
    logging.basicConfig(level=logging.ERROR)
    bench_parse()
    asyncio.run(bench_layer())
    if "--no-sipp" not in sys.argv:
        asyncio.run(bench_sipp())
        asyncio.run(bench_ua_uac())
        asyncio.run(bench_ua_uas())
    return 0


if __name__ == "__main__":
    sys.exit(main())
