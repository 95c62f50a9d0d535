"""baresip (Debian ``baresip-core``) as a second, independent SIP phone, for tests on loopback.

A `Baresip` is one baresip process with its own config directory (under the test's tmp_path): UDP SIP
on a free port of 127.0.0.1, RTP in ``rtp_ports``, no sound card (the microphone is a WAV file with a
tone, played by the ``aufile`` source; what it hears goes to ``aubridge`` and is written to a WAV file by
the ``sndfile`` filter), and media encryption (``mediaenc``: ``dtls_srtp``, ``srtp``...) and ICE
(``medianat=ice``) as asked. It is driven over ``ctrl_tcp`` (netstring-framed JSON: commands in,
events out) and stopped by its PID:

    async with Baresip(tmp_path, tone=440, mediaenc="dtls_srtp", rtcp_mux=True) as phone:
        await phone.dial("sip:1001@127.0.0.1:5060")
        await phone.wait_for("CALL_ESTABLISHED")
        ...
        await phone.hangup()
        path = phone.recording()   # what baresip heard (8 kHz mono WAV)

The modules it loads are all in ``baresip-core``: g711, aufile, aubridge, sndfile, srtp, dtls_srtp,
ice, ctrl_tcp. Under CI=true a missing baresip fails the test (peers.binaries).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import wave
from pathlib import Path
from types import TracebackType
from typing import Any

from peers.audio import RATE, sine
from peers.binaries import require_binary
from peers.ports import free_port, free_range
from peers.scratch import scratch_dir

__all__ = ["Baresip"]

MODULES = ("g711", "aufile", "aubridge", "sndfile", "srtp", "dtls_srtp", "ice", "ctrl_tcp")
VIDEO_MODULES = ("vp8", "vp9", "fakevideo", "snapshot")
VIDEO_CONFIG = (
    "video_source\tfakevideo,nil",
    "video_display\tfakevideo,nil",
    "video_size\t320x240",
    "video_fps\t15",
    "video_bitrate\t300000",
)


class _PortTaken(RuntimeError):
    """baresip exited because one of its ports was taken meanwhile."""


class Baresip:
    def __init__(
        self,
        workdir: Path,
        *,
        user: str = "baresip",
        tone: float = 440.0,
        mediaenc: str | None = "dtls_srtp",
        ice: bool = False,
        rtcp_mux: bool = True,
        rtp_ports: tuple[int, int] = (37000, 37999),
        codecs: str = "pcmu",
        host: str = "127.0.0.1",
        video: bool = False,
        video_codecs: str | None = None,
    ) -> None:
        """``video``: a video phone too (issue 19): the vp8 and vp9 modules, fakevideo as camera and
        display (a generated moving picture, 320x240 at 15 fps), snapshot for ``snapshot()``;
        ``video_codecs`` (e.g. ``vp9``): the only ones it offers and answers (else VP8 and VP9)."""
        self.binary = require_binary("baresip")
        self.video = video
        self.host, self.user = host, user
        # baresip listens for SIP over TLS on the port above sip_listen's: two free ones in a row
        self.sip_port = free_range(2, host)
        self.ctrl_port = free_port(socket.SOCK_STREAM, host)
        self.workdir = workdir / f"baresip-{user}-{self.sip_port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        # sndfile truncates a dump's path at about 128 bytes (the file then has no "-dec.wav" name): a
        # pytest-xdist worker's tmp_path is long, so the dumps go to a short scratch directory
        self.dumps = scratch_dir("baresip-")
        self.tone_file = self.workdir / "tone.wav"
        with wave.open(str(self.tone_file), "wb") as wav:  # 30 s of the tone, 8 kHz mono like PCMU
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(sine(tone, RATE, seconds=30.0).tobytes())
        params = [f"regint=0;answermode=auto;audio_codecs={codecs}"]
        if video_codecs:
            params.append(f"video_codecs={video_codecs}")
        if mediaenc:
            params.append(f"mediaenc={mediaenc}")
        if ice:
            params.append("medianat=ice")
        self._params, self._rtp = ";".join(params), (rtp_ports, rtcp_mux)
        (self.workdir / "contacts").write_text("")
        self._write_files()
        self.events: list[dict[str, Any]] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def _config(self, rtp_ports: tuple[int, int], rtcp_mux: bool) -> str:
        lines = [
            f"sip_listen\t{self.host}:{self.sip_port}",
            "sip_trans_def\tudp",
            f"rtp_ports\t{rtp_ports[0]}-{rtp_ports[1]}",
            f"rtcp_mux\t{'yes' if rtcp_mux else 'no'}",
            f"audio_source\taufile,{self.tone_file}",
            "audio_player\taubridge,nowhere",
            "audio_alert\taubridge,nowhere",
            f"snd_path\t{self.dumps}",
            "module_path\t/usr/lib/baresip/modules",
            *(f"module\t{name}.so" for name in MODULES if name != "ctrl_tcp"),
            *(f"module\t{name}.so" for name in VIDEO_MODULES if self.video),
            *(VIDEO_CONFIG if self.video else ()),
            "module_tmp\taccount.so",  # reads the accounts file
            "module_app\tmenu.so",  # the dial and hangup commands
            "module_app\tctrl_tcp.so",
            f"ctrl_tcp_listen\t{self.host}:{self.ctrl_port}",
            "dns_server\t127.0.0.1:53",
        ]
        return "\n".join(lines) + "\n"

    def _write_files(self) -> None:
        """The account and config files for the current SIP and control ports."""
        account = f"<sip:{self.user}@{self.host}:{self.sip_port}>;{self._params}\n"
        (self.workdir / "accounts").write_text(account)
        (self.workdir / "config").write_text(self._config(*self._rtp))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.sip_port}"

    # --------------------------------------------------------------------------------- running

    async def start(self, ready_timeout: float = 10.0) -> Baresip:
        """Start baresip and connect to its control port. `free_port`'s ports may be taken by another
        process before baresip binds them (the suite's parallel workers): baresip then exits 98
        (EADDRINUSE), and it is started again on new ports, three times at most."""
        for _ in range(2):
            try:
                return await self._start(ready_timeout)
            except _PortTaken:
                self.sip_port = free_range(2, self.host)
                self.ctrl_port = free_port(socket.SOCK_STREAM, self.host)
                self._write_files()
        return await self._start(ready_timeout)

    async def _start(self, ready_timeout: float) -> Baresip:
        log = (self.workdir / "baresip.log").open("wb")
        self._process = await asyncio.create_subprocess_exec(
            self.binary,
            "-f",
            str(self.workdir),
            "-v",
            "-n",
            self.host,  # media and SDP on this address too (else the default route's interface)
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,  # its own process group: stop() ends it and nothing else
        )
        log.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_timeout
        while True:
            if self._process.returncode is not None:
                kind = _PortTaken if self._process.returncode == errno.EADDRINUSE else RuntimeError
                raise kind(f"baresip exited {self._process.returncode}:\n{self.log()[-3000:]}")
            try:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.ctrl_port)
                break
            except OSError:
                if loop.time() > deadline:
                    await self.stop()
                    raise TimeoutError(f"baresip's ctrl_tcp did not listen within {ready_timeout}s") from None
                await asyncio.sleep(0.05)
        self._read_task = asyncio.create_task(self._read_events())
        return self

    async def stop(self) -> int | None:
        """End the process by its PID (SIGTERM, then SIGKILL); its return code."""
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task
            self._read_task = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        process = self._process
        if process is None or process.returncode is not None:
            return process.returncode if process is not None else None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                return await asyncio.wait_for(process.wait(), 3.0)
            except TimeoutError:
                continue
        return process.returncode

    async def __aenter__(self) -> Baresip:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------------------- ctrl_tcp

    async def command(self, command: str, params: str = "") -> None:
        """Send one command (as typed at baresip's prompt without the slash: dial, hangup, ...)."""
        if self._writer is None:
            raise RuntimeError("baresip is not running")
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self._writer.write(b"%d:%s," % (len(body), body))  # a netstring
        await self._writer.drain()

    async def dial(self, uri: str) -> None:
        await self.command("dial", uri)

    async def hangup(self) -> None:
        await self.command("hangup")

    async def _read_events(self) -> None:
        assert self._reader is not None
        while True:
            try:
                length = int((await self._reader.readuntil(b":"))[:-1])
                data = await self._reader.readexactly(length + 1)
            except (asyncio.IncompleteReadError, ValueError, ConnectionError):
                return
            with contextlib.suppress(ValueError):
                message = json.loads(data[:-1])
                if isinstance(message, dict):
                    self.events.append(message)
                    self._changed.set()

    async def wait_for(self, event_type: str, timeout: float = 15.0) -> dict[str, Any]:
        """The first event of ``event_type`` (CALL_ESTABLISHED, CALL_CLOSED, ...), waiting for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for event in self.events:
                if event.get("type") == event_type:
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [e.get("type") for e in self.events]
                raise TimeoutError(f"no {event_type} from baresip (events: {seen})\n{self.log()[-4000:]}")
            self._changed.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that comes as the
            # event is set, and a cancelled waiter would wait on forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()

    # ------------------------------------------------------------------------------- output

    def log(self) -> str:
        path = self.workdir / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def snapshot(self, timeout: float = 5.0) -> list[Path]:
        """The next pictures baresip encodes and decodes, saved as PNG by the snapshot module (its
        ``snapshot`` command): the new files under the work directory, ``snapshot-send-<time>.png`` and
        ``snapshot-recv-<time>.png``."""
        before = set(self.workdir.rglob("*.png"))
        await self.command("snapshot", str(self.workdir / "snapshot"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(set(self.workdir.rglob("*.png")) - before) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.1)
        new = sorted(set(self.workdir.rglob("*.png")) - before)
        # each written out to its IEND chunk: a fixed 0.2 s once left a truncated PNG at load 7
        while not all(_png_complete(path) for path in new) and loop.time() < deadline + 5.0:
            await asyncio.sleep(0.1)
        unfinished = [path.name for path in new if not _png_complete(path)]
        if unfinished:
            raise TimeoutError(f"snapshots never written out: {unfinished}\n{self.log()[-3000:]}")
        return new

    def recording(self) -> Path:
        """The WAV file of what baresip decoded (sndfile's ``dump-...-dec.wav``)."""
        found = sorted(self.dumps.glob("dump-*-dec.wav"))
        if not found:
            raise FileNotFoundError(f"no decoded audio dump in {self.dumps}")
        return found[-1]


PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk every PNG ends with


def _png_complete(path: Path) -> bool:
    try:
        return path.read_bytes().endswith(PNG_END)
    except OSError:
        return False
