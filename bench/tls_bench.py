"""SIP over TLS vs UDP toward the PBX (issue 12): call setup time and calls/s one web user reaches.

Run: python bench/tls_bench.py [--calls 20]   (needs kamailio with its TLS module, and pjsua2)

A real Kamailio (tests' peers/kamailio.py, UDP and TLS listeners, the dev certificate) proxies to the
pjsua2 desk phone 2000 (auto-answer, registered over UDP). The gateway registers alice at Kamailio over
UDP, then (a second gateway) over TLS; alice (aiortc, JSON WebSocket) calls 2000 `--calls` times in a
row: setup = dial until `connected` (the phone's 200 through Kamailio), then hang up. Printed per
transport: p50/p99/max setup and calls/s for one client, with /proc/loadavg. The TLS figure includes
no handshake after the first call: the connection to Kamailio is reused.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.devcert import make_dev_certificates  # noqa: E402
from peers.kamailio import running_kamailio  # noqa: E402
from peers.phone import DeskPhone  # noqa: E402
from peers.ports import free_port  # noqa: E402
from peers.web_user import WebUser  # noqa: E402
from peers.webpeer import WebPeer  # noqa: E402
from sipcore import RegState  # noqa: E402
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway  # noqa: E402


def config(pbx: str, transport: str, certificates: Any) -> Any:
    listen = [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}]
    sip: dict[str, Any] = {"listen": listen, "trusted_sources": ["127.0.0.1/32"]}
    if transport == "tls":
        listen.append({"transport": "tls", "host": "127.0.0.1", "port": free_port()})
        sip["tls"] = {
            "certificate": str(certificates.certificate),
            "private_key": str(certificates.private_key),
            "ca_file": str(certificates.ca),
        }
    return gateway_config(pbx, register=True, alice_auth=("1001", "pw1001"), pbx_transport=transport, sip=sip)


async def calls(http_url: str, count: int) -> list[float]:
    setup: list[float] = []
    async with WebUser(http_url, "alice", ALICE_SECRET) as alice:
        for _ in range(count):
            peer = WebPeer(1000.0)
            try:
                offer = await peer.offer()
                started = time.perf_counter()
                call_id = await alice.call("2000", offer)
                await alice.wait_for("connected", call_id=call_id, timeout=15)
                setup.append((time.perf_counter() - started) * 1000)
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id, timeout=10)
            finally:
                await peer.close()
            await asyncio.sleep(0.3)  # the phone frees its call slot
    return setup


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:4s} n={len(ordered):3d}  setup p50 {statistics.median(ordered):7.1f} ms  p99 {p99:7.1f} ms  "
        f"max {ordered[-1]:7.1f} ms  ({1000.0 / statistics.mean(ordered):5.1f} calls/s for one client)"
    )


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        tmp = Path(workdir)
        certificates = make_dev_certificates(tmp / "pki", ["127.0.0.1"])
        tls = (certificates.certificate, certificates.private_key)
        results: dict[str, list[float]] = {}
        with running_kamailio(tmp, users={"1001": "pw1001"}, tls=tls) as kamailio:
            async with DeskPhone(
                tmp, user="2000", tone=440, register=kamailio.registrar, password=kamailio.users["2000"]
            ) as phone:
                await phone.wait_for("registered", code=200)
                for transport, pbx in (("udp", kamailio.address), ("tls", kamailio.tls_address)):
                    async with running_gateway(config(pbx, transport, certificates)) as gateway:
                        assert gateway.sip is not None
                        await gateway.sip.registrations.wait_for("sip:1001@127.0.0.1", RegState.REGISTERED)
                        results[transport] = await calls(gateway.http_url, count)
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(f"web user -> Kamailio -> desk phone, one client; loadavg {' '.join(load)}")
        for name, values in results.items():
            print(summary(name, values))
        udp, tls_ = statistics.median(results["udp"]), statistics.median(results["tls"])
        print(f"TLS/UDP setup p50 ratio {tls_ / udp:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="calls per transport")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls))
