"""Per-phase timestamps of the HTTP offer API's offer -> answer inside the gateway (setup_bench --phases).

The gateway's own functions are wrapped (in the gateway's process only, nothing in gateway/ changes)
so that each records ``time.perf_counter()`` as it starts or ends; the marks of one request are those
from its ``request in`` to the next one (setup_bench's HTTP calls at 1 call/s do not overlap; at higher
rates the figures mix calls and mean little). Printed: per phase, the median and p90 of the time from
``request in`` over the calls, and of the step from the mark before, in milliseconds.

Phases (in the order a call meets them): aiohttp hands the request to its handler (request in), the
credentials checked, the JSON body read, the SDP checked (parse), the call started (driver.dial),
the browser's offer taken (offer_to_sip, or take_web_offer: parse, codecs), the SIP leg's socket opened
and our SIP offer written (offer_to_sip, or sip_offer after the response), the web leg's answer (accept_offer: setRemoteDescription, createAnswer, setLocalDescription,
which gathers the candidates), the answer handed to the session, the response built and written
(finish_response), the INVITE sent.

``python bench/setup_phases.py --run run -c gateway.yaml ...`` runs the gateway's CLI with the functions
wrapped (setup_bench.py does with ``--phases``) and writes the marks to $SETUP_PHASES_OUT as it exits
(and, with $SETUP_PHASES_PROFILE, the critical path's profile there); ``load`` reads them back.
"""

from __future__ import annotations

import atexit
import cProfile
import functools
import inspect
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKS: list[tuple[float, str]] = []
# With a profiler (setup_bench --phases --profile): it runs from each `request in` to its response's
# first bytes written, the offer's critical path only.
PROFILER: cProfile.Profile | None = None


_GC_START: list[float] = []


def _gc(phase: str, info: dict[str, int]) -> None:
    """Each garbage collection, as marks (``gc g<N> start``/``stop``) on the call's timeline."""
    if phase == "start":
        _GC_START.append(time.perf_counter())
    elif _GC_START:
        started = _GC_START.pop()
        GC.append((started, time.perf_counter(), info["generation"]))


GC: list[tuple[float, float, int]] = []  # (start, end, generation) of every collection


def _mark(label: str) -> None:
    MARKS.append((time.perf_counter(), label))
    if PROFILER is not None and label == "request in":
        PROFILER.enable()
    elif PROFILER is not None and label == "bytes to the socket":
        PROFILER.disable()


def _wrap(owner: Any, name: str, start: str | None, end: str | None) -> None:
    original: Callable[..., Any] = getattr(owner, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            if start:
                _mark(start)
            try:
                return await original(*args, **kwargs)
            finally:
                if end:
                    _mark(end)

        setattr(owner, name, wrapped_async)
        return

    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if start:
            _mark(start)
        try:
            return original(*args, **kwargs)
        finally:
            if end:
                _mark(end)

    setattr(owner, name, wrapped)


def install(profiler: cProfile.Profile | None = None) -> None:
    """Wrap the functions of the offer's path (before the gateway starts: the routes hold the handler);
    ``profiler`` runs on the critical path of each request only."""
    global PROFILER
    PROFILER = profiler
    import gc

    gc.callbacks.append(_gc)
    from aiohttp import http_writer, web_protocol
    from aiortc import RTCIceTransport, RTCPeerConnection

    from gateway.calls.registry import CallRegistry
    from gateway.media.bridge import MediaBridge
    from gateway.media.rtp.sip_leg import SipLeg
    from gateway.media.webrtc.webrtc_leg import WebRtcLeg
    from gateway.runtime import offers
    from gateway.runtime.call_runtime import CallRuntime
    from gateway.runtime.driver import CallDriver
    from gateway.runtime.sip_side import SipSide
    from gateway.signaling.http_api import handlers as http_api

    _wrap(web_protocol.RequestHandler, "_handle_request", "request in", None)
    _wrap(web_protocol.RequestHandler, "finish_response", "response built", "response written")
    _wrap(http_api, "authenticate", None, "credentials checked")
    _wrap(http_api, "_json_body", None, "body read")
    _wrap(http_api, "offer_request", "offer_request in", "offer_request out")
    _wrap(offers.OfferApi, "offer", "OfferApi.offer in", None)
    _wrap(offers, "parse_sdp", "SDP parse in", "SDP checked")
    _wrap(CallDriver, "http_offer", "http_offer in", None)
    _wrap(CallDriver, "dial", None, "call started")
    _wrap(CallDriver, "_check_web_offer", None, "offer checked (aiortc)")
    _wrap(CallRegistry, "dial", "registry.dial in", "registry.dial out")
    _wrap(CallRuntime, "_step", "runtime step", None)
    _wrap(CallDriver, "new_bridge", "new_bridge in", "new_bridge out")
    _wrap(MediaBridge, "_new_web_leg", "web leg in", "web leg out")
    _wrap(MediaBridge, "offer_to_sip", "offer_to_sip in", "offer_to_sip out")
    for name in ("take_web_offer", "sip_offer"):  # the early answer's halves of offer_to_sip (if any)
        if hasattr(MediaBridge, name):
            _wrap(MediaBridge, name, f"{name} in", f"{name} out")
    _wrap(SipLeg, "open", "SIP leg open in", "SIP leg open out")
    _wrap(MediaBridge, "answer_web_first", "answer_web_first in", "answer_web_first out")
    _wrap(WebRtcLeg, "accept_offer", "accept_offer in", "accept_offer out")
    _wrap(RTCPeerConnection, "setRemoteDescription", None, "setRemoteDescription out")
    _wrap(RTCPeerConnection, "createAnswer", None, "createAnswer out")
    _wrap(RTCPeerConnection, "setLocalDescription", None, "setLocalDescription out")
    _wrap(RTCPeerConnection, "_RTCPeerConnection__connect", "aiortc connect task", None)
    _wrap(RTCIceTransport, "start", "ICE start", None)
    _wrap(http_writer.StreamWriter, "_write", "bytes to the socket", None)
    _wrap(http_writer.StreamWriter, "_writelines", "bytes to the socket", None)
    _wrap(offers.HttpSession, "web_answer", "answer to the session", None)
    _wrap(SipSide, "execute", "SIP command", None)
    # http_api's wrapped handler read the module's functions at call time; the rest are methods


def report() -> None:
    """The phases' medians over the recorded calls (each from its `request in`)."""
    calls: list[list[tuple[float, str]]] = []
    for stamp, label in MARKS:
        if label == "request in":
            calls.append([])
        if calls:
            calls[-1].append((stamp, label))
    offers = [c for c in calls if any(label == "accept_offer in" for _, label in c)]
    if not offers:
        print("phases: no HTTP offer recorded")
        return
    since: dict[str, list[float]] = {}
    step: dict[str, list[float]] = {}
    order: list[str] = []
    for call in offers:
        first, previous = call[0][0], call[0][0]
        seen: set[str] = set()
        for stamp, label in call:
            if label in seen:  # a second request of the same call (close) or a repeated command
                continue
            seen.add(label)
            if label not in order:
                order.append(label)
            since.setdefault(label, []).append(1000 * (stamp - first))
            step.setdefault(label, []).append(1000 * (stamp - previous))
            previous = stamp
    collected = []
    for call in offers:
        start = call[0][0]
        end = next((stamp for stamp, label in call if label == "bytes to the socket"), start)
        spent = [(b - a, g) for a, b, g in GC if start <= a <= end]
        collected.append(
            (1000 * sum(d for d, _ in spent), len(spent), max((g for _, g in spent), default=-1))
        )
    if GC:
        print(
            f"\ngarbage collections on the critical path (request in -> bytes to the socket), per offer: "
            f"{[f'{ms:.2f} ms x{n} (gen {g})' for ms, n, g in collected]}"
        )
    print(
        f"\nphases of {len(offers)} HTTP offers (ms, median / p90; from `request in` and from the mark before)"
    )
    for label in sorted(order, key=lambda lab: statistics.median(since[lab])):
        a, b = sorted(since[label]), sorted(step[label])
        print(
            f"  {label:26} {statistics.median(a):7.3f} / {a[int(0.9 * (len(a) - 1))]:7.3f}"
            f"   step {statistics.median(b):7.3f} / {b[int(0.9 * (len(b) - 1))]:7.3f}   n={len(a)}"
        )
    slowest(offers, {label: statistics.median(values) for label, values in step.items()})


def slowest(offers: list[list[tuple[float, str]]], typical: dict[str, float], count: int = 3) -> None:
    """The ``count`` slowest offers (request in -> bytes to the socket) and their steps that took over
    0.3 ms more than the median step: where a p99 comes from."""
    totals = []
    for index, call in enumerate(offers):
        start = call[0][0]
        end = next((stamp for stamp, label in call if label == "bytes to the socket"), None)
        if end is not None:
            totals.append((end - start, index, call))
    totals.sort(key=lambda item: item[0], reverse=True)
    print(
        f"\nthe {min(count, len(totals))} slowest offers (request in -> bytes to the socket), their long steps:"
    )
    for total, index, call in totals[:count]:
        long_steps, previous, seen = [], call[0][0], set()
        for stamp, label in call:
            if label in seen:
                continue
            seen.add(label)
            extra = 1000 * (stamp - previous) - typical.get(label, 0.0)
            if extra > 0.3:
                long_steps.append(f"{label} +{extra:.2f}")
            previous = stamp
            if label == "bytes to the socket":
                break
        steps = ", ".join(long_steps) or "no step over its median by 0.3 ms"
        print(f"  {1000 * total:7.2f} ms (offer {index + 1} of {len(offers)}): {steps}")


def load(path: Path) -> None:
    """The marks a gateway run through ``--run`` wrote (for ``report``)."""
    saved = json.loads(path.read_text())
    MARKS.extend((stamp, label) for stamp, label in saved["marks"])
    GC.extend((start, end, generation) for start, end, generation in saved["gc"])


def _save() -> None:
    out = os.environ.get("SETUP_PHASES_OUT")
    if out:
        Path(out).write_text(json.dumps({"marks": MARKS, "gc": GC}))
    if PROFILER is not None and os.environ.get("SETUP_PHASES_PROFILE"):
        PROFILER.dump_stats(os.environ["SETUP_PHASES_PROFILE"])


def run(argv: list[str]) -> int:
    """The gateway's CLI with the offer's path wrapped; the marks saved as the process exits."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    install(cProfile.Profile(time.process_time) if os.environ.get("SETUP_PHASES_PROFILE") else None)
    atexit.register(_save)
    from gateway.cli import main

    return main(argv)


if __name__ == "__main__" and sys.argv[1:2] == ["--run"]:
    sys.exit(run(sys.argv[2:]))
