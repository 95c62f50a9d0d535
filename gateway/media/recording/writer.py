"""Writes one recording's file off the event loop: a thread per recording takes interleaved stereo PCM
from a queue and writes it as WAV (the standard library's ``wave``: 16-bit, two channels, the header
completed on close) or Ogg/Opus (PyAV's libopus in an Ogg container), then the JSON sidecar next to it.

The bridge only queues bytes (``write``), so no call waits on a disk; ``close(sidecar)`` queues the end
and returns at once, ``join`` waits for the file to be complete (tests, shutdown).
"""

from __future__ import annotations

import fractions
import json
import logging
import os
import queue
import threading
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import av
from av import AudioFrame

logger = logging.getLogger(__name__)

FORMATS: Final = {"wav": ".wav", "ogg": ".ogg"}
_END: Final = object()


class FileWriter:
    """One stereo file at ``rate`` Hz in ``fmt`` (``wav`` or ``ogg``) at ``path``."""

    def __init__(self, path: Path, fmt: str, rate: int) -> None:
        self.path = path
        self.format = fmt
        self.rate = rate
        self.frames = 0  # stereo frames written
        self.error: str | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"recording {path.name}", daemon=True)
        self._thread.start()

    def write(self, stereo: bytes) -> None:
        if stereo:
            self._queue.put(stereo)

    def close(self, sidecar: Mapping[str, object]) -> None:
        """Finish the file and write ``sidecar`` as JSON beside it (in the thread)."""
        self._queue.put(_END)
        self._queue.put(dict(sidecar))

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._write_all()
        except Exception as exc:  # a full disk must not end the call: the recording says what failed
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error("recording %s failed: %s", self.path, self.error)
            while self._queue.get() is not _END:  # drain to the end marker
                pass
        sidecar = self._queue.get()
        assert isinstance(sidecar, dict)
        if self.error is not None:
            sidecar["error"] = self.error
        sidecar["frames"] = self.frames
        sidecar["duration"] = round(self.frames / self.rate, 3)
        temporary = self.path.with_suffix(".json.part")
        temporary.write_text(json.dumps(sidecar, indent=2) + "\n")
        os.replace(temporary, self.path.with_suffix(".json"))

    def _write_all(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == "wav":
            with wave.open(str(self.path), "wb") as out:
                out.setnchannels(2)
                out.setsampwidth(2)
                out.setframerate(self.rate)
                while (item := self._queue.get()) is not _END:
                    assert isinstance(item, bytes)
                    out.writeframesraw(item)
                    self.frames += len(item) // 4
            return
        self._write_ogg()

    def _write_ogg(self) -> None:
        container = av.open(str(self.path), "w", format="ogg")
        try:
            stream = container.add_stream("libopus", rate=self.rate)
            stream.layout = "stereo"
            stream.time_base = fractions.Fraction(1, self.rate)
            while (item := self._queue.get()) is not _END:
                assert isinstance(item, bytes)
                frame = AudioFrame(format="s16", layout="stereo", samples=len(item) // 4)
                frame.planes[0].update(item)
                frame.sample_rate = self.rate
                frame.pts = self.frames
                frame.time_base = fractions.Fraction(1, self.rate)
                self.frames += frame.samples
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        finally:
            container.close()
