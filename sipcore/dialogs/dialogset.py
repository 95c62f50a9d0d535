"""The UA's dialogs, matched by dialog id (RFC 3261 §12.2.2, §12.1.2), and forking of our
INVITEs (RFC 3261 §13.2.2.4, §12.1.2, §12.3).

A forking proxy may turn one INVITE into several early dialogs (one per To tag of the 18x
responses). :meth:`DialogSet.on_invite_response` takes every response to an INVITE we sent:
the first 2xx confirms its dialog and terminates the other early dialogs of that INVITE; a
2xx from another fork arriving later creates a confirmed dialog that must be ACKed and then
ended with a BYE (:class:`InviteOutcome` carries both); a retransmitted 2xx gets the same ACK
again; a non-2xx final response ends all early dialogs of the INVITE (§12.3).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass

from sipcore.dialogs.dialog import Dialog, DialogError, DialogEvent, DialogId, DialogState
from sipcore.dialogs.requests import Endpoint
from sipcore.syntax.message import Request, Response

__all__ = ["DialogSet", "InviteOutcome"]

logger = logging.getLogger(__name__)

_Group = tuple[str, str]  # (Call-ID, our From tag): the dialogs one INVITE created


@dataclass(frozen=True, slots=True)
class InviteOutcome:
    """What a response to our INVITE means: the dialog it belongs to (None for a 100 or a 1xx
    without To tag), the ACK to send (for every 2xx), a BYE to send after that ACK (a 2xx from
    a fork we do not keep), and the early dialogs it ended."""

    dialog: Dialog | None
    ack: Request | None = None
    bye: Request | None = None
    terminated: tuple[Dialog, ...] = ()


class DialogSet:
    """All dialogs of the UA, keyed by :class:`DialogId`."""

    def __init__(self, endpoint: Endpoint, *, rng: random.Random | None = None) -> None:
        self.endpoint = endpoint
        self._rng = rng or random.Random()
        self._dialogs: dict[DialogId, Dialog] = {}
        self._groups: dict[_Group, list[DialogId]] = {}
        self._winners: dict[_Group, DialogId] = {}
        self._refused: set[DialogId] = set()  # forks we ACKed and BYEd
        self._failed: set[_Group] = set()  # INVITEs that got a non-2xx final response

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog_id: object) -> bool:
        return dialog_id in self._dialogs

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def add(self, dialog: Dialog) -> Dialog:
        if dialog.id in self._dialogs:
            raise DialogError(f"dialog {dialog.id!r} already exists")
        self._dialogs[dialog.id] = dialog
        self._groups.setdefault((dialog.id.call_id, dialog.id.local_tag), []).append(dialog.id)
        return dialog

    def discard(self, dialog_id: DialogId) -> None:
        """Forget a dialog (once terminated and its transactions done)."""
        if self._dialogs.pop(dialog_id, None) is None:
            return
        group = (dialog_id.call_id, dialog_id.local_tag)
        members = self._groups.get(group, [])
        if dialog_id in members:
            members.remove(dialog_id)
        self._refused.discard(dialog_id)
        if not members:
            self._groups.pop(group, None)
            self._winners.pop(group, None)
            self._failed.discard(group)

    def remove_terminated(self) -> list[Dialog]:
        """Forget every terminated dialog; returns them."""
        gone = [d for d in self._dialogs.values() if d.state is DialogState.TERMINATED]
        for dialog in gone:
            self.discard(dialog.id)
        return gone

    def match_request(self, request: Request) -> Dialog | None:
        """The dialog a received request belongs to (§12.2.2): Call-ID, To tag = local tag,
        From tag = remote tag. None for a request outside any known dialog: when it carries a
        To tag, the UAS answers 481 (§12.2.2)."""
        dialog_id = DialogId.of_request(request)
        return self._dialogs.get(dialog_id) if dialog_id is not None else None

    def match_response(self, response: Response) -> Dialog | None:
        """The dialog a received response belongs to: From tag = local, To tag = remote."""
        dialog_id = DialogId.of_response(response)
        return self._dialogs.get(dialog_id) if dialog_id is not None else None

    def _members(self, group: _Group) -> list[Dialog]:
        return [self._dialogs[i] for i in self._groups.get(group, []) if i in self._dialogs]

    def on_invite_response(
        self,
        invite: Request,
        response: Response,
        *,
        secure_transport: bool = False,
        ack_body: bytes = b"",
        ack_content_type: str | None = None,
    ) -> InviteOutcome:
        """Apply a response to an INVITE we sent outside a dialog (§13.2.2)."""
        from_ = invite.from_
        if invite.method != "INVITE" or from_ is None or from_.tag is None or not invite.call_id:
            raise DialogError("not an INVITE with a From tag and a Call-ID")
        group: _Group = (invite.call_id, from_.tag)
        dialog_id = DialogId.of_response(response)
        if dialog_id is not None and (dialog_id.call_id, dialog_id.local_tag) != group:
            raise DialogError(
                f"response to another INVITE ({dialog_id.call_id!r}, tag {dialog_id.local_tag!r})"
            )
        if response.status < 200:
            return self._provisional(invite, response, group, dialog_id, secure_transport)
        if response.status < 300:
            if dialog_id is None:
                raise DialogError(f"{response.status} to INVITE without To tag")
            return self._success(
                invite, response, group, dialog_id, secure_transport, ack_body, ack_content_type
            )
        # §12.3: a non-2xx final response ends every early dialog of the INVITE.
        self._failed.add(group)
        ended = tuple(d for d in self._members(group) if d.state is DialogState.EARLY)
        for dialog in ended:
            dialog.handle(DialogEvent.RECV_FAILURE, response)
        matched = self._dialogs.get(dialog_id) if dialog_id is not None else None
        return InviteOutcome(matched, terminated=ended)

    def _provisional(
        self,
        invite: Request,
        response: Response,
        group: _Group,
        dialog_id: DialogId | None,
        secure_transport: bool,
    ) -> InviteOutcome:
        if response.status == 100 or dialog_id is None:
            return InviteOutcome(None)
        dialog = self._dialogs.get(dialog_id)
        if dialog is not None:
            dialog.receive_response(response)
            return InviteOutcome(dialog)
        if group in self._winners or group in self._failed:
            logger.debug(
                "sip_call_id=%s late %s from fork %s ignored",
                invite.call_id,
                response.status,
                dialog_id.remote_tag,
            )
            return InviteOutcome(None)
        dialog = Dialog.from_uac_response(
            invite, response, self.endpoint, secure_transport=secure_transport, rng=self._rng
        )
        return InviteOutcome(self.add(dialog))

    def _success(
        self,
        invite: Request,
        response: Response,
        group: _Group,
        dialog_id: DialogId,
        secure_transport: bool,
        ack_body: bytes,
        ack_content_type: str | None,
    ) -> InviteOutcome:
        winner = self._winners.get(group)
        dialog = self._dialogs.get(dialog_id)
        if dialog is not None and (winner == dialog_id or dialog_id in self._refused):
            # A retransmitted 2xx: ACK it again (§13.2.2.4).
            dialog.receive_response(response)
            return InviteOutcome(dialog, ack=dialog.ack(invite))
        if (
            winner is None
            and group not in self._failed
            and (dialog is None or dialog.state is DialogState.EARLY)
        ):
            if dialog is None:
                dialog = self.add(
                    Dialog.from_uac_response(
                        invite, response, self.endpoint, secure_transport=secure_transport, rng=self._rng
                    )
                )
            else:
                dialog.receive_response(response)
            self._winners[group] = dialog_id
            ack = dialog.ack(invite, body=ack_body, content_type=ack_content_type)
            ended = tuple(d for d in self._members(group) if d.state is DialogState.EARLY)
            for other in ended:
                other.terminate("another fork answered")
            return InviteOutcome(dialog, ack=ack, terminated=ended)
        # A 2xx from a fork we do not keep (another fork won, or the INVITE already failed):
        # ACK it, then BYE it (§13.2.2.4).
        loser = Dialog.from_uac_response(
            invite, response, self.endpoint, secure_transport=secure_transport, rng=self._rng
        )
        if dialog is not None:
            self._dialogs[dialog_id] = loser  # replaces the early dialog, same id and group
        else:
            self.add(loser)
        self._refused.add(dialog_id)
        ack = loser.ack(invite)
        bye = loser.create_request("BYE")
        logger.info(
            "sip_call_id=%s fork %s answered after another: ACK and BYE", invite.call_id, dialog_id.remote_tag
        )
        return InviteOutcome(loser, ack=ack, bye=bye, terminated=(loser,))
