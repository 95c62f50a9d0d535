"""Voice quality through the gateway and through rtpengine under the same seeded impairments (issue 35).

Each call carries 23 s of speech (espeak-ng, made at run time, 8 kHz) both ways at once, through one box:

* web -> phone: an aiortc "browser" sends it as Opus; the box transcodes to PCMU for a plain phone that
  places every packet by RTP timestamp (the ideal receiver: no jitter buffer, no concealment, silence
  where a packet never came). The browser's leg (browser -> box) is impaired.
* phone -> web: the phone sends it as PCMU, paced every 20 ms; the box encodes Opus to the browser, which
  records what it plays as a browser does (quality_peers.Playout: at each RTP timestamp, a lost packet
  concealed from the next one's FEC or by PLC, as NetEq; aiortc's own receiver adds four frames of
  silence to each lost one). The phone's leg (phone -> box) is impaired.

Impairment (bench/impair.py): a seeded user-space UDP relay on loopback ports in front of the box on the
impaired leg (this kernel has no netem; no network namespace is needed, every peer binds 127.0.0.1). It
drops or delays the RTP going into the box only; the same seed impairs the same packets for both boxes.
Cells: clean, random loss 2/5/10 %, Gilbert-Elliott bursts (5 %, mean 100 ms), 40 +- 20 ms uniform
delay (reorders), and 5 % loss with that jitter.

Boxes:

* ``ours``: the gateway as users run it: ``python -m gateway run -c gateway.yaml`` (the shipped file; only
  ports, the PBX address and the state directory overridden by GATEWAY_* variables) in its own process;
  the browser calls extension 2000 as the demo user alice over /ws (peers/web_user.py); the PBX is a tiny
  SIP UAS (bench/quality_peers.py) answering PCMU towards the phone.
* ``rtpengine``: Debian's rtpengine in user space driven over ng (peers/rtpengine.py) with the flags aiortc
  needs and ``codec: {mask: [opus], transcode: [PCMU]}``, between the same two peers.

Score: PESQ P.862 narrowband MOS-LQO (PyPI ``pesq``) of each recording against the speech, aligned by
cross-correlation; a G.711 round trip of the reference (the ceiling of anything that ends in PCMU) is
printed first.

Wideband (``--codec g722`` or ``opus``, issue 66 items 1, 2 and 4): the phone speaks G.722 (16 kHz, the
boxes transcode it to and from Opus; rtpengine with ``transcode: [G722]``) or Opus (16 kHz PCM, in-band
FEC; both boxes forward it), and the browser sends 16 kHz speech: each direction is scored twice, PESQ
P.862.2 wideband (``wb``) at 16 kHz against a 16 kHz espeak-ng reference and narrowband at 8 kHz
against the 8 kHz one; the ceiling printed first is the phone codec's own round trip of the reference.
The Chromium column then records at 16 kHz and is scored both ways too. Runs are interleaved (ours,
rtpengine, then the reverse order); medians are printed with the ratio ours / rtpengine (above 1 is better
for us) and /proc/loadavg.

A real browser receiver (``--chromium``, the default; bench/quality_chromium.py): per cell and box a
second call sends the phone's speech, on the same impaired phone leg, to headless Chromium (Playwright,
/usr/bin/chromium) offering Opus only, which records what it plays from WebAudio at 8 kHz: the audio after
Chromium's own jitter buffer and concealment (NetEq), what a user hears. Only phone -> web has a real
browser column: web -> phone ends at a phone, whose ideal receiver is above. ``--chromium-codecs
opus,g711`` (issue 66 item 3) adds a second Chromium call per cell and box whose page offers PCMU only: a
G.711 phone's audio passed through to Chromium, whose NetEq conceals its losses, beside the box's
transcoding to Opus (``opus``: the page offers Opus and RED, as Chrome does for voice). ``auto`` adds a
call whose page makes Chromium's own offer, every codec it has, as any browser does: the box chooses (ours
per call, from the phone leg's losses: ``codecs.g711_to_web``, gateway/media/conceal_steer.py), and
``--phone-lead 4`` lets that choice settle before the speech, as it has for all but a real call's first
seconds (every Chromium column then starts its recording with the speech).

Run: python bench/quality_bench.py [--runs 1] [--cells clean,loss2,...] [--boxes ours,rtpengine] [--no-chromium]
     [--sender aiortc|chrome] [--codec pcmu|g722|opus] [--chromium-codecs opus,g711,auto] [--no-aiortc]
     [--phone-lead SECONDS]
     (needs espeak-ng, sox, rtpengine: make bench-deps; pesq, numpy: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import gateway_process  # noqa: E402
from impair import Impairment, ImpairRelay, point_candidates  # noqa: E402
from quality_peers import (  # noqa: E402
    PHONE,
    RATE,
    Address,
    Browser,
    Phone,
    PhoneCodec,
    SipUas,
    g711_round_trip,
    pcmu_answer,
    resample,
    round_trip,
    score,
    sdp_audio_address,
    speech,
)

from peers.ports import free_port  # noqa: E402

CELLS = {
    "clean": Impairment("clean"),
    "loss2": Impairment("2% random", loss=0.02),
    "loss5": Impairment("5% random", loss=0.05),
    "loss10": Impairment("10% random", loss=0.10),
    "burst5": Impairment("5% GE 100 ms", burst_loss=0.05, burst_ms=100),
    "jitter": Impairment("40+-20 ms", delay_ms=40, jitter_ms=20),
    "loss5jitter": Impairment("5% + jitter", loss=0.05, delay_ms=40, jitter_ms=20),
}
TAIL = 1.5  # seconds of silence after the speech: the late and delayed packets arrive
_BASE = int(os.environ.get("QUALITY_BENCH_PORT_BASE", "52000"))
OUR_PORTS = (_BASE, _BASE + 998)
RTPENGINE_PORTS = (_BASE + 1000, _BASE + 1999)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Box(Protocol):
    name: str

    async def start(self, workdir: Path) -> None: ...
    async def call(self, offer: str, phone: Address) -> tuple[str, Address]: ...
    async def hangup(self) -> None: ...
    async def close(self) -> None: ...


class Ours:
    """The gateway process with the shipped gateway.yaml, alice on /ws, a SIP UAS as the PBX."""

    name = "ours"

    def __init__(self, codec: PhoneCodec = PHONE["pcmu"]) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.uas = SipUas(codec)
        self.user: Any = None
        self.url = ""
        self.call_id = ""

    async def start(self, workdir: Path) -> None:
        await self.uas.start()
        http = free_port()
        sip = free_port(socket.SOCK_DGRAM)
        environment = {
            **os.environ,
            "GATEWAY_SIP__LISTEN__0__PORT": str(sip),
            "GATEWAY_SIP__LISTEN__1__PORT": str(sip),
            "GATEWAY_HTTP__PORT": str(http),
            "GATEWAY_PBX__ADDRESS": f"{self.uas.address[0]}:{self.uas.address[1]}",
            "GATEWAY_MEDIA__RTP_PORTS__START": str(OUR_PORTS[0]),
            "GATEWAY_MEDIA__RTP_PORTS__END": str(OUR_PORTS[1]),
            "GATEWAY_STATE_DIR": str(workdir / "gateway-state"),
            "GATEWAY_LOGGING__LEVEL": "WARNING",
        }
        self.log = workdir / "gateway.log"
        self.process = await gateway_process.start(workdir, environment, self.log)
        self.url = f"http://127.0.0.1:{http}"
        await self._login()

    async def _login(self) -> None:
        from peers.demo import ALICE_SECRET
        from peers.web_user import WebUser

        self.user = WebUser(self.url, "alice", ALICE_SECRET)
        await self.user.__aenter__()

    async def call(self, offer: str, phone: Address) -> tuple[str, Address]:
        closed = [e for e in self.user.events if e.get("type") == "closed"]
        if closed:  # the gateway closed alice's /ws between calls (seen under load): log in again
            said = self.log.read_text(errors="replace").splitlines()[-3:]
            print(
                f"(ours: /ws closed {closed[-1]}, log {said}; logging in again)", file=sys.stderr, flush=True
            )
            await self.user.__aexit__(None, None, None)
            await self._login()
        while not self.uas.offers.empty():
            self.uas.offers.get_nowait()
        self.uas.media = phone
        self.call_id = await self.user.call("2000", offer)
        sip_offer = await asyncio.wait_for(self.uas.offers.get(), 20)
        connected = await self.user.wait_for("connected", call_id=self.call_id, timeout=20)
        return str(connected["sdp"]), sdp_audio_address(sip_offer)

    async def hangup(self) -> None:
        await self.user.request({"type": "hangup", "call_id": self.call_id})
        await self.user.wait_for("ended", call_id=self.call_id, timeout=20)

    async def close(self) -> None:
        if self.user is not None:
            await self.user.__aexit__(None, None, None)
        await gateway_process.stop(self.process, timeout=20)
        self.uas.close()


class RtpEngine:
    """rtpengine in user space, driven over ng as a SIP proxy would (peers/rtpengine.py)."""

    name = "rtpengine"

    def __init__(self, codec: PhoneCodec = PHONE["pcmu"]) -> None:
        self.codec = codec
        self._stack = contextlib.ExitStack()
        self.ng: Any = None
        self.call_id = ""

    async def start(self, workdir: Path) -> None:
        from peers.rtpengine import NgClient, running_rtpengine

        engine = self._stack.enter_context(running_rtpengine(workdir, ports=RTPENGINE_PORTS))
        self.ng = NgClient(engine.control)
        await self.ng.__aenter__()

    async def call(self, offer: str, phone: Address) -> tuple[str, Address]:
        from peers.rtpengine import sip_answer_to_web, web_offer_to_sip

        self.call_id = f"quality-{time.monotonic_ns()}"
        to = None if self.codec.name == "opus" else self.codec.name  # Opus on both legs: forwarded
        sip = await self.ng.request(
            web_offer_to_sip(self.call_id, "web", offer, transcode=to is not None, to=to)
        )
        answer = pcmu_answer(phone, self.codec)
        web = await self.ng.request(sip_answer_to_web(self.call_id, "web", "phone", answer))
        return web["sdp"].decode(), sdp_audio_address(sip["sdp"].decode())

    async def hangup(self) -> None:
        from peers.rtpengine import delete

        await self.ng.request(delete(self.call_id, "web"))

    async def close(self) -> None:
        if self.ng is not None:
            await self.ng.__aexit__(None, None, None)
        self._stack.close()


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    box: str
    cell: str
    to_phone: float  # MOS-LQO of the browser's speech at the phone
    to_web: float  # MOS-LQO of the phone's speech at the browser
    to_chromium: float  # MOS-LQO of the phone's speech at Chromium (NaN: not run)
    chromium_to_phone: float  # MOS-LQO of Chromium's speech at the phone (NaN: not run)
    load: str
    lost: tuple[int, int]  # packets the relays dropped: browser leg, phone leg
    fec: bool = False  # the browser sent in-band FEC (--sender chrome and the box's answer asked for it)
    red: bool = False  # the box's answer to Chromium kept red: Chromium sent RED around Opus
    to_phone_wb: float = math.nan  # P.862.2 wideband MOS-LQO (--codec g722 or opus)
    to_web_wb: float = math.nan
    to_chromium_wb: float = math.nan
    chromium_to_phone_wb: float = math.nan
    to_chromium_g711: float = (
        math.nan
    )  # the phone's G.711 passed through to Chromium (--chromium-codecs g711)
    g711_chromium_to_phone: float = math.nan
    to_chromium_auto: float = math.nan  # Chromium's own offer, the box choosing (--chromium-codecs auto)
    auto_chromium_to_phone: float = math.nan


def chrome_fec_loss(cell: Impairment) -> int:
    """The loss Chrome's Opus encoder would be told from RTCP reports on ``cell``'s leg, in percent."""
    return math.ceil(100 * max(cell.loss, cell.burst_loss))


async def one_call(
    box: Box, cell: Impairment, reference: Any, sender: str = "aiortc", codec: PhoneCodec = PHONE["pcmu"],
    wideband: Any = None,
) -> Result:  # fmt: skip
    """One call through ``box`` with ``cell`` on both impaired legs (different seeds per leg); ``sender``
    chrome: the browser encodes Opus as Chrome does with in-band FEC (quality_peers.Browser); ``codec``:
    the phone's; ``wideband``: the 16 kHz reference, which a wideband codec's phone and the browser send
    and each direction is scored against in wideband too."""
    web_relay = await ImpairRelay(cell).start()
    phone_relay = await ImpairRelay(dataclasses.replace(cell, seed=cell.seed + 1000)).start()
    phone = await Phone(codec).start()
    phone_relay.towards(peer=phone.address)
    sent = wideband if wideband is not None else reference
    browser = Browser(
        sent, chrome_fec_loss(cell) if sender == "chrome" else None, 16000 if wideband is not None else RATE
    )
    try:
        offer, web_address = point_candidates(await browser.offer(), web_relay.b)
        web_relay.towards(peer=web_address)
        answer, box_sip = await box.call(offer, phone_relay.b)
        phone_relay.towards(box=box_sip)
        answer, box_web = point_candidates(answer, web_relay.a)
        web_relay.towards(box=box_web)
        await browser.accept(answer)
        load = loadavg()
        await phone.play(sent, phone_relay.a, TAIL)  # the browser's speech started at "connected"
        await box.hangup()
    finally:
        await browser.close()
        web_relay.close()
        phone_relay.close()
        phone.close()
    wide = wideband is not None
    return Result(
        box.name, cell.name, score(reference, phone.recording(RATE)), score(reference, browser.recording()),
        math.nan, math.nan, load, (web_relay.impairer.lost, phone_relay.impairer.lost), browser.fec_used,
        to_phone_wb=score(wideband, phone.recording(16000), 16000) if wide else math.nan,
        to_web_wb=score(wideband, browser.recording(16000), 16000) if wide else math.nan,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class Heard:
    """A Chromium call's scores: its microphone's speech at the phone, the phone's as Chromium played it
    (narrowband; wideband too for a wideband phone, else NaN), and whether the answer kept red."""

    sent: float
    heard: float
    red: bool
    sent_wb: float = math.nan
    heard_wb: float = math.nan
    lost: tuple[int, int] = (0, 0)  # packets the relays dropped: browser leg, phone leg


async def chromium_call(
    box: Box, cell: Impairment, reference: Any, context: Any, codec: PhoneCodec = PHONE["pcmu"],
    wideband: Any = None, offers: tuple[str, ...] | None = None, lead: float = 0.0,
) -> Heard:  # fmt: skip
    """A real Chromium's call through ``box``, both legs impaired as in ``one_call``: its fake microphone's
    speech at the phone, the phone's speech as Chromium plays it, and whether the answer kept Chromium's
    red (RFC 2198: Chromium then sends RED around Opus). ``offers``: the mime types the page offers
    (quality_chromium.OPUS by default); ``wideband``: the 16 kHz reference the phone then speaks (and
    Chromium's microphone plays: ``context`` made with it), Chromium recording at 16 kHz; ``lead``: seconds
    of silence the phone sends before its speech, Chromium recording from the speech on."""
    from quality_chromium import LEAD, OPUS, ChromiumPeer

    web_relay = await ImpairRelay(cell).start()
    phone_relay = await ImpairRelay(dataclasses.replace(cell, seed=cell.seed + 1000)).start()
    phone = await Phone(codec).start()
    phone_relay.towards(peer=phone.address)
    peer = ChromiumPeer(context, 16000 if wideband is not None else RATE, OPUS if offers is None else offers)
    try:
        offer, web_address = point_candidates(await peer.offer(), web_relay.b)
        web_relay.towards(peer=web_address)
        answer, box_sip = await box.call(offer, phone_relay.b)
        phone_relay.towards(box=box_sip)
        red = _red_before_opus(answer)
        answer, box_web = point_candidates(answer, web_relay.a)
        web_relay.towards(box=box_web)
        await peer.accept(answer)
        recording = [] if lead > 0 else [asyncio.ensure_future(peer.record())]
        # the microphone's speech began LEAD s after offer(): the phone plays on until it is over
        await phone.play(
            wideband if wideband is not None else reference, phone_relay.a, TAIL + LEAD, lead,
            lambda: recording.append(asyncio.ensure_future(peer.record())),
        )  # fmt: skip
        await asyncio.gather(*recording)
        heard = await peer.stop()
        if os.environ.get("QUALITY_BENCH_NETEQ"):  # what Chromium's jitter buffer did, per call
            print(f"    neteq {box.name} {cell.name} {','.join(offers or OPUS)}: {peer.stats}", flush=True)
        await box.hangup()
    finally:
        await peer.close()
        web_relay.close()
        phone_relay.close()
        phone.close()
    lost = (web_relay.impairer.lost, phone_relay.impairer.lost)
    if wideband is None:
        return Heard(score(reference, phone.recording()), score(reference, heard), red, lost=lost)
    return Heard(
        score(reference, phone.recording(RATE)), score(reference, resample(heard, 16000, RATE)), red,
        score(wideband, phone.recording(16000), 16000), score(wideband, heard, 16000), lost,
    )  # fmt: skip


def _red_before_opus(answer: str) -> bool:
    """Whether Chromium sends RED on this answer: red listed before Opus (libwebrtc's rule, sdp/opus.py)."""
    import sdp

    audio = next((m for m in sdp.parse(answer).media if m.media == "audio"), None)
    names = [c.name.lower() for c in audio.codecs] if audio is not None else []
    return "red" in names and "opus" in names and names.index("red") < names.index("opus")


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else math.nan


async def measure(
    box: Box, cell: Impairment, reference: Any, sender: str, codec: PhoneCodec, wideband: Any, context: Any,
    offers: set[str], aiortc: bool = True, lead: float = 0.0,
) -> Result:  # fmt: skip
    """One cell's calls through ``box``: the aiortc one (``one_call``; unless not ``aiortc``), then
    Chromium's when ``context``, one per page offer in ``offers`` (``opus``: Opus and RED; ``g711``: PCMU
    only, passed through)."""
    nan = math.nan
    r = Result(box.name, cell.name, nan, nan, nan, nan, loadavg(), (0, 0))
    if aiortc:
        r = await one_call(box, cell, reference, sender, codec, wideband)
    if context is not None and "opus" in offers:
        h = await chromium_call(box, cell, reference, context, codec, wideband, lead=lead)
        r = dataclasses.replace(
            r, to_chromium=h.heard, chromium_to_phone=h.sent, red=h.red, to_chromium_wb=h.heard_wb,
            chromium_to_phone_wb=h.sent_wb, lost=r.lost if aiortc else h.lost,
        )  # fmt: skip
    if context is not None and "g711" in offers:
        from quality_chromium import G711

        h = await chromium_call(box, cell, reference, context, codec, None, G711, lead)
        r = dataclasses.replace(
            r, to_chromium_g711=h.heard, g711_chromium_to_phone=h.sent, lost=r.lost if r.lost != (0, 0) else h.lost
        )  # fmt: skip
    if context is not None and "auto" in offers:
        from quality_chromium import ALL

        h = await chromium_call(box, cell, reference, context, codec, None, ALL, lead)
        r = dataclasses.replace(
            r, to_chromium_auto=h.heard, auto_chromium_to_phone=h.sent, lost=r.lost if r.lost != (0, 0) else h.lost
        )  # fmt: skip
    return r


def line(r: Result, wide: bool, g711: bool, auto: bool = False) -> str:
    """One call's printed row."""
    text = (
        f"{r.cell:<14}{r.box:>10}{r.to_phone:>12.2f}{r.to_web:>12.2f}{r.to_chromium:>12.2f}"
        f"{r.chromium_to_phone:>12.2f}{'/'.join(map(str, r.lost)):>10}  [{r.load}]"
        f"{' fec' if r.fec else ''}{' red' if r.red else ''}"
    )
    if wide:
        text += f"  WB {r.to_phone_wb:.2f} / {r.to_web_wb:.2f} Chromium {r.to_chromium_wb:.2f} / {r.chromium_to_phone_wb:.2f}"
    if g711:
        text += f"  G.711 {r.to_chromium_g711:.2f} / {r.g711_chromium_to_phone:.2f}"
    if auto:
        text += f"  own offer {r.to_chromium_auto:.2f} / {r.auto_chromium_to_phone:.2f}"
    return text


def print_medians(
    results: list[Result], cells: list[Impairment], runs: int, spoken: str, g711: bool, auto: bool = False
) -> None:
    """The medians of ``results`` per cell, ours beside rtpengine with the ratio."""

    def median(box: str, cell: str, key: str) -> float:
        values = [getattr(r, key) for r in results if r.box == box and r.cell == cell]
        values = [v for v in values if not math.isnan(v)]
        return statistics.median(values) if values else math.nan

    def table(columns: dict[str, str]) -> None:
        """One row per cell: ours, rtpengine and the ratio of each ``columns`` key (Result's field) under
        its heading."""
        print(f"{'':<14}" + "".join(f"{heading:^30}" for heading in columns.values()))
        print(f"{'cell':<14}" + f"{'ours':>10}{'rtpengine':>10}{'ratio':>10}" * len(columns))
        for cell in cells:
            row = f"{cell.name:<14}"
            for key in columns:
                ours, theirs = median("ours", cell.name, key), median("rtpengine", cell.name, key)
                row += f"{ours:>10.2f}{theirs:>10.2f}{ratio(ours, theirs):>10.2f}"
            print(row)

    print(f"\nmedians of {runs} run(s); ratio ours / rtpengine (above 1 is better for us)")
    table({
        "to_phone": f"web -> phone (Opus -> {spoken})", "to_web": f"phone -> web ({spoken} -> Opus)",
        "to_chromium": "phone -> Chromium (Opus)", "chromium_to_phone": f"Chromium -> phone ({spoken})",
    })  # fmt: skip
    if g711:
        print(
            "\nthe phone's G.711 passed through to Chromium (its page offers PCMU only); medians, ratio as above"
        )
        table(
            {
                "to_chromium_g711": "phone -> Chromium (PCMU)",
                "g711_chromium_to_phone": "Chromium -> phone (PCMU)",
            }
        )
    if auto:
        print("\nChromium's own offer (every codec it has), the box choosing; medians, ratio as above")
        table({"to_chromium_auto": "phone -> Chromium", "auto_chromium_to_phone": "Chromium -> phone"})
    if any(not math.isnan(r.to_phone_wb) for r in results):
        print(f"\nwideband, PESQ P.862.2 WB MOS-LQO, the phone speaking {spoken}; medians, ratio as above")
        table({
            "to_phone_wb": "web -> phone", "to_web_wb": "phone -> web", "to_chromium_wb": "phone -> Chromium",
            "chromium_to_phone_wb": "Chromium -> phone",
        })  # fmt: skip


async def bench(args: argparse.Namespace) -> int:
    names = args.boxes.split(",")
    offers = set(args.chromium_codecs.split(",")) if args.chromium else set()
    cells = [dataclasses.replace(CELLS[key], seed=args.seed) for key in args.cells.split(",")]
    with tempfile.TemporaryDirectory(prefix="quality-bench-") as temp:
        workdir = Path(temp)
        reference = speech(workdir)
        codec = PHONE[args.codec]
        wideband = speech(workdir, rate=16000) if codec.rate == 16000 else None
        if wideband is None:
            ceiling = f"a G.711 round trip of the reference scores {score(reference, g711_round_trip(reference)):.2f}"
        else:
            trip = round_trip(codec, wideband)
            ceiling = (
                f"a {codec.name} round trip of the reference scores WB {score(wideband, trip, 16000):.2f}, "
                f"NB {score(reference, resample(trip, 16000, RATE)):.2f}"
            )
        print(
            f"voice quality, PESQ P.862 NB{' and P.862.2 WB' if wideband is not None else ''} MOS-LQO: "
            f"{len(reference) / 8000:.1f} s of espeak-ng speech per call, both directions at once, "
            f"{args.runs} run(s), seed {args.seed}; the phone speaks {codec.name}; {ceiling}; browser "
            f"sender {args.sender}; load average {loadavg()}",
            flush=True,
        )
        boxes: dict[str, Box] = {"ours": Ours(codec), "rtpengine": RtpEngine(codec)}
        results: list[Result] = []
        stack = contextlib.AsyncExitStack()
        try:
            context = None
            if args.chromium:
                from quality_chromium import capture_file, chromium

                if wideband is not None:
                    capture = capture_file(wideband, 16000, workdir)
                else:
                    capture = capture_file(reference, 8000, workdir)
                context = await stack.enter_async_context(chromium(capture))
            for name in names:
                (workdir / name).mkdir()
                await boxes[name].start(workdir / name)
            print(
                f"{'cell':<14}{'box':>10}{'web->phone':>12}{'phone->web':>12}{'->Chromium':>12}"
                f"{'Chromium->':>12}{'lost':>10}  loadavg"
                + ("  [G.711 passed through: ->Chromium / Chromium->]" if "g711" in offers else "")
                + ("  [Chromium's own offer: ->Chromium / Chromium->]" if "auto" in offers else "")
            )
            for run in range(args.runs):
                for cell in cells:
                    for name in names if run % 2 == 0 else names[::-1]:
                        r = await measure(boxes[name], cell, reference, args.sender, codec, wideband,
                                          context, offers, args.aiortc, args.phone_lead)  # fmt: skip
                        results.append(r)
                        print(line(r, wideband is not None, "g711" in offers, "auto" in offers), flush=True)
        finally:
            for box in boxes.values():
                await box.close()
            await stack.aclose()

    print_medians(results, cells, args.runs, PHONE[args.codec].name, "g711" in offers, "auto" in offers)
    print(f"load average {loadavg()} at the end")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="interleaved runs per cell (medians printed)")
    parser.add_argument("--cells", default=",".join(CELLS), help=f"comma-separated, of {','.join(CELLS)}")
    parser.add_argument("--boxes", default="ours,rtpengine")
    parser.add_argument(
        "--sender",
        choices=("aiortc", "chrome"),
        default="aiortc",
        help="the browser's Opus encoder: aiortc's own (no FEC), or as Chrome's with in-band FEC when the "
        "answer asks for it (useinbandfec=1), told the leg's loss as RTCP would report it",
    )
    parser.add_argument(
        "--chromium",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also each cell's phone -> web direction to headless Chromium (Playwright, /usr/bin/chromium)",
    )
    parser.add_argument(
        "--aiortc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each cell's call between the aiortc browser and the phone (the first two columns); "
        "--no-aiortc: the Chromium calls only",
    )
    parser.add_argument("--seed", type=int, default=1, help="the impairment's seed (the phone leg's + 1000)")
    parser.add_argument(
        "--codec",
        choices=sorted(PHONE),
        default="pcmu",
        help="the phone's codec: pcmu (narrowband), g722 (wideband, transcoded to and from Opus) or opus "
        "(wideband, forwarded); g722 and opus are scored in P.862.2 wideband too, without Chromium",
    )
    parser.add_argument(
        "--chromium-codecs",
        default="opus",
        help="what each Chromium call's page offers, comma-separated: opus (Opus and RED: the box encodes "
        "Opus), g711 (PCMU only: a G.711 phone's audio passed through; --codec pcmu only) and auto "
        "(Chromium's own offer, every codec it has: the box chooses, ours per call by codecs.g711_to_web)",
    )
    parser.add_argument(
        "--phone-lead",
        type=float,
        default=0.0,
        help="seconds of silence the phone sends before its speech in Chromium calls, recorded from the "
        "speech on: a per-call choice (codecs.g711_to_web auto) has then settled, as in all but the first "
        "seconds of a real call",
    )
    args = parser.parse_args()
    offers = set(args.chromium_codecs.split(","))
    if offers - {"opus", "g711", "auto"} or (offers & {"g711", "auto"} and args.codec != "pcmu"):
        parser.error(
            f"--chromium-codecs takes opus, g711 and auto (g711, auto with --codec pcmu): {args.chromium_codecs}"
        )
    unknown = set(args.cells.split(",")) - set(CELLS)
    if unknown:
        parser.error(f"unknown cells {sorted(unknown)}; known: {', '.join(CELLS)}")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
