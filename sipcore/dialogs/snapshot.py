"""A dialog as plain JSON and back (:meth:`Dialog.to_dict`, :meth:`Dialog.from_dict`), with the typed
field reader the gateway also reads a call's snapshot with. Pure.

A gateway instance writes the state of each established dialog (RFC 3261 §12) where its peers can
read it (issue 34: a call survives the loss of its instance); a surviving instance rebuilds the
dialog from it. That data crossed a process and a store, so it is read like input from the network:
every field is checked for its type and range, and anything else raises :class:`SnapshotError`
naming the field (``dialog.route_set[1]: ...``), never a ``KeyError`` or an ``AssertionError``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sipcore.dialogs.dialog import DialogId, DialogState, Role
from sipcore.dialogs.requests import Endpoint
from sipcore.errors import SIPError
from sipcore.syntax.headers import MAX_CSEQ, NameAddr, is_token, parse_name_addr
from sipcore.syntax.uri import URI, parse_uri

if TYPE_CHECKING:
    import random

    from sipcore.dialogs.dialog import Dialog

__all__ = [
    "SNAPSHOT_VERSION",
    "Fields",
    "SnapshotError",
    "dialog_from_dict",
    "dialog_to_dict",
    "endpoint_from_dict",
    "endpoint_to_dict",
]

SNAPSHOT_VERSION = 1  # bumped when a field changes meaning; an unknown version is refused
# RFC 3261 §8.1.1.5: a CSeq is a 32-bit unsigned integer (and ours stay below 2**31); a peer's above
# 2**31 is read as the parser reads it (headers.MAX_CSEQ), so a dialog holding one is written and read back
MAX_SEQ = MAX_CSEQ
E = TypeVar("E", bound=enum.Enum)


class SnapshotError(SIPError, ValueError):
    """A dialog or call snapshot that cannot be read back; the message names the field."""

    status = None
    phrase = "Bad Snapshot"


class Fields:
    """Typed access to one JSON object of a snapshot; ``where`` names it in errors."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise SnapshotError(f"{where}: expected an object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.where = where

    def fail(self, name: str, problem: str) -> SnapshotError:
        return SnapshotError(f"{self.where}.{name}: {problem}")

    def get(self, name: str) -> object:
        if name not in self.data:
            raise self.fail(name, "missing")
        return self.data[name]

    def sub(self, name: str) -> Fields:
        return Fields(self.get(name), f"{self.where}.{name}")

    def text(self, name: str, *, empty: bool = False) -> str:
        value = self.get(name)
        if not isinstance(value, str) or not (value or empty):
            raise self.fail(name, f"expected a {'' if empty else 'non-empty '}string, got {value!r}")
        if any(not ch.isprintable() for ch in value):
            raise self.fail(name, f"control character in {value!r}")
        return value

    def body(self, name: str) -> str:
        """A message body (an SDP): any string, line breaks included."""
        value = self.get(name)
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {type(value).__name__}")
        return value

    def token(self, name: str, *, empty: bool = False) -> str:
        """A tag or another token (RFC 3261 §25.1); a Call-ID (a ``word``) has no space either."""
        value = self.text(name, empty=empty)
        if value and (" " in value or (name != "call_id" and not is_token(value))):
            raise self.fail(name, f"invalid token {value!r}")
        return value

    def integer(self, name: str, low: int = 0, high: int = MAX_SEQ) -> int:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(name, f"expected an integer in {low}..{high}, got {value!r}")
        return value

    def optional_integer(self, name: str, low: int = 0, high: int = MAX_SEQ) -> int | None:
        return None if self.get(name) is None else self.integer(name, low, high)

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {value!r}")
        return value

    def choice(self, name: str, kind: type[E]) -> E:
        value = self.get(name)
        for member in kind:
            if member.value == value:
                return member
        raise self.fail(name, f"expected one of {[m.value for m in kind]}, got {value!r}")

    def texts(self, name: str) -> tuple[str, ...]:
        values = self.get(name)
        if not isinstance(values, list):
            raise self.fail(name, f"expected a list, got {values!r}")
        for index, value in enumerate(values):
            if not isinstance(value, str) or any(not ch.isprintable() for ch in value):
                raise self.fail(f"{name}[{index}]", f"expected a string, got {value!r}")
        return tuple(values)

    def name_addr(self, name: str) -> NameAddr:
        return self._name_addr(name, self.text(name))

    def name_addrs(self, name: str) -> tuple[NameAddr, ...]:
        return tuple(self._name_addr(f"{name}[{i}]", v) for i, v in enumerate(self.texts(name)))

    def _name_addr(self, name: str, text: str) -> NameAddr:
        try:
            return parse_name_addr(text, name)
        except SIPError as exc:
            raise self.fail(name, exc.detail) from None

    def uri(self, name: str) -> URI:
        text = self.text(name)
        try:
            return parse_uri(text)
        except SIPError as exc:
            raise self.fail(name, exc.detail) from None


def endpoint_to_dict(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "host": endpoint.host,
        "port": endpoint.port,
        "transport": endpoint.transport,
        "user_agent": endpoint.user_agent,
        "allow": list(endpoint.allow),
        "supported": list(endpoint.supported),
        "contact_user": endpoint.contact_user,
    }


def endpoint_from_dict(fields: Fields) -> Endpoint:
    contact_user = fields.get("contact_user")
    if contact_user is not None:
        contact_user = fields.text("contact_user")
    try:
        return Endpoint(
            fields.text("host"),
            fields.optional_integer("port", 1, 65535),
            fields.text("transport"),
            fields.text("user_agent", empty=True),
            fields.texts("allow"),
            fields.texts("supported"),
            contact_user,
        )
    except ValueError as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"{fields.where}: {exc}") from None


def dialog_to_dict(dialog: Dialog) -> dict[str, Any]:
    """Everything of RFC 3261 §12's dialog state, the INVITE transactions under way in each direction
    (§14.1) and the endpoint it sends from; all of it plain JSON."""
    return {
        "version": SNAPSHOT_VERSION,
        "id": {
            "call_id": dialog.id.call_id,
            "local_tag": dialog.id.local_tag,
            "remote_tag": dialog.id.remote_tag,
        },
        "role": dialog.role.value,
        "state": dialog.state.value,
        "local_uri": str(dialog.local_uri),
        "remote_uri": str(dialog.remote_uri),
        "remote_target": str(dialog.remote_target),
        "route_set": [str(route) for route in dialog.route_set],
        "invite_cseq": dialog.invite_cseq,
        "local_cseq": dialog.local_cseq,
        "remote_cseq": dialog.remote_cseq,
        "secure": dialog.secure,
        "contact": str(dialog.contact),
        "endpoint": endpoint_to_dict(dialog.endpoint),
        "pending_out_invite": dialog.pending_out_invite,
        "pending_in_invite": dialog.pending_in_invite,
        "reason": dialog.reason,
    }


def dialog_from_dict(
    cls: type[Dialog], data: object, endpoint: Endpoint | None, rng: random.Random | None
) -> Dialog:
    """The dialog ``dialog_to_dict`` wrote; SnapshotError naming the field when ``data`` is malformed."""
    fields = Fields(data, "dialog")
    if fields.get("version") != SNAPSHOT_VERSION:
        raise fields.fail("version", f"expected {SNAPSHOT_VERSION}, got {fields.get('version')!r}")
    ids = fields.sub("id")
    dialog_id = DialogId(ids.token("call_id"), ids.token("local_tag"), ids.token("remote_tag", empty=True))
    local_uri, remote_uri = fields.name_addr("local_uri"), fields.name_addr("remote_uri")
    if local_uri.tag != dialog_id.local_tag:  # the tags are the dialog's id (RFC 3261 §12)
        raise fields.fail("local_uri", f"tag {local_uri.tag!r} is not the local tag {dialog_id.local_tag!r}")
    if (remote_uri.tag or "") != dialog_id.remote_tag:
        raise fields.fail(
            "remote_uri", f"tag {remote_uri.tag!r} is not the remote tag {dialog_id.remote_tag!r}"
        )
    dialog = cls(
        id=dialog_id,
        role=fields.choice("role", Role),
        state=fields.choice("state", DialogState),
        local_uri=local_uri,
        remote_uri=remote_uri,
        remote_target=fields.uri("remote_target"),
        route_set=fields.name_addrs("route_set"),
        invite_cseq=fields.integer("invite_cseq"),
        local_cseq=fields.optional_integer("local_cseq"),
        remote_cseq=fields.optional_integer("remote_cseq"),
        endpoint=endpoint or endpoint_from_dict(fields.sub("endpoint")),
        secure=fields.flag("secure"),
        contact=fields.name_addr("contact"),
        rng=rng,
    )
    dialog.pending_out_invite = fields.flag("pending_out_invite")
    dialog.pending_in_invite = fields.flag("pending_in_invite")
    dialog.reason = fields.text("reason", empty=True)
    return dialog
