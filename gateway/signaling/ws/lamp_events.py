"""The busy lamps' and the voicemail light's events (issue 37), pushed to a web user's sessions in every
dialect that has a session outside a call (`/ws` JSON, JSON-RPC); part of `events.Event`.

The gateway subscribes to them at the PBX for her (gateway/runtime/lamps/): `contact_state` says
whether a watched extension is `idle`, `ringing` or `busy` (RFC 4235 dialog state; `unknown` while the
subscription is not active), with `pickup`, the number that picks the ringing call up, while it rings;
`voicemail` gives her mailbox's message summary (RFC 3842). Each is sent after login and on change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContactState:
    """A watched extension's busy lamp: `state` idle, ringing, busy or unknown; `pickup` (while it
    rings): the number to dial to take that call (`pbx.pickup_prefix` and the extension)."""

    number: str
    state: str
    pickup: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"type": "contact_state", "number": self.number, "state": self.state, "pickup": self.pickup}


@dataclass(frozen=True, slots=True)
class Voicemail:
    """The user's mailbox: whether messages wait, and the new and old voice messages (urgent ones
    among them), as the PBX's message summary says."""

    mailbox: str
    waiting: bool
    new: int = 0
    old: int = 0
    urgent_new: int = 0
    urgent_old: int = 0

    def to_json(self) -> dict[str, object]:
        return {"type": "voicemail", "mailbox": self.mailbox, "waiting": self.waiting, "new": self.new,
                "old": self.old, "urgent_new": self.urgent_new, "urgent_old": self.urgent_old}  # fmt: skip
