"""The `quality` event: a call's figures per leg while it is up (sans-I/O, like events.py).

gateway/ops/quality.py decides when a web user hears of them (a move of `quality.min_change` MOS, or a
leg crossing `quality.poor_mos`); each dialect words the event its own way: /ws and the SIP-less API
sessions as below, the HTTP API as a `quality` progress event, JSON-RPC as a `progress` notification with
`event: quality`. docs/signaling.md lists the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CallQuality:
    """`legs`: per leg (`web`: the browser and the gateway; `sip`: the phone or PBX and the gateway) the
    latest sample: `mos`, `loss`, `remote_loss`, `jitter`, `rtt` (seconds) and `poor` (MOS under the
    threshold: the page's "poor connection: your side / the phone's side")."""

    call_id: str
    legs: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    @property
    def poor(self) -> list[str]:
        """The legs whose connection is poor now."""
        return [leg for leg, figures in self.legs.items() if figures.get("poor")]

    def to_json(self) -> dict[str, object]:
        return {
            "type": "quality",
            "call_id": self.call_id,
            "legs": {leg: dict(figures) for leg, figures in self.legs.items()},
            "poor": self.poor,
        }
