"""`CallRecorder`: one call's recording, fed by the bridge's taps, controlled by start/pause/resume/stop.

The runtime (gateway/runtime/recordings.py) makes it and hooks it to the bridge: the SIP leg's RTP
through ``MediaBridge.add_tap`` (which keeps the fast lane unlinked, so both legs' audio comes through
Python while a recording is on) and the web leg's through ``MediaBridge.web_tap``. Each packet is
decoded (``decode``) and placed on the ``timeline`` by its arrival; every half second what is older
than ``_SETTLE`` goes to the file's writer thread (``writer``). Left: the web user, right: the SIP party.

Each ``start`` opens a new file, ``<directory>/<YYYY-MM-DD>/<call id>-<n>.<wav|ogg>`` with
``<...>.json`` beside it (call ids, parties, times, the recorded spans); a pause keeps the clock going
and writes silence, so the file's time is the call's time from the start on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sdp
from gateway.media.codecs.transcode import TranscodeError
from gateway.media.recording.decode import LegDecoder
from gateway.media.recording.timeline import (
    LegClock,
    Recording,
    RecordingAction,
    RecordingError,
    RecordingState,
    StereoTimeline,
)
from gateway.media.recording.writer import FORMATS, FileWriter
from gateway.media.rtp import red

logger = logging.getLogger(__name__)

_SETTLE = 0.3  # seconds a place stays open for late packets before it is written
_FLUSH = 0.5  # seconds of audio gathered before a write is queued
_RESYNC = 0.2  # seconds a leg's RTP clock may drift from the arrivals before it is re-anchored
CHANNELS = ("web", "sip")  # left, right


@dataclass(frozen=True, slots=True)
class RecorderSettings:
    """Where and how: ``fmt`` ``wav`` or ``ogg``, ``rate`` 8000 or 16000 Hz."""

    directory: Path
    fmt: str = "wav"
    rate: int = 8000


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the sidecar says of the call (besides the recording's own figures)."""

    call_id: str
    direction: str
    mode: str
    user: str | None = None
    from_uri: str | None = None
    to_uri: str | None = None
    sip_call_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class _File:
    writer: FileWriter
    started: float  # monotonic
    started_wall: float
    spans: list[list[float]] = field(default_factory=list)  # [start, end] seconds into the file


class CallRecorder:
    def __init__(
        self,
        settings: RecorderSettings,
        facts: CallFacts,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if settings.fmt not in FORMATS:
            raise RecordingError(f"format must be one of {sorted(FORMATS)}, not {settings.fmt!r}")
        self.settings = settings
        self.facts = facts
        self._clock, self._wall = clock, wall
        self._state = Recording(facts.call_id)
        self.files: list[str] = []  # every file this call recorded, in order
        self._file: _File | None = None
        self._timeline = StereoTimeline(settings.rate)
        self._clocks = (LegClock(settings.rate, 0), LegClock(settings.rate, 0))
        self._decoders: tuple[dict[str, LegDecoder | None], ...] = ({}, {})
        self._paused_at = 0
        self.codecs: list[str | None] = [None, None]
        self.undecodable = 0
        # each leg's decoded PCM as it is recorded, by channel (SIPREC: runtime/recordings.py)
        self.listener: Callable[[int, bytes], None] | None = None
        self.notes: dict[str, object] = {}  # more for the sidecar (``siprec``: that session's outcome)

    @property
    def state(self) -> RecordingState:
        return self._state.state

    @property
    def capturing(self) -> bool:
        """Whether the recorder wants the audio (recording or paused: the taps stay)."""
        return self._state.state in (RecordingState.RECORDING, RecordingState.PAUSED)

    def info(self) -> dict[str, object]:
        """The state and files, as the `recording` event and the APIs give them."""
        return {"state": self.state.value, "mode": self.facts.mode, "files": list(self.files)}

    # --- control -------------------------------------------------------------------------------------
    def apply(self, action: RecordingAction) -> RecordingState:
        """Start (a new file), pause, resume or stop; ``RecordingError`` when the state forbids it."""
        now = self._clock()
        state = self._state.apply(action)
        if action is RecordingAction.START:
            self._open(now)
        elif action is RecordingAction.PAUSE:
            self._paused_at = self._position(now)
            self._end_span(now)
        elif action is RecordingAction.RESUME:
            self._timeline.silence(self._paused_at, self._position(now))
            self._begin_span(now)
        else:
            self._finish(now)
        return state

    def close(self) -> None:
        """The call ended: stop if a recording is on (idempotent)."""
        if self.capturing:
            self.apply(RecordingAction.STOP)
        for decoders in self._decoders:
            for decoder in decoders.values():
                if decoder is not None:
                    decoder.close()
            decoders.clear()

    @property
    def written(self) -> bool:
        """Whether the last file is complete (its writer thread done)."""
        return self._file is None or self._file.writer.done

    def join(self, timeout: float | None = None) -> None:
        """Wait for the last file to be written (tests, shutdown)."""
        if self._file is not None:
            self._file.writer.join(timeout)

    def _open(self, now: float) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime(self._wall()))
        name = re.sub(r"[^A-Za-z0-9._-]", "_", self.facts.call_id)[:96]
        path = self.settings.directory / day / f"{name}-{len(self.files) + 1}{FORMATS[self.settings.fmt]}"
        rate = self.settings.rate
        self._file = _File(FileWriter(path, self.settings.fmt, rate), now, self._wall())
        self._timeline = StereoTimeline(rate)
        resync = int(_RESYNC * rate)
        self._clocks = (LegClock(rate, resync), LegClock(rate, resync))
        self.files.append(str(path))
        self._begin_span(now)
        logger.info("call=%s recording to %s", self.facts.call_id, path)

    def _finish(self, now: float) -> None:
        file = self._file
        assert file is not None
        if self._state_was_recording(file):
            self._end_span(now)
        file.writer.write(self._timeline.take(self._position(now)))
        file.writer.close(self._sidecar(file, now))

    @staticmethod
    def _state_was_recording(file: _File) -> bool:
        return bool(file.spans) and len(file.spans[-1]) == 1

    def _begin_span(self, now: float) -> None:
        assert self._file is not None
        self._file.spans.append([round(now - self._file.started, 3)])

    def _end_span(self, now: float) -> None:
        assert self._file is not None
        if self._file.spans and len(self._file.spans[-1]) == 1:
            self._file.spans[-1].append(round(now - self._file.started, 3))

    def _sidecar(self, file: _File, now: float) -> dict[str, object]:
        facts = self.facts
        return {
            "call_id": facts.call_id,
            "sip_call_ids": list(facts.sip_call_ids),
            "direction": facts.direction,
            "user": facts.user,
            "from": facts.from_uri,
            "to": facts.to_uri,
            "mode": facts.mode,
            "file": file.writer.path.name,
            "format": self.settings.fmt,
            "rate": self.settings.rate,
            "channels": {"left": "web", "right": "sip"},
            "codecs": {"web": self.codecs[0], "sip": self.codecs[1]},
            "start_time": round(file.started_wall, 3),
            "end_time": round(file.started_wall + (now - file.started), 3),
            "spans": file.spans,
            **self.notes,
        }

    # --- audio ---------------------------------------------------------------------------------------
    def _position(self, now: float) -> int:
        assert self._file is not None
        return max(0, round((now - self._file.started) * self.settings.rate))

    def feed(
        self,
        channel: int,
        incoming: Mapping[int, sdp.Codec],
        ssrc: int | None,
        timestamp: int | None,
        payload_type: int,
        payload: bytes,
        now: float,
    ) -> None:
        """One RTP packet of the web leg (channel 0) or the SIP leg (1), with its leg's payload types
        (``ssrc`` and ``timestamp`` None: a packet heard without its header, placed end to end)."""
        if self._state.state is not RecordingState.RECORDING or self._file is None:
            return
        codec = incoming.get(payload_type)
        if codec is None or codec.is_telephone_event or codec.name.lower() == "cn":  # (RFC 3389: silence)
            return
        if codec.name.lower() == red.RED_NAME:  # RFC 2198: the primary block is the audio
            blocks = red.unpack(payload, timestamp or 0)
            codec = incoming.get(blocks[-1].payload_type) if blocks else None
            if not blocks or codec is None or codec.is_telephone_event:
                return
            payload = blocks[-1].payload
        decoder = self._decoder(channel, codec.name)
        if decoder is None:
            return
        pcm = decoder.decode(payload)
        arrival = self._position(now)
        if pcm:
            clock = self._clocks[channel]
            position = clock.position(ssrc, timestamp, codec.clock_rate, arrival, len(pcm) // 2)
            self._timeline.put(channel, position, pcm)
            if self.listener is not None:
                self.listener(channel, pcm)
        settled = arrival - int(_SETTLE * self.settings.rate)
        if settled - self._timeline.flushed >= _FLUSH * self.settings.rate:
            self._file.writer.write(self._timeline.take(settled))

    def _decoder(self, channel: int, name: str) -> LegDecoder | None:
        key = name.lower()
        decoders = self._decoders[channel]
        decoder = decoders.get(key)
        if decoder is None and key not in decoders:
            try:
                decoder = LegDecoder(key, self.settings.rate)
            except TranscodeError as exc:
                logger.warning("call=%s recording cannot decode %s: %s", self.facts.call_id, name, exc)
                self.undecodable += 1
                decoder = None
            decoders[key] = decoder
            self.codecs[channel] = name if decoder is not None else self.codecs[channel]
        return decoder
