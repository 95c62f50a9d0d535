"""SIP over WebSocket vs the JSON WebSocket on the same gateway (issue 12): registration and call setup.

Run: python bench/sipws_bench.py [--count 50] [--calls 10] [--tls]   (needs sipp; under a minute)

--tls: HTTPS with a dev certificate, so both WebSockets are wss:// (TLS handshake in every new socket).

The gateway runs in this process with sipp's UAS as its PBX (auto-answer, RTP echo). Measured, one
client at a time so the figures are latencies, not a saturation test:

- json login: open /ws, log in as alice (scrypt hash check), until `registered`;
- sipws register: open /sip, REGISTER, 401, REGISTER with digest, 200 (a browser library's start-up);
- sipws refresh: REGISTER with digest on an open flow (401 + 200: two round trips), back to back;
- json call / sipws call: an aiortc offer dialled to 2000 until the answer (JSON `connected`; SIP: 401,
  INVITE with digest, 200), then hang up.

Printed: p50/p99/max in ms and the rate one client reaches, with /proc/loadavg. The JSON login is slower
by design: scrypt costs ~50 ms per login; digest is one hash.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.config.limits import LimitsSection  # noqa: E402
from gateway.config.schema import HttpTls  # noqa: E402
from gateway.devcert import make_dev_certificates  # noqa: E402
from peers.sipp import Sipp  # noqa: E402
from peers.web_user import WebUser  # noqa: E402
from peers.webpeer import WebPeer  # noqa: E402
from tests.e2e.harness import ALICE_SECRET, running_gateway  # noqa: E402
from tests.e2e.websip.test_sip_websocket import (  # noqa: E402
    ALICE_SIP_PASSWORD,
    SipCall,
    realm_of,
    sip_socket,
    websocket_config,
)


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:16s} no samples"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    rate = 1000.0 / statistics.mean(ordered)
    return (
        f"{name:16s} n={len(ordered):3d}  p50 {statistics.median(ordered):7.1f} ms  p99 {p99:7.1f} ms  "
        f"max {ordered[-1]:7.1f} ms  ({rate:6.1f}/s for one client)"
    )


async def main(count: int, calls: int, tls: bool) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        pbx = Sipp(Path(workdir), "uas_basic_call", calls=None, rtp_echo=True, auto_answer=True)
        await pbx.start()
        config = websocket_config(pbx.address)
        config = dataclasses.replace(config, limits=LimitsSection(10000, 10000, 1.0))  # one user is the load
        context: ssl.SSLContext | None = None
        if tls:
            made = make_dev_certificates(Path(workdir) / "certs", ["127.0.0.1"])
            http = dataclasses.replace(config.http, tls=HttpTls(str(made.certificate), str(made.private_key)))
            config = dataclasses.replace(config, http=http)
            context = ssl.create_default_context(cafile=str(made.ca))
        try:
            async with running_gateway(config) as gateway:
                realm = realm_of(gateway)
                results: dict[str, list[float]] = {}

                samples = results.setdefault("json login", [])
                for _ in range(count):
                    started = time.perf_counter()
                    async with WebUser(gateway.http_url, "alice", ALICE_SECRET, ssl=context):
                        samples.append((time.perf_counter() - started) * 1000)

                samples = results.setdefault("sipws register", [])
                for _ in range(count):
                    started = time.perf_counter()
                    async with sip_socket(gateway, ssl=context) as sip:
                        _, final = await sip.register("alice", ALICE_SIP_PASSWORD, realm)
                        assert final.startswith("SIP/2.0 200"), final
                        samples.append((time.perf_counter() - started) * 1000)

                samples = results.setdefault("sipws refresh", [])
                async with sip_socket(gateway, ssl=context) as sip:
                    for _ in range(count):
                        started = time.perf_counter()
                        _, final = await sip.register("alice", ALICE_SIP_PASSWORD, realm)
                        assert final.startswith("SIP/2.0 200"), final
                        samples.append((time.perf_counter() - started) * 1000)

                samples = results.setdefault("json call", [])
                async with WebUser(gateway.http_url, "alice", ALICE_SECRET, ssl=context) as alice:
                    for _ in range(calls):
                        peer = WebPeer(1000.0)
                        try:
                            offer = await peer.offer()
                            started = time.perf_counter()
                            call_id = await alice.call("2000", offer)
                            await alice.wait_for("connected", call_id=call_id, timeout=10)
                            samples.append((time.perf_counter() - started) * 1000)
                            await alice.request({"type": "hangup", "call_id": call_id})
                            await alice.wait_for("ended", call_id=call_id, timeout=10)
                        finally:
                            await peer.close()

                samples = results.setdefault("sipws call", [])
                async with sip_socket(gateway, ssl=context) as sip:
                    for _ in range(calls):
                        sip.call_id, sip.tag = secrets.token_hex(8), secrets.token_hex(4)
                        peer = WebPeer(1000.0)
                        try:
                            offer = await peer.offer()
                            call = SipCall(sip, f"sip:2000@{realm}", f"sip:alice@{realm}")
                            started = time.perf_counter()
                            final = await call.invite(offer, realm)
                            assert final.startswith("SIP/2.0 200"), final
                            samples.append((time.perf_counter() - started) * 1000)
                            await call.ack(final, call.remote_target, call.to_tag)
                            await call.bye()
                        finally:
                            await peer.close()
                        await asyncio.sleep(0.2)  # the bridge closes

                load = Path("/proc/loadavg").read_text().split()[:3]
                scheme = "wss" if tls else "ws"
                print(f"SIP WebSocket vs JSON WebSocket ({scheme}://), one client; loadavg {' '.join(load)}")
                for name, values in results.items():
                    print(summary(name, values))
        finally:
            await pbx.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50, help="logins and registrations of each kind")
    parser.add_argument("--calls", type=int, default=10, help="calls of each kind")
    parser.add_argument("--tls", action="store_true", help="HTTPS with a dev certificate: wss:// for both")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.count, arguments.calls, arguments.tls))
