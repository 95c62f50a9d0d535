"""Example 15: JsSIP in a browser page registers with the gateway over WSS and calls the desk phone.

Run it from anywhere:  python examples/15_jssip_page.py
(needs pjsua2, Playwright, Debian's chromium and certutil, and the JsSIP bundle: `make test-deps` installs
them all, as `make test` does; the example says what is missing and stops)

Browser SIP libraries speak SIP over WebSocket (RFC 7118): the gateway serves it at `/sip` on its HTTP
listener (gateway.yaml `sip.websocket`), wss:// once `http.tls` is set, and registers users that have a
SIP password (`users[].sip_auth`). The library is JsSIP 3 from npm, unmodified (bundled into
peers/js-softphones/build/ by `make test-deps`), in headless Chromium, behind the small driver page of
peers/js-softphones (driver.js; peers/softphones.py drives it from Python).

1. A development CA and a certificate for 127.0.0.1 (what `sip-webrtc-gateway dev-cert 127.0.0.1` writes).
2. The gateway with that certificate (https:// and wss://) and the desk phone 2000 (plays 440 Hz) as PBX.
3. Chromium in a fresh profile whose NSS database trusts the CA (README "HTTPS on a LAN"'s certutil
   lines): no flag to ignore certificate errors.
4. The page, on the gateway's own origin: JsSIP connects to wss://.../sip and registers alice (digest).
5. It calls sip:2000@<realm>; the page hears the phone's tone, the phone gets DTMF 5 by SIP INFO and hears
   Chromium's fake microphone (a 400 Hz beep); JsSIP hangs up.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from gateway.app import Gateway
from gateway.config.loader import load_config_text
from gateway.devcert import make_dev_certificates
from peers.audio import read_wav, rms, tone_ratio
from peers.demo import ALICE_HASH
from peers.phone import DeskPhone
from peers.ports import free_port
from peers.softphones import HERE as SOFTPHONES
from peers.softphones import Softphone

SIP_PASSWORD = "alice-sip-password"  # JsSIP's digest password (a demo's inline secret: use {env: ...})
CONFIG = """
sip:
  listen: [{transport: udp, host: 127.0.0.1, port: %(sip_port)d}]
  trusted_sources: [127.0.0.1/32]
  websocket: {path: /sip}   # SIP over WebSocket on the HTTP listener: wss:// with http.tls
http:
  host: 127.0.0.1
  port: %(http_port)d
  tls: {certificate: "%(certificate)s", private_key: "%(private_key)s"}
media: {rtp_ports: {start: %(rtp)d, end: %(rtp_end)d}}
pbx: {address: "127.0.0.1:%(phone_port)d", domain: 127.0.0.1}   # the digest realm: pbx.domain
users:
  - id: alice
    sip: "1001"
    allow_outbound: ["2000"]
    web_secret_hash: "%(web_secret_hash)s"   # the softphone page's login (alice-demo), unused here
    sip_auth: {password: "%(password)s"}   # registers as sip:alice@127.0.0.1 (or sip:1001@...)
state_dir: "%(state)s"
"""
# Chromium as the tests run it (tests/signaling/browser.py): headless, fake microphone, loopback ICE
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
]


def missing() -> list[str]:
    """What this example needs that is not installed, with where it comes from."""
    needs = []
    if importlib.util.find_spec("pjsua2") is None:
        needs.append("pjsua2 for the desk phone (the project's demo and test extras: `make test-deps`)")
    if importlib.util.find_spec("playwright") is None:
        needs.append("Playwright for Python (the project's test extra: `make test-deps`)")
    for program, package in (("chromium", "chromium"), ("certutil", "libnss3-tools")):
        if shutil.which(program) is None:
            needs.append(f"{program} (Debian's {package}: `make test-deps` as root installs it)")
    if not (SOFTPHONES / "build" / "jssip.js").exists():
        needs.append("the JsSIP bundle peers/js-softphones/build/jssip.js (npm ci + build: `make test-deps`)")
    return needs


def trust(ca: Path, home: Path) -> None:
    """The README's certutil lines in `home`: Chromium on Linux reads trust anchors from ~/.pki/nssdb."""
    database = f"sql:{home / '.pki' / 'nssdb'}"
    (home / ".pki" / "nssdb").mkdir(parents=True)
    subprocess.run(["certutil", "-d", database, "-N", "--empty-password"], check=True, capture_output=True)
    add = ["certutil", "-d", database, "-A", "-t", "C,,", "-n", "gateway-dev-ca", "-i", str(ca)]
    subprocess.run(add, check=True, capture_output=True)


def beeps(wav: Path, freq: int) -> tuple[int, int]:
    """(loud 50 ms blocks of the recording whose strongest frequency is `freq`, loud blocks): Chromium's
    fake microphone beeps (400 Hz, not a pure sine) about 110 ms every 500 ms."""
    rate, samples = read_wav(wav)
    blocks = [samples[i : i + rate // 20] for i in range(0, len(samples), rate // 20)]
    loud = [block for block in blocks if rms(block) > 3000]  # the beeps, not their edges
    scan = range(100, 3000, 25)
    return sum(max(scan, key=lambda f: tone_ratio(block, rate, f)) == freq for block in loud), len(loud)


async def call_from_the_page(gateway: Gateway, phone: DeskPhone, work: Path) -> None:
    from playwright.async_api import async_playwright  # here: main() said so if it is missing

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            str(work / "profile"),
            executable_path=shutil.which("chromium"),
            args=CHROMIUM_FLAGS,
            env={**os.environ, "HOME": str(work / "home")},  # its NSS database trusts the dev CA
        )
        try:
            print("3. Chromium started, trusting the dev CA (no certificate-error flags)")
            page = browser.pages[0]
            # the page is served on the gateway's own origin (Playwright routes /__softphone/ to
            # peers/js-softphones), so its WebSocket is same-origin: no http.allowed_origins needed
            async with Softphone(page, "jssip", origin=gateway.http_url) as jssip:
                ws_url = gateway.http_url.replace("https", "wss", 1) + "/sip"
                await jssip.start(ws_url, "sip:alice@127.0.0.1", SIP_PASSWORD)
                await jssip.wait_for("registered")
                print(f"4. JsSIP registered sip:alice@127.0.0.1 over {ws_url}")
                await jssip.call("sip:2000@127.0.0.1")
                incoming = await phone.wait_for("incoming", timeout=15)
                await jssip.wait_for("confirmed")
                print(f"5. JsSIP's call confirmed; the phone took it from {incoming['from']}")
                level = await jssip.hears(440)  # the page's Web Audio analyser on the remote stream
                print(f"6. the page hears the phone's 440 Hz, {level:.0f} dB over the spectrum's median")
                await jssip.dtmf("5")  # JsSIP's sendDTMF with SIP INFO; the gateway sends RFC 4733 on
                dtmf = await phone.wait_for("dtmf")  # (sip.dtmf_mode, its default)
                print(
                    f"7. JsSIP sent DTMF 5 by SIP INFO; the phone received {dtmf['digit']} ({dtmf['method']})"
                )
                await asyncio.sleep(2)  # a few of the fake microphone's beeps into the phone's recording
                await jssip.hangup()
                await jssip.wait_for("ended")
                state = await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                print(f"8. JsSIP hung up; the phone says {state['state']}")
        finally:
            await browser.close()
    matching, loud = beeps(await phone.wait_for_recording(incoming["call"]), 400)
    print(f"9. the phone heard Chromium's fake microphone: {matching} of {loud} loud 50 ms blocks at 400 Hz")


async def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    needs = missing()
    if needs:
        print("Example 15 cannot run; it needs:\n  " + "\n  ".join(needs), file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="example-15-") as name:
        work = Path(name)
        made = make_dev_certificates(work / "dev-certs", ["127.0.0.1"])
        trust(made.ca, work / "home")
        print(f"1. dev CA and certificate for 127.0.0.1 in {made.certificate.parent}")
        async with DeskPhone(user="2000", tone=440) as phone:
            rtp = 30000 + 2 * (free_port() % 5000)  # as peers.demo: a range that moves from run to run
            values = {
                "sip_port": free_port(socket.SOCK_DGRAM),
                "http_port": free_port(),
                "certificate": made.certificate,
                "private_key": made.private_key,
                "rtp": rtp,
                "rtp_end": rtp + 99,
                "phone_port": phone.port,
                "password": SIP_PASSWORD,
                "web_secret_hash": ALICE_HASH,
                "state": work / "state",
            }
            gateway = Gateway(load_config_text(CONFIG % values, env={}))
            await gateway.start()
            try:
                print(f"2. gateway at {gateway.http_url} (wss://.../sip), desk phone 2000 on {phone.address}")
                await call_from_the_page(gateway, phone, work)
            finally:
                await gateway.close()
    print("10. gateway, Chromium and phone stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
