"""A call's recording in the browser's protocols (issue 37 item 3), sans-I/O: the `record` request
(`{type: record, call_id, action}`, action start, pause, resume or stop) and the `recording` event the
gateway sends on every change (`{call_id, state, mode, files}`: state idle, recording, paused or
stopped; mode on_demand, the page shows a record button, or always). The HTTP API, JSON-RPC and the
admin API take the same action names (gateway/runtime/recordings.py carries them out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

RECORD_ACTIONS: Final = ("start", "pause", "resume", "stop")


@dataclass(frozen=True, slots=True)
class RecordingChanged:
    """Call `call_id`'s recording now (see the module note)."""

    call_id: str
    state: str
    mode: str
    files: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"type": "recording", "call_id": self.call_id, "state": self.state, "mode": self.mode,
                "files": list(self.files)}  # fmt: skip
