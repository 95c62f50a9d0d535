"""A real rtpengine (Debian ``rtpengine-daemon``) in user space, driven over its ng control protocol.

rtpengine runs without its kernel module (``table = -1``), with its own configuration file in a temporary
directory, interfaces on 127.0.0.1 and a port range of the caller's. It is the media anchor the benchmarks
compare the gateway's media bridge with (bench/vs_rtpengine.py).

The ng protocol: each request is one UDP datagram ``<cookie> <bencoded dict>``, the reply
``<cookie> <bencoded dict>`` with ``result: ok`` (or ``error-reason``). Bencode (BitTorrent's BEP 3):
integers ``i42e``, byte strings ``4:spam``, lists ``l...e``, dictionaries ``d...e`` with sorted keys.

Flags that make rtpengine work with aiortc (issue 14; TESTING.md "facts learned the hard way"): the web
offer goes towards the SIP side with ``RTP/AVP``, ``ICE=remove``, ``DTLS-reverse=passive`` (without it
rtpengine sends its ClientHello early and aiortc aborts with an "unexpected message" alert),
``rtcp-mux=demux``; the SIP answer goes back with ``UDP/TLS/RTP/SAVPF``, ``ICE=force``, ``DTLS=passive``,
``rtcp-mux=require``. Transcoding adds ``codec: {mask: [opus], transcode: [PCMU]}`` to the offer.

    with running_rtpengine(tmp_path, ports=(46000, 46999)) as engine:
        async with NgClient(engine.control) as ng:
            sip_offer = (await ng.request(web_offer_to_sip("call-1", "tag-1", web_sdp)))["sdp"]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeAlias

from peers.binaries import require_binary, unavailable
from peers.ports import free_port

__all__ = [
    "BencodeError",
    "NgClient",
    "NgError",
    "RtpEngine",
    "bdecode",
    "bencode",
    "delete",
    "running_rtpengine",
    "sip_answer_to_web",
    "web_offer_to_sip",
]

Bencodable: TypeAlias = "int | str | bytes | list[Bencodable] | dict[str, Bencodable]"
Decoded: TypeAlias = "int | bytes | list[Decoded] | dict[str, Decoded]"


class BencodeError(ValueError):
    """Input that is not bencode (or trailing bytes after one value)."""


class NgError(RuntimeError):
    """rtpengine answered ``result: error`` (its ``error-reason``) or did not answer."""


# ------------------------------------------------------------------------------------------- bencode


def bencode(value: Bencodable) -> bytes:
    """BEP 3 encoding; str is UTF-8, dict keys are sorted as raw byte strings."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(value: Bencodable, out: bytearray) -> None:
    if isinstance(value, bool):  # bool is an int: say so rather than send i1e for "yes"
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        out += b"i%de" % value
    elif isinstance(value, str | bytes):
        raw = value.encode() if isinstance(value, str) else value
        out += b"%d:" % len(raw) + raw
    elif isinstance(value, list):
        out += b"l"
        for item in value:
            _encode(item, out)
        out += b"e"
    elif isinstance(value, dict):
        out += b"d"
        for key in sorted(value, key=str.encode):
            _encode(key, out)
            _encode(value[key], out)
        out += b"e"
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Decoded:
    """The one value ``data`` holds; byte strings stay bytes, dict keys become str (UTF-8)."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} trailing bytes")
    return value


def _decode(data: bytes, at: int) -> tuple[Decoded, int]:
    if at >= len(data):
        raise BencodeError("truncated")
    lead = data[at : at + 1]
    if lead == b"i":
        end = data.find(b"e", at)
        if end < 0:
            raise BencodeError("unterminated integer")
        try:
            return int(data[at + 1 : end]), end + 1
        except ValueError as exc:
            raise BencodeError(f"bad integer {data[at + 1 : end]!r}") from exc
    if lead in (b"l", b"d"):
        at += 1
        items: list[Decoded] = []
        while data[at : at + 1] != b"e":
            if at >= len(data):
                raise BencodeError("unterminated list or dict")
            item, at = _decode(data, at)
            items.append(item)
        if lead == b"l":
            return items, at + 1
        if len(items) % 2:
            raise BencodeError("a dict key without a value")
        result: dict[str, Decoded] = {}
        for key, item in zip(items[::2], items[1::2], strict=True):
            if not isinstance(key, bytes):
                raise BencodeError("a dict key that is not a string")
            result[key.decode()] = item
        return result, at + 1
    if lead.isdigit():
        colon = data.find(b":", at)
        if colon < 0 or not data[at:colon].isdigit():
            raise BencodeError("bad string length")
        start = colon + 1
        end = start + int(data[at:colon])
        if end > len(data):
            raise BencodeError("truncated string")
        return data[start:end], end
    raise BencodeError(f"unexpected byte {lead!r} at {at}")


# ----------------------------------------------------------------------------------- ng messages


def web_offer_to_sip(
    call_id: str, from_tag: str, sdp: str, *, transcode: bool = False, to: str | None = None
) -> dict[str, Bencodable]:
    """The ``offer`` for a browser's SDP: plain RTP/AVP towards the SIP side (aiortc's flags above);
    ``transcode``: Opus masked and ``to`` (PCMU by default) offered instead, rtpengine transcoding."""
    message: dict[str, Bencodable] = {
        "command": "offer",
        "call-id": call_id,
        "from-tag": from_tag,
        "sdp": sdp,
        "transport-protocol": "RTP/AVP",
        "ICE": "remove",
        "DTLS-reverse": "passive",
        "rtcp-mux": ["demux"],
        "replace": ["origin", "session-connection"],
    }
    if transcode:
        message["codec"] = {"mask": ["opus"], "transcode": [to or "PCMU"]}
    return message


def sip_answer_to_web(call_id: str, from_tag: str, to_tag: str, sdp: str) -> dict[str, Bencodable]:
    """The ``answer`` for the SIP side's SDP: DTLS-SRTP, ICE and rtcp-mux towards the browser."""
    return {
        "command": "answer",
        "call-id": call_id,
        "from-tag": from_tag,
        "to-tag": to_tag,
        "sdp": sdp,
        "transport-protocol": "UDP/TLS/RTP/SAVPF",
        "ICE": "force",
        "DTLS": "passive",
        "rtcp-mux": ["require"],
        "replace": ["origin", "session-connection"],
    }


def delete(call_id: str, from_tag: str) -> dict[str, Bencodable]:
    return {"command": "delete", "call-id": call_id, "from-tag": from_tag}


class _NgProtocol(asyncio.DatagramProtocol):
    def __init__(self, client: NgClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client._reply(data)


class NgClient:
    """Requests over UDP to rtpengine's ``listen-ng``, matched to replies by cookie; retried on loss."""

    def __init__(self, control: tuple[str, int], *, timeout: float = 5.0) -> None:
        self.control = control
        self.timeout = timeout
        self._cookies = itertools.count(1)
        self._waiting: dict[bytes, asyncio.Future[dict[str, Decoded]]] = {}
        self._transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> NgClient:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _NgProtocol(self), remote_addr=self.control
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._transport is not None:
            self._transport.close()

    def _reply(self, data: bytes) -> None:
        cookie, _, body = data.partition(b" ")
        future = self._waiting.pop(cookie, None)
        if future is None or future.done():
            return  # a reply to a retransmission already answered
        try:
            value = bdecode(body)
        except BencodeError as exc:
            future.set_exception(NgError(f"undecodable reply: {exc}"))
            return
        if not isinstance(value, dict):
            future.set_exception(NgError(f"a reply that is not a dict: {value!r}"))
            return
        future.set_result(value)

    async def request(self, message: dict[str, Bencodable]) -> dict[str, Decoded]:
        """Send ``message``; the reply dict (``sdp`` as bytes). Raises NgError on ``result: error``."""
        if self._transport is None:
            raise RuntimeError("use `async with NgClient(...)`")
        cookie = f"{os.getpid()}_{next(self._cookies)}".encode()
        future: asyncio.Future[dict[str, Decoded]] = asyncio.get_running_loop().create_future()
        self._waiting[cookie] = future
        datagram = cookie + b" " + bencode(message)
        deadline = time.monotonic() + self.timeout
        try:
            while True:  # the ng protocol is UDP: a lost request is sent again with the same cookie
                self._transport.sendto(datagram)
                with contextlib.suppress(TimeoutError):
                    reply = await asyncio.wait_for(asyncio.shield(future), 0.5)
                    break
                if time.monotonic() > deadline:
                    raise NgError(f"no reply to {message.get('command')!r} from {self.control}")
        finally:
            self._waiting.pop(cookie, None)
        if reply.get("result") != b"ok":
            reason = reply.get("error-reason", b"?")
            raise NgError(f"{message.get('command')!r}: {reason!r}")
        return reply


# ----------------------------------------------------------------------------------------- process


@dataclass
class RtpEngine:
    control: tuple[str, int]  # listen-ng
    ports: tuple[int, int]
    workdir: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> Path:
        return self.workdir / "rtpengine.log"


def write_config(workdir: Path, control: tuple[str, int], ports: tuple[int, int], threads: int) -> Path:
    path = workdir / "rtpengine.conf"
    path.write_text(
        "[rtpengine]\n"
        "table = -1\n"  # user space: no kernel module, no iptables (needs no root)
        "interface = 127.0.0.1\n"
        f"listen-ng = {control[0]}:{control[1]}\n"
        f"port-min = {ports[0]}\n"
        f"port-max = {ports[1]}\n"
        f"num-threads = {threads}\n"
        "timeout = 60\n"
        "delete-delay = 0\n"
        "log-level = 4\n"
        "log-stderr = true\n"
        "foreground = true\n"
    )
    return path


@contextlib.contextmanager
def running_rtpengine(
    workdir: Path, *, ports: tuple[int, int], host: str = "127.0.0.1", threads: int | None = None
) -> Iterator[RtpEngine]:
    """rtpengine in the foreground on ``host``, its log in ``workdir/rtpengine.log``; killed on exit."""
    binary = require_binary("rtpengine")
    control = (host, free_port(socket.SOCK_DGRAM, host))
    config = write_config(workdir, control, ports, threads or os.cpu_count() or 1)
    log = (workdir / "rtpengine.log").open("wb")
    command = [binary, f"--config-file={config}", "--config-section=rtpengine"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = RtpEngine(control, ports, workdir, process)
    try:
        _wait_ready(engine)
        yield engine
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _wait_ready(engine: RtpEngine) -> None:
    """Until rtpengine answers an ng ``ping`` with ``pong``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        for _ in range(50):
            if engine.process.poll() is not None:
                unavailable(
                    f"rtpengine exited ({engine.process.returncode}): {engine.log.read_text()[-2000:]}"
                )
            sock.sendto(b"ready " + bencode({"command": "ping"}), engine.control)
            with contextlib.suppress(OSError):
                data = sock.recv(65536)
                reply = bdecode(data.partition(b" ")[2])
                if isinstance(reply, dict) and reply.get("result") == b"pong":
                    return
    unavailable(f"rtpengine did not answer ng ping on {engine.control}: {engine.log.read_text()[-2000:]}")
