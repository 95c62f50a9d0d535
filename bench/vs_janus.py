"""Call setup against Janus's SIP plugin and ours, with the same aiortc clients and sipp far end (issue 14).

Janus 1.1.2 (Debian) never offers loopback ICE candidates and pins its ICE sockets to an interface, so the
whole comparison runs inside a network namespace this script creates (as root): ``ip netns add``, a veth
pair with private addresses (10.231.0.1 for Janus, 10.231.0.2 for the clients and sipp) inside the
namespace only, deleted afterwards. The script re-runs itself inside it (``ip netns exec``):

* Janus: its own config files in a temp dir (HTTP transport on 10.231.0.1:8088, the SIP plugin only, ICE
  on the veth end only, RTP ports 46000-47999); per call an aiortc ``WebPeer`` creates a session, attaches
  the SIP plugin, registers as a guest and sends ``call`` with its offer to sipp's UAS (``-rtp_echo``,
  peers/scenarios/uas_basic_call.xml); offer -> answer is the ``call`` request until the ``accepted``
  event with Janus's answer (after sipp's 200 OK, as our WebSocket dialect's ``connected``), offer ->
  connected until aiortc's connection state is ``connected``.
* ours: bench/setup_bench.py (HTTP offer API and WebSocket; the gateway run by its CLI with the shipped
  gateway.yaml) in the same namespace, the same clients, the same sipp scenario, after Janus's rounds;
  then both side by side, with ours / Janus of the medians. bench/setup_bench.py runs this script
  itself when Janus is installed and it runs as root (``--no-janus``: ours alone).

Run (as root): python bench/vs_janus.py [--rates 1,10] [--seconds 10] [--ours-args '--dialects http']
If namespaces are not permitted, it says so and measures ours only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from setup_bench import (  # noqa: E402
    CAPACITY_RATES,
    GATEWAY_CPU,
    SCENARIO,
    _process_cpu,
    client_cpus,
    fresh,
    loadavg,
    missed_twice,
    offers,
    paced,
    pin,
    quantiles,
    report_capacity,
)

JANUS_IP, CLIENT_IP, PREFIX = "10.231.0.1", "10.231.0.2", 24
JANUS_IFACE, CLIENT_IFACE = "jbench0", "jbench1"
JANUS_PORT = 8088
LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
_transactions = itertools.count(1)


# ------------------------------------------------------------------------------------ the namespace


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def namespaces(name: str) -> Iterator[tuple[str, str]]:
    """Two namespaces (Janus's, the clients'), lo up in each, joined by a veth pair with private addresses;
    deleted on exit. Both veth ends in one namespace would not do: the kernel delivers traffic between
    two local addresses over lo, and Janus's ICE sockets, pinned to the veth end, never see it."""
    janus, clients = f"{name}j", f"{name}c"
    made: list[str] = []
    try:
        for ns in (janus, clients):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        _ip(
            "link",
            "add",
            JANUS_IFACE,
            "netns",
            janus,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_IFACE,
            "netns",
            clients,
        )
        for ns, iface, address in ((janus, JANUS_IFACE, JANUS_IP), (clients, CLIENT_IFACE, CLIENT_IP)):
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{address}/{PREFIX}", "dev", iface)
            _ip("netns", "exec", ns, "ip", "link", "set", iface, "up")
        yield janus, clients
    finally:
        for ns in made:  # deleting a namespace deletes its veth end, and with it the pair
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


# ------------------------------------------------------------------------------------------- Janus


def write_janus_config(folder: Path) -> Path:
    plugins = [p.name for p in (LIB / "plugins").glob("libjanus_*.so") if p.name != "libjanus_sip.so"]
    transports = [p.name for p in (LIB / "transports").glob("libjanus_*.so") if p.name != "libjanus_http.so"]
    (folder / "janus.jcfg").write_text(
        f'general: {{\n configs_folder = "{folder}"\n plugins_folder = "{LIB / "plugins"}"\n'
        f' transports_folder = "{LIB / "transports"}"\n events_folder = "{LIB / "events"}"\n'
        f' loggers_folder = "{LIB / "loggers"}"\n debug_level = 3\n}}\n'
        'media: {\n rtp_port_range = "46000-46999"\n}\n'
        f'nat: {{\n ice_enforce_list = "{JANUS_IFACE}"\n}}\n'
        f'plugins: {{\n disable = "{",".join(plugins)}"\n}}\n'
        f'transports: {{\n disable = "{",".join(transports)}"\n}}\n'
        'loggers: {\n disable = "libjanus_jsonlog.so"\n}\n'
    )
    (folder / "janus.transport.http.jcfg").write_text(
        f'general: {{\n json = "compact"\n base_path = "/janus"\n http = true\n port = {JANUS_PORT}\n'
        f' ip = "{JANUS_IP}"\n https = false\n}}\nadmin: {{\n admin_http = false\n}}\n'
    )
    (folder / "janus.plugin.sip.jcfg").write_text(
        f'general: {{\n local_ip = "{JANUS_IP}"\n sdp_ip = "{JANUS_IP}"\n rtp_port_range = "47000-47999"\n'
        " register_ttl = 3600\n behind_nat = false\n events = false\n}\n"
    )
    return folder / "janus.jcfg"


class JanusClient:
    """Janus's HTTP API (https://janus.conf.meetecho.com/docs/rest.html): a session, a SIP plugin handle."""

    def __init__(self, http: Any, base: str) -> None:
        self.http, self.base = http, base
        self.session = self.handle = 0

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": f"t{next(_transactions)}"}
        async with self.http.post(f"{self.base}{path}", json=body) as response:
            data: dict[str, Any] = await response.json(content_type=None)
        if data.get("janus") == "error":
            raise RuntimeError(f"Janus: {data.get('error')}")
        return data

    async def open(self) -> None:
        self.session = (await self.post("", {"janus": "create"}))["data"]["id"]
        attached = await self.post(f"/{self.session}", {"janus": "attach", "plugin": "janus.plugin.sip"})
        self.handle = attached["data"]["id"]

    async def guest(self, number: int) -> None:
        """A session, its SIP plugin handle and a guest registration (no REGISTER sent)."""
        await self.open()
        await self.message(
            {"request": "register", "type": "guest", "username": f"sip:web{number}@{JANUS_IP}"}
        )
        await self.event("registered")

    async def message(self, body: dict[str, Any], jsep: dict[str, str] | None = None) -> None:
        await self.post(
            f"/{self.session}/{self.handle}",
            {"janus": "message", "body": body, **({"jsep": jsep} if jsep else {})},
        )

    async def event(self, wanted: str, timeout: float = 20) -> dict[str, Any]:
        """Long-poll the session until a plugin event whose ``result.event`` is ``wanted``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.http.get(f"{self.base}/{self.session}?maxev=1") as response:
                data = await response.json(content_type=None)
            for item in data if isinstance(data, list) else [data]:
                result = item.get("plugindata", {}).get("data", {}).get("result", {})
                if result.get("event") == wanted:
                    return dict(item)
                if result.get("event") in ("hangup",) or item.get("plugindata", {}).get("data", {}).get(
                    "error"
                ):
                    raise RuntimeError(f"Janus: {item}")
        raise TimeoutError(f"no {wanted} event")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.message({"request": "hangup"})
        with contextlib.suppress(Exception):
            await self.post(f"/{self.session}", {"janus": "destroy"})


async def janus_case(rate: float, seconds: float, far_end: str) -> dict[str, Any]:
    import aiohttp

    from gateway.media.webrtc import aiortc_hooks
    from peers.webpeer import WebPeer

    answers: list[float] = []
    connects: list[float] = []
    failures: list[str] = []
    base = f"http://{JANUS_IP}:{JANUS_PORT}/janus"

    async def one_call(http: Any, number: int) -> None:
        peer = WebPeer(1000, codecs=("PCMU",), raw=True)
        connection = aiortc_hooks.ice_connection(peer.pc)  # gather on the veth end, not on 127.0.0.1
        connection.get_component_candidates = type(connection).get_component_candidates.__get__(connection)  # type: ignore[method-assign]
        aiortc_hooks.restrict_host_addresses(peer.pc, [CLIENT_IP])
        connected = asyncio.Event()
        peer.pc.on(
            "connectionstatechange",
            lambda: connected.set() if peer.pc.connectionState in ("connected", "failed") else None,
        )
        janus = JanusClient(http, base)
        try:
            await janus.guest(number)
            offer = await peer.offer()
            start = time.perf_counter()
            await janus.message(
                {"request": "call", "uri": f"sip:echo@{far_end}"}, {"type": "offer", "sdp": offer}
            )
            await janus.post(
                f"/{janus.session}/{janus.handle}", {"janus": "trickle", "candidate": {"completed": True}}
            )
            accepted = await janus.event("accepted")
            if os.environ.get("VS_JANUS_DEBUG"):
                print(
                    [ln for ln in offer.splitlines() if "candidate" in ln],
                    [
                        ln
                        for ln in accepted["jsep"]["sdp"].splitlines()
                        if "candidate" in ln or ln.startswith("c=")
                    ],
                )
            answers.append(1000 * (time.perf_counter() - start))
            await peer.accept(accepted["jsep"]["sdp"])
            await asyncio.wait_for(connected.wait(), 20)
            if peer.pc.connectionState != "connected":
                failures.append(f"web leg {peer.pc.connectionState}")
                return
            connects.append(1000 * (time.perf_counter() - start))
            await asyncio.sleep(0.5)
        except Exception as exc:  # a failed call is a figure, not the end of the run
            failures.append(f"{type(exc).__name__} {exc}"[:160])
        finally:
            await janus.close()
            await peer.close()

    count = max(1, round(rate * seconds))
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*[paced(n / rate, one_call(http, n)) for n in range(count)])
    return {"answers": answers, "connects": connects, "failures": failures, "calls": count}


async def janus_capacity(rate: float, seconds: float, far_end: str) -> dict[str, Any]:
    """Open-loop calls at ``rate``: each a session, its SIP plugin handle and a guest registration
    (not timed), then ``call`` with an offer made beforehand -> ``accepted`` (timed), then hung up."""
    import aiohttp

    answers: list[float] = []
    failures: list[str] = []
    made = await offers(8, host=CLIENT_IP)
    base = f"http://{JANUS_IP}:{JANUS_PORT}/janus"

    async def one_call(http: Any, number: int) -> None:
        janus = JanusClient(http, base)
        try:
            await janus.guest(number)
            start = time.perf_counter()
            offer = {"type": "offer", "sdp": fresh(made[number % len(made)], number)}
            await janus.message({"request": "call", "uri": f"sip:echo@{far_end}"}, offer)
            await janus.event("accepted")
            answers.append(1000 * (time.perf_counter() - start))
        except Exception as exc:  # a failed call is a figure, not the end of the run
            failures.append(f"{type(exc).__name__} {exc}"[:160])
        finally:
            await janus.close()

    count = max(1, round(rate * seconds))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*[paced(n / rate, one_call(http, n)) for n in range(count)])
    return {"answers": answers, "connects": [], "failures": failures, "calls": count}


async def janus_capacities(
    args: argparse.Namespace, janus: subprocess.Popen[bytes], far_end: str
) -> list[dict[str, Any]]:
    """Janus pinned to one CPU (the clients on the others), the rates in turn until two in a row miss."""
    pin(janus.pid, {GATEWAY_CPU})
    os.sched_setaffinity(0, client_cpus())
    results = []
    for rate in args.rates:
        cpu = _process_cpu(janus.pid)
        result = await janus_capacity(rate, args.seconds, far_end)
        cpu = _process_cpu(janus.pid) - cpu
        result.update(rate=rate, load=loadavg(), cpu_per_call=cpu / max(1, result["calls"]))
        results.append(result)
        report_capacity("janus", results[-1:], summary=False)
        await asyncio.sleep(3.0)
        if missed_twice(results):
            break
    return results


async def inside(args: argparse.Namespace) -> list[dict[str, Any]]:
    from peers.sipp import Sipp

    with tempfile.TemporaryDirectory(prefix="vs-janus-") as temp:
        folder = Path(temp)
        config = write_janus_config(folder)
        log = (folder / "janus.log").open("wb")
        janus = subprocess.Popen(
            ["ip", "netns", "exec", args.janus_ns, "janus", "-C", str(config), "-F", str(folder), "-N", "-L", str(folder / "janus.out")],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        results = []
        try:
            far = Sipp(folder, SCENARIO, calls=None, host=CLIENT_IP, port=5070, media_port=48000,
                       rtp_echo=True, auto_answer=True, timeout=3600)  # fmt: skip
            async with far:
                await _wait_janus()
                print(
                    f"Janus 1.1.2 on {JANUS_IP}:{JANUS_PORT} (SIP plugin), sipp UAS -rtp_echo on {far.address}"
                )
                if args.capacity:
                    results = await janus_capacities(args, janus, far.address)
                for rate in args.rates if not args.capacity else ():
                    cpu = _process_cpu(janus.pid)  # `ip netns exec` execs janus: its process, all threads
                    result = await janus_case(rate, args.seconds, far.address)
                    cpu = _process_cpu(janus.pid) - cpu
                    result.update(rate=rate, load=loadavg(), cpu_per_call=cpu / max(1, result["calls"]))
                    results.append(result)
        finally:
            janus.terminate()
            try:
                janus.wait(timeout=10)
            except subprocess.TimeoutExpired:
                janus.kill()
                janus.wait()
            log.close()
        if args.capacity:
            print()
            report_capacity("janus", results)
            return results
        print(
            f"\n{'box':7} {'calls/s':>7} {'n':>4} {'fail':>4}  {'offer->answer p50 / p99 / max ms':>33}  {'offer->connected p50 / p99 ms':>30}  CPU s/call  loadavg"
        )
        for r in results:
            a50, a99, amax = quantiles(r["answers"])
            c50, c99, _ = quantiles(r["connects"])
            print(
                f"{'janus':7} {r['rate']:7g} {r['calls']:4d} {len(r['failures']):4d}  {a50:9.2f} / {a99:8.2f} / {amax:8.2f}        {c50:12.2f} / {c99:12.2f}  {r['cpu_per_call']:10.4f}  {r['load']}"
            )
            if r["failures"]:
                print(f"        failures: {r['failures'][:3]}")
        if any(r["failures"] for r in results):
            print((folder / "janus.out").read_text()[-1500:] if (folder / "janus.out").exists() else "")
    return results


async def _wait_janus() -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://{JANUS_IP}:{JANUS_PORT}/janus/info") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("Janus did not answer /janus/info")


def ours(args: argparse.Namespace) -> list[dict[str, Any]]:
    """bench/setup_bench.py (the gateway by its CLI, unless ``--ours-args`` says otherwise): its results."""
    rates = ",".join(f"{r:g}" for r in args.rates)
    with tempfile.TemporaryDirectory(prefix="vs-janus-ours-") as temp:
        out = Path(temp) / "ours.json"
        command = [
            sys.executable, str(ROOT / "bench" / "setup_bench.py"), "--no-janus", "--json-out", str(out),
            "--rates", rates, "--seconds", f"{args.seconds:g}", *args.ours_args.split(),
        ]  # fmt: skip
        subprocess.run(command, check=False)
        return list(json.loads(out.read_text())) if out.exists() else []


def beside(janus: list[dict[str, Any]], mine: list[dict[str, Any]]) -> None:
    """Janus's figures and ours per rate, with the ratio of the medians (below 1: we are faster)."""
    print(
        "\nside by side (ms; Janus's offer -> answer ends at its `accepted` event, after the far end's 200 OK;"
        " ours: http = the HTTP offer API's response, ws = the `connected` event after the 200 OK,"
        " ws-early = the `answer` event)"
    )
    print(
        f"{'calls/s':>7} {'box':13} {'offer->answer p50 / p99':>24} {'x Janus p50':>11}"
        f"  {'offer->connected p50 / p99':>27} {'x Janus p50':>11}"
    )
    for theirs in janus:
        rate = theirs["rate"]
        j50, j99, _ = quantiles(theirs["answers"])
        k50, k99, _ = quantiles(theirs["connects"])
        j_cpu = 100 * theirs.get("cpu_per_call", float("nan"))
        print(
            f"{rate:7g} {'janus':13} {j50:11.2f} / {j99:10.2f} {'':>11}  {k50:13.2f} / {k99:11.2f}"
            f" {'':>11}   CPU s per 100 setups {j_cpu:.2f}"
        )
        for r in (r for r in mine if r["rate"] == rate):
            a50, a99, _ = quantiles(r["answers"])
            c50, c99, _ = quantiles(r["connects"])
            print(
                f"{'':7} {'ours ' + r['dialect']:13} {a50:11.2f} / {a99:10.2f} {a50 / j50:11.2f}"
                f"  {c50:13.2f} / {c99:11.2f} {c50 / k50:11.2f}   CPU s per 100 setups"
                f" {100 * r['cpu_per_call']:.2f}   loadavg {r['load']}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1,10", type=lambda s: [float(r) for r in s.split(",")])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--ours-args",
        default="",
        help="more arguments of bench/setup_bench.py for ours (e.g. '--dialects http')",
    )
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="the setups per second one core sustains (setup_bench --capacity)",
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--janus-ns", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.capacity and "--rates" not in " ".join(sys.argv):
        args.rates = list(CAPACITY_RATES)
    if args.capacity and "--capacity" not in args.ours_args:
        args.ours_args = f"{args.ours_args} --capacity"
    if args.inside:
        theirs = asyncio.run(inside(args))
        mine = ours(args)
        if args.capacity:
            print("\nsetups per second on one core (open-loop HTTP offers; Janus's `call` -> `accepted`)")
            report_capacity("janus", theirs)
            report_capacity("ours", mine)
        else:
            beside(theirs, mine)
        return 0
    name = f"vsjanus{os.getpid()}"
    print(f"call setup, Janus SIP plugin vs ours; load average {loadavg()} at start")
    try:
        with namespaces(name) as (janus_ns, clients_ns):
            command = [
                "ip",
                "netns",
                "exec",
                clients_ns,
                sys.executable,
                __file__,
                "--inside",
                "--janus-ns",
                janus_ns,
                "--seconds",
                f"{args.seconds:g}",
                "--rates",
                ",".join(f"{r:g}" for r in args.rates),
                f"--ours-args={args.ours_args}",
                *(["--capacity"] if args.capacity else []),
            ]
            subprocess.run(command, check=False)
    except subprocess.CalledProcessError as exc:
        print(
            f"network namespaces are not permitted here ({exc.stderr.strip()}): Janus cannot be measured "
            "(it offers no loopback candidate); ours only, on loopback:"
        )
        ours(args)
    print(f"load average {loadavg()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
