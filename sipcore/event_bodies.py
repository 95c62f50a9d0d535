"""The bodies of the two event packages the gateway subscribes to, parsed defensively; sans-I/O.

- ``application/dialog-info+xml`` (RFC 4235 §4): the dialogs of a watched extension. A busy lamp needs
  one word, :attr:`DialogInfo.lamp`: ``ringing`` when one of its dialogs is early and it is the called
  party (or its direction is not said), ``busy`` when one is confirmed (or early and it is calling),
  else ``idle``. The ringing dialog's Call-ID and tags (RFC 4235 §4.1.6) are kept: they name the call
  a pickup would replace (RFC 3891).
- ``application/simple-message-summary`` (RFC 3842 §5): ``Messages-Waiting: yes`` and the
  ``Voice-Message: new/old (urgent-new/urgent-old)`` counts of a mailbox.

Any body that is not what its package defines raises :class:`~sipcore.errors.BadRequest` (400 to that
NOTIFY, RFC 6665 §4.1.3) naming what is wrong; nothing else escapes. XML with a DOCTYPE (entities: the
"billion laughs") is refused before it is parsed, and bodies are capped at ``MAX_BODY`` bytes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from sipcore.errors import BadRequest

__all__ = [
    "DIALOG_INFO",
    "MAX_BODY",
    "MESSAGE_SUMMARY",
    "DialogInfo",
    "DialogSummary",
    "MessageSummary",
    "parse_body",
    "parse_dialog_info",
    "parse_message_summary",
]

DIALOG_INFO = "application/dialog-info+xml"
MESSAGE_SUMMARY = "application/simple-message-summary"
MAX_BODY = 64 * 1024
_NS = "{urn:ietf:params:xml:ns:dialog-info}"
_COUNTS = re.compile(r"\s*(\d{1,9})\s*/\s*(\d{1,9})\s*(?:\(\s*(\d{1,9})\s*/\s*(\d{1,9})\s*\))?\s*")
_LAMPS = ("idle", "ringing", "busy")  # order of precedence: the busiest dialog wins


@dataclass(frozen=True, slots=True)
class DialogSummary:
    """One ``<dialog>`` element: its id, state and direction, and the call it names (for a pickup)."""

    id: str
    state: str  # trying, proceeding, early, confirmed, terminated (RFC 4235 §3.7.1)
    direction: str | None  # initiator (it calls) | recipient (it is called) | None
    call_id: str | None = None
    local_tag: str | None = None
    remote_tag: str | None = None

    @property
    def lamp(self) -> str:
        if self.state == "confirmed":
            return "busy"
        if self.state in ("trying", "proceeding", "early"):
            return "busy" if self.direction == "initiator" else "ringing"
        return "idle"


@dataclass(frozen=True, slots=True)
class DialogInfo:
    """A dialog-info document: ``full`` or ``partial`` (§4.1.1), its version and the dialogs it lists."""

    entity: str
    version: int
    full: bool
    dialogs: tuple[DialogSummary, ...]

    @property
    def lamp(self) -> str:
        """idle, ringing or busy (see the module note)."""
        lamps = [dialog.lamp for dialog in self.dialogs]
        return max(lamps, key=_LAMPS.index, default="idle")

    def ringing(self) -> DialogSummary | None:
        """The dialog ringing at the watched extension, if any (what a pickup takes)."""
        return next((d for d in self.dialogs if d.lamp == "ringing"), None)


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """A simple-message-summary (RFC 3842 §5.2): whether messages wait, and the voice counts."""

    waiting: bool
    account: str | None = None
    new: int = 0
    old: int = 0
    urgent_new: int = 0
    urgent_old: int = 0


def _check_size(body: bytes) -> None:
    if len(body) > MAX_BODY:
        raise BadRequest(f"event body of {len(body)} bytes is over {MAX_BODY}")


def parse_dialog_info(body: bytes) -> DialogInfo:
    """RFC 4235 §4: the ``<dialog-info>`` document in ``body``; BadRequest naming the fault."""
    _check_size(body)
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise BadRequest("dialog-info with a DOCTYPE or entity declaration refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise BadRequest(f"dialog-info is not well-formed XML: {exc}") from None
    if root.tag not in (f"{_NS}dialog-info", "dialog-info"):
        raise BadRequest(f"expected a <dialog-info> document, got <{root.tag}>")
    version = root.get("version", "")
    state = root.get("state", "")
    if not version.isdigit() or len(version) > 10:
        raise BadRequest(f"dialog-info version {version[:20]!r} is not a number")
    if state not in ("full", "partial"):
        raise BadRequest(f"dialog-info state {state[:20]!r} is neither full nor partial")
    dialogs = []
    for element in root:
        if element.tag not in (f"{_NS}dialog", "dialog"):
            continue  # extensions (§4.1: elements of other namespaces are ignored)
        dialog_state = _child_text(element, "state")
        if not element.get("id") or dialog_state is None:
            raise BadRequest("a <dialog> without id or <state>")
        direction = element.get("direction")
        dialogs.append(
            DialogSummary(
                element.get("id", ""),
                dialog_state.strip().lower(),
                direction if direction in ("initiator", "recipient") else None,
                element.get("call-id"),
                element.get("local-tag"),
                element.get("remote-tag"),
            )
        )
    return DialogInfo(root.get("entity", ""), int(version), state == "full", tuple(dialogs))


def _child_text(element: ET.Element, name: str) -> str | None:
    child = element.find(f"{_NS}{name}")
    if child is None:
        child = element.find(name)
    return child.text if child is not None and child.text is not None else None


def parse_message_summary(body: bytes) -> MessageSummary:
    """RFC 3842 §5.2: ``Messages-Waiting`` (required), ``Message-Account``, ``Voice-Message`` counts."""
    _check_size(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("message-summary is not UTF-8 text") from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the optional message headers follow a blank line (§5.2)
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest(f"message-summary line {line[:40]!r} is not 'Name: value'")
        fields[name.strip().lower()] = value.strip()
    waiting = fields.get("messages-waiting", "").lower()
    if waiting not in ("yes", "no"):
        raise BadRequest(f"Messages-Waiting must be yes or no, got {waiting[:20]!r}")
    counts = (0, 0, 0, 0)
    voice = fields.get("voice-message")
    if voice is not None:
        match = _COUNTS.fullmatch(voice)
        if match is None:
            raise BadRequest(f"Voice-Message {voice[:40]!r} is not 'new/old (urgent-new/urgent-old)'")
        counts = tuple(int(group or 0) for group in match.groups())  # type: ignore[assignment]
    return MessageSummary(waiting == "yes", fields.get("message-account"), *counts)


def parse_body(content_type: str | None, body: bytes) -> DialogInfo | MessageSummary | None:
    """The event body of a NOTIFY by its Content-Type; None for an empty body (a NOTIFY may carry
    none: RFC 6665 §4.1.3, e.g. while pending or when terminated); 415-worthy types raise BadRequest."""
    if not body.strip():
        return None
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == DIALOG_INFO:
        return parse_dialog_info(body)
    if mime == MESSAGE_SUMMARY:
        return parse_message_summary(body)
    raise BadRequest(f"NOTIFY body of type {mime[:60]!r} is not one we subscribed to")
