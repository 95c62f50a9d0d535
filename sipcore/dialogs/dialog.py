"""INVITE dialogs (RFC 3261 §12), with the session rules of §13 (INVITE), §14 (re-INVITE) and
§15 (BYE); sans-I/O.

How it works: a :class:`Dialog` is created on the UAC side from a 1xx carrying a To tag or a 2xx
to our INVITE (:meth:`Dialog.from_uac_response`, §12.1.2), on the UAS side from the INVITE we
answer (:meth:`Dialog.from_uas_request`, §12.1.1). It holds the dialog state of §12: id (Call-ID,
local tag, remote tag), local and remote URIs, remote target, route set, local and remote CSeq,
secure flag. Every message that goes through it is an event of :class:`DialogEvent`; the table
``TABLE`` maps (state, event) to a handler, and a pair absent from it raises
:class:`DialogError` naming both. State changes go through ``_set_state``, which logs them.

It builds what is sent in the dialog (:meth:`Dialog.create_request` for BYE, INFO, re-INVITE,
UPDATE; :meth:`Dialog.ack` for the ACK of a 2xx; :meth:`Dialog.respond` for responses) and
checks what is received (:meth:`Dialog.receive_request` returns the error response owed: 500 for
a CSeq out of order, 491 on re-INVITE glare, 481 once terminated). Forking and the matching of
messages to dialogs live in :mod:`sipcore.dialogs.dialogset`. :meth:`Dialog.to_dict` and
:meth:`Dialog.from_dict` carry a dialog to another process as plain JSON (:mod:`sipcore.dialogs.snapshot`).
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sipcore.dialogs.requests import Endpoint, build_request
from sipcore.errors import BadRequest, SIPError
from sipcore.syntax.headers import NameAddr, new_tag, parse_name_addr, split_commas
from sipcore.syntax.message import Request, Response, make_response
from sipcore.syntax.uri import URI
from sipcore.tables import transition_table

__all__ = [
    "TABLE",
    "TARGET_REFRESH",
    "Dialog",
    "DialogError",
    "DialogEvent",
    "DialogId",
    "DialogState",
    "Role",
]

logger = logging.getLogger(__name__)

TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})  # RFC 3261 §12.2, RFC 3311 §5.1
# Requests that carry our Contact: the target refreshes, and those that start or carry a subscription
# usage of the dialog (RFC 3261 §8.1.1.8: a request that can establish a dialog has one; RFC 3515 §2.4.1
# REFER creates the refer subscription, whose NOTIFYs carry a Contact as RFC 6665 §4.1.2.2 and §4.2.2.1
# ask). chan_pjsip answers a REFER without one "400 Missing Contact header".
WITH_CONTACT = TARGET_REFRESH | {"REFER", "SUBSCRIBE", "NOTIFY"}
_CREDENTIALS = ("Authorization", "Proxy-Authorization")


class DialogError(SIPError):
    """A message or a request of the TU that the dialog cannot take in its state."""

    status = 500
    phrase = "Server Internal Error"


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Role(enum.Enum):
    UAC = "uac"  # we sent the INVITE that created the dialog (and own its Call-ID, §14.1)
    UAS = "uas"


# RECV_*/SEND_* 1XX/2XX/FAILURE: responses to the INVITE that created the dialog; REQUEST and
# RESPONSE: any other transaction in the dialog; SEND_ACK: the ACK of a 2xx (§13.2.2.4).
DialogEvent = enum.Enum(
    "DialogEvent",
    "RECV_1XX RECV_2XX RECV_FAILURE SEND_1XX SEND_2XX SEND_FAILURE SEND_REQUEST RECV_REQUEST "
    "SEND_RESPONSE RECV_RESPONSE SEND_ACK TERMINATE",
)


@dataclass(frozen=True, slots=True)
class DialogId:
    """RFC 3261 §12: Call-ID, local tag, remote tag (empty for an RFC 2543 peer without tags)."""

    call_id: str
    local_tag: str
    remote_tag: str

    def __post_init__(self) -> None:
        if not self.call_id or not self.local_tag:
            raise ValueError(f"dialog id needs a Call-ID and a local tag: {self!r}")

    @classmethod
    def of_request(cls, request: Request) -> DialogId | None:
        """The id of the dialog a received request belongs to (§12.2.2), None when it has no
        To tag (a request outside any dialog)."""
        to, from_, call_id = request.to, request.from_, request.call_id
        if to is None or not to.tag or from_ is None or not call_id:
            return None
        return cls(call_id, to.tag, from_.tag or "")

    @classmethod
    def of_response(cls, response: Response) -> DialogId | None:
        """The id of the dialog a received response belongs to (§12.1.2), None without tags. A 2xx
        without a To tag has the null remote tag "": §12.1.2 has a UAC take it so (an RFC 2543 peer,
        which tags nothing); a 1xx without one creates no dialog."""
        to, from_, call_id = response.to, response.from_, response.call_id
        if to is None or from_ is None or not from_.tag or not call_id:
            return None
        if to.tag is None:
            return cls(call_id, from_.tag, "") if 200 <= response.status < 300 else None
        return cls(call_id, from_.tag, to.tag)


def _route_set(message: Request | Response) -> tuple[NameAddr, ...]:
    values = [v for value in message.headers.get_all("Record-Route") for v in split_commas(value)]
    return tuple(parse_name_addr(v, "Record-Route") for v in values if v)


def _contact(message: Request | Response) -> URI | None:
    contacts = message.contacts
    return contacts[0].uri if contacts else None


def _seq(message: Request | Response) -> int:
    cseq = message.cseq
    if cseq is None:
        raise DialogError("message without CSeq")
    return cseq.seq


class Dialog:
    """One dialog; build with :meth:`from_uac_response` or :meth:`from_uas_request`."""

    def __init__(
        self,
        *,
        id: DialogId,
        role: Role,
        state: DialogState,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        remote_target: URI,
        route_set: Sequence[NameAddr],
        invite_cseq: int,
        local_cseq: int | None,
        remote_cseq: int | None,
        endpoint: Endpoint,
        secure: bool = False,
        contact: NameAddr | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.id = id
        self.role = role
        self.state = state
        self.local_uri = local_uri  # with our tag
        self.remote_uri = remote_uri  # with the remote tag
        self.remote_target = remote_target
        self.route_set = tuple(route_set)
        self.invite_cseq = invite_cseq  # CSeq number of the INVITE that created the dialog
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.endpoint = endpoint
        self.secure = secure
        self.contact = contact or endpoint.contact()
        self.reason = ""
        self._terminate_reason = "terminated"
        self._rng = rng or random.Random()
        # An INVITE transaction in progress in each direction (§14.1, §14.2).
        self.pending_out_invite = role is Role.UAC and state is DialogState.EARLY
        self.pending_in_invite = role is Role.UAS and state is DialogState.EARLY
        self._acks: dict[int, Request] = {}
        logger.debug(
            "sip_call_id=%s dialog %s created as %s (%s)", id.call_id, id.local_tag, role.name, state.name
        )

    def __repr__(self) -> str:
        return f"<Dialog {self.role.name} {self.id.call_id} {self.id.local_tag}/{self.id.remote_tag} {self.state.name}>"

    # -- creation ------------------------------------------------------------------------------

    @classmethod
    def from_uac_response(
        cls,
        invite: Request,
        response: Response,
        endpoint: Endpoint,
        *,
        secure_transport: bool = False,
        rng: random.Random | None = None,
    ) -> Dialog:
        """The dialog a 1xx with a To tag or a 2xx to our ``invite`` creates (RFC 3261 §12.1.2):
        route set = Record-Route reversed, remote target = Contact (the Request-URI when a 1xx
        carries none), local CSeq = the INVITE's, remote CSeq empty."""
        dialog_id = DialogId.of_response(response)
        to, from_ = response.to, invite.from_
        if dialog_id is None or to is None or from_ is None or not 101 <= response.status <= 299:
            raise DialogError(f"a {response.status} response without To and From tags creates no dialog")
        state = DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED
        target = _contact(response) or invite.uri
        secure = secure_transport and invite.uri.scheme == "sips"
        return cls(
            id=dialog_id,
            role=Role.UAC,
            state=state,
            local_uri=from_,
            remote_uri=to,
            remote_target=target,
            route_set=tuple(reversed(_route_set(response))),
            invite_cseq=_seq(invite),
            local_cseq=_seq(invite),
            remote_cseq=None,
            endpoint=endpoint,
            secure=secure,
            contact=next(iter(invite.contacts), None),
            rng=rng,
        )

    @classmethod
    def from_uas_request(
        cls,
        invite: Request,
        endpoint: Endpoint,
        *,
        local_tag: str | None = None,
        contact: NameAddr | None = None,
        secure_transport: bool = False,
        rng: random.Random | None = None,
    ) -> Dialog:
        """The dialog the INVITE we answer with a To tag creates (RFC 3261 §12.1.1): route set =
        Record-Route in order, remote target = Contact, remote CSeq = the INVITE's, local CSeq
        empty. It starts EARLY: every response but 100 carries ``local_tag``. ``contact`` is ours
        (default: the endpoint's)."""
        to, from_, call_id = invite.to, invite.from_, invite.call_id
        if invite.method != "INVITE" or to is None or from_ is None or not call_id:
            raise DialogError(f"a {invite.method} without To, From and Call-ID creates no dialog")
        if to.tag is not None:
            raise DialogError(f"an INVITE with To tag {to.tag!r} belongs to an existing dialog")
        target = _contact(invite)
        if target is None:
            raise BadRequest("INVITE without Contact (RFC 3261 §8.1.1.8)")
        tag = local_tag or new_tag()
        return cls(
            id=DialogId(call_id, tag, from_.tag or ""),
            role=Role.UAS,
            state=DialogState.EARLY,
            local_uri=to.with_param("tag", tag),
            remote_uri=from_,
            remote_target=target,
            route_set=_route_set(invite),
            invite_cseq=_seq(invite),
            local_cseq=None,
            remote_cseq=_seq(invite),
            endpoint=endpoint,
            secure=secure_transport and invite.uri.scheme == "sips",
            contact=contact,
            rng=rng,
        )

    # -- a snapshot for another instance (issue 34) -------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The dialog's state (RFC 3261 §12) as plain JSON, for :meth:`from_dict` in another process
        (:mod:`sipcore.dialogs.snapshot`). Transactions do not move: the cached ACK is left out."""
        from sipcore.dialogs.snapshot import dialog_to_dict  # it imports this module

        return dialog_to_dict(self)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], endpoint: Endpoint | None = None, *, rng: random.Random | None = None
    ) -> Dialog:
        """The dialog :meth:`to_dict` wrote, on ``endpoint`` (default: the one it was written with).
        Malformed data raises :class:`~sipcore.dialogs.snapshot.SnapshotError` naming the field."""
        from sipcore.dialogs.snapshot import dialog_from_dict

        return dialog_from_dict(cls, data, endpoint, rng)

    # -- the state machine ---------------------------------------------------------------------

    def _set_state(self, new: DialogState, reason: str) -> None:
        logger.debug(
            "sip_call_id=%s dialog %s: %s -> %s (%s)",
            self.id.call_id,
            self.id.local_tag,
            self.state.name,
            new.name,
            reason,
        )
        self.state = new
        self.reason = reason

    def handle(self, event: DialogEvent, message: Request | Response | None = None) -> Response | None:
        """Feed one event; returns the response owed for a received request, if any."""
        handler = TABLE.get((self.state, event))
        if handler is None:
            raise DialogError(
                f"dialog {self.id.call_id}: illegal event {event.name!r} in state {self.state.name!r}"
            )
        response: Response | None = handler(self, message)
        return response

    def _absorb(self, message: Request | Response | None) -> Response | None:
        return None

    def _provisional(self, message: Request | Response | None) -> Response | None:
        if self.role is Role.UAC and isinstance(message, Response):
            self.remote_target = _contact(message) or self.remote_target
        return None

    def _confirm(self, message: Request | Response | None) -> Response | None:
        if self.role is Role.UAC and isinstance(message, Response):
            # §13.2.2.4: the route set is recomputed from the 2xx, the target taken from it.
            self.route_set = tuple(reversed(_route_set(message)))
            self.remote_target = _contact(message) or self.remote_target
        self.pending_out_invite = self.pending_in_invite = False
        self._set_state(DialogState.CONFIRMED, "2xx to INVITE")
        return None

    def _fail(self, message: Request | Response | None) -> Response | None:
        status = message.status if isinstance(message, Response) else 0
        self.pending_out_invite = self.pending_in_invite = False
        self._set_state(DialogState.TERMINATED, f"{status} to INVITE")  # §12.3
        return None

    def _terminate(self, message: Request | Response | None) -> Response | None:
        self._set_state(DialogState.TERMINATED, self._terminate_reason)
        return None

    def _request_out(self, message: Request | Response | None) -> Response | None:
        request = _request(message)
        if request.method == "INVITE":
            if self.state is DialogState.EARLY:
                raise DialogError("no re-INVITE in an early dialog (RFC 3261 §14.1, RFC 6141 §3)")
            if self.pending_out_invite or self.pending_in_invite:
                raise DialogError("an INVITE transaction is already in progress (RFC 3261 §14.1)")
            self.pending_out_invite = True
        if request.method == "BYE" and self.role is Role.UAS and self.state is DialogState.EARLY:
            raise DialogError("the callee may not send BYE on an early dialog (RFC 3261 §15)")
        self.local_cseq = _seq(request)
        if request.method == "BYE":
            self._set_state(DialogState.TERMINATED, "BYE sent")  # §15.1.1
        return None

    def _request_in(self, message: Request | Response | None) -> Response | None:
        request = _request(message)
        if request.method in ("ACK", "CANCEL"):
            return None  # same CSeq number as their INVITE (§13.2.2.4, §9.1)
        seq = _seq(request)
        if self.remote_cseq is not None and seq < self.remote_cseq:
            # §12.2.2: out of order.
            return self._error(request, 500, f"CSeq {seq} lower than {self.remote_cseq}")
        self.remote_cseq = seq
        if request.method == "INVITE":
            if self.pending_out_invite:
                return self._error(request, 491)  # §14.2 glare
            if self.pending_in_invite:
                # §14.2: an INVITE before our final response to the previous one.
                retry = (("Retry-After", str(self._rng.randint(0, 10))),)
                return make_response(request, 500, to_tag=self.id.local_tag, headers=retry)
            self.pending_in_invite = True
        if request.method in TARGET_REFRESH:
            self.remote_target = _contact(request) or self.remote_target  # §12.2.2
        if request.method == "BYE":
            self._set_state(DialogState.TERMINATED, "BYE received")  # §15.1.2
        return None

    def _gone(self, message: Request | Response | None) -> Response | None:
        request = _request(message)
        return None if request.method == "ACK" else self._error(request, 481)

    def _response_in(self, message: Request | Response | None) -> Response | None:
        response = _response(message)
        cseq = response.cseq
        method = cseq.method if cseq is not None else ""
        if method == "INVITE" and response.status >= 200:
            self.pending_out_invite = False
        if 200 <= response.status < 300 and method in TARGET_REFRESH:
            self.remote_target = _contact(response) or self.remote_target  # §12.2.1.2
        if response.status in (408, 481):
            self._set_state(DialogState.TERMINATED, f"{response.status} to {method}")  # §12.2.1.2
        return None

    def _response_out(self, message: Request | Response | None) -> Response | None:
        response = _response(message)
        cseq = response.cseq
        if cseq is not None and cseq.method == "INVITE" and response.status >= 200:
            self.pending_in_invite = False
        return None

    def _error(self, request: Request, status: int, reason: str | None = None) -> Response:
        return make_response(request, status, reason, to_tag=self.id.local_tag)

    # -- the TU's interface --------------------------------------------------------------------

    def _is_initial_invite(self, message: Request | Response, role: Role) -> bool:
        cseq = message.cseq
        return (
            self.role is role
            and cseq is not None
            and cseq.method == "INVITE"
            and cseq.seq == self.invite_cseq
        )

    def receive_response(self, response: Response) -> None:
        """A response to a request we sent in this dialog (the initial INVITE included)."""
        if self._is_initial_invite(response, Role.UAC):
            kind = "1XX" if response.status < 200 else "2XX" if response.status < 300 else "FAILURE"
            self.handle(DialogEvent[f"RECV_{kind}"], response)
        else:
            self.handle(DialogEvent.RECV_RESPONSE, response)

    def receive_request(self, request: Request) -> Response | None:
        """A request in this dialog; returns the error response to send instead of passing it
        to the TU (500, 491, 481), None when it is accepted."""
        return self.handle(DialogEvent.RECV_REQUEST, request)

    def create_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Request:
        """A new request in the dialog (RFC 3261 §12.2.1.1): BYE, INFO (any body), INVITE
        (re-INVITE), UPDATE, ...; local CSeq + 1, new branch, route set applied."""
        if method in ("ACK", "CANCEL"):
            raise DialogError(
                f"{method} reuses its INVITE's CSeq: use ack() or gateway.sip.transactions.client.build_cancel()"
            )
        seq = (self.local_cseq if self.local_cseq is not None else 0) + 1
        request = self._build(method, seq, body, content_type, headers)
        self.handle(DialogEvent.SEND_REQUEST, request)
        return request

    def record_request(self, request: Request) -> None:
        """Account for an in-dialog request built elsewhere, such as the copy with credentials
        :meth:`DigestClient.authorize` makes (CSeq + 1)."""
        seq = _seq(request)
        if request.call_id != self.id.call_id:
            raise DialogError(
                f"request with Call-ID {request.call_id!r} is not in dialog {self.id.call_id!r}"
            )
        if self.local_cseq is not None and seq <= self.local_cseq:
            raise DialogError(f"CSeq {seq} not above the dialog's local CSeq {self.local_cseq}")
        self.handle(DialogEvent.SEND_REQUEST, request)

    def ack(self, invite: Request, *, body: bytes = b"", content_type: str | None = None) -> Request:
        """The ACK of a 2xx to ``invite`` (RFC 3261 §13.2.2.4): built like an in-dialog request
        with the INVITE's CSeq number and credentials and a new branch. Asked again for the same
        INVITE (a retransmitted 2xx) it returns the same ACK."""
        seq = _seq(invite)
        cached = self._acks.get(seq)
        if cached is not None:
            return cached
        self.handle(DialogEvent.SEND_ACK)
        credentials = [(n, v) for n in _CREDENTIALS for v in invite.headers.get_all(n)]
        ack = self._build("ACK", seq, body, content_type, credentials)
        self._acks = {seq: ack}  # only the latest INVITE can still see 2xx retransmissions
        return ack

    def respond(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """A response to a request received in (or creating) this dialog, with our To tag
        (§12.1.1); Contact in 1xx/2xx to INVITE and 2xx to UPDATE (§12.1.1, §13.3.1.4, RFC 3311
        §5.2); Record-Route copied into responses that create the dialog (§12.1.1)."""
        if request.call_id != self.id.call_id:
            raise DialogError(
                f"request with Call-ID {request.call_id!r} is not in dialog {self.id.call_id!r}"
            )
        initial = request.method == "INVITE" and self._is_initial_invite(request, Role.UAS)
        extra: list[tuple[str, str]] = []
        if initial and 100 < status < 300:
            extra += [("Record-Route", value) for value in request.headers.get_all("Record-Route")]
        if (
            100 < status < 300
            and request.method in TARGET_REFRESH
            and not (request.method == "UPDATE" and status < 200)
        ):
            extra.append(("Contact", str(self.contact)))
        if request.method == "INVITE" and 200 <= status < 300:
            extra.append(("Allow", ", ".join(self.endpoint.allow)))
            if self.endpoint.supported:
                extra.append(("Supported", ", ".join(self.endpoint.supported)))
        extra.append(("Server", self.endpoint.user_agent))
        extra.extend(headers)
        if body:
            if content_type is None:
                raise DialogError(f"{status} response with a body needs a content type")
            extra.append(("Content-Type", content_type))
        response = make_response(
            request, status, reason, to_tag=self.id.local_tag, headers=tuple(extra), body=body
        )
        if initial:
            kind = "1XX" if status < 200 else "2XX" if status < 300 else "FAILURE"
            self.handle(DialogEvent[f"SEND_{kind}"], response)
        else:
            self.handle(DialogEvent.SEND_RESPONSE, response)
        return response

    def terminate(self, reason: str) -> None:
        """End the dialog locally (a losing fork, a timeout): no message is sent."""
        self._terminate_reason = reason
        self.handle(DialogEvent.TERMINATE)

    def glare_retry_delay(self) -> float:
        """Seconds to wait before retrying a re-INVITE refused with 491 (RFC 3261 §14.1): 2.1 to
        4 s when we own the Call-ID (we were the UAC), else 0 to 2 s; in units of 10 ms."""
        low, high = (210, 400) if self.role is Role.UAC else (0, 200)
        return self._rng.randint(low, high) / 100

    def _build(
        self, method: str, seq: int, body: bytes, content_type: str | None, headers: Sequence[tuple[str, str]]
    ) -> Request:
        refresh = method in TARGET_REFRESH
        contact = method in WITH_CONTACT
        return build_request(
            method,
            self.remote_target,
            endpoint=self.endpoint,
            from_=self.local_uri,
            to=self.remote_uri,
            call_id=self.id.call_id,
            cseq=seq,
            route_set=self.route_set,
            contact=self.contact if contact else None,
            body=body,
            content_type=content_type if body else None,
            headers=headers,
            capabilities=refresh,
        )


def _request(message: Request | Response | None) -> Request:
    if not isinstance(message, Request):
        raise DialogError(f"expected a request, got {type(message).__name__}")
    return message


def _response(message: Request | Response | None) -> Response:
    if not isinstance(message, Response):
        raise DialogError(f"expected a response, got {type(message).__name__}")
    return message


# (state(s), event(s), handler): the handler is called with the machine and its arguments.
TABLE = transition_table(
    DialogState,
    DialogEvent,
    ("EARLY", "RECV_1XX,SEND_1XX", Dialog._provisional),
    ("EARLY", "RECV_2XX,SEND_2XX", Dialog._confirm),
    ("EARLY", "RECV_FAILURE,SEND_FAILURE", Dialog._fail),
    ("EARLY,CONFIRMED", "SEND_REQUEST", Dialog._request_out),
    ("EARLY,CONFIRMED", "RECV_REQUEST", Dialog._request_in),
    ("EARLY,CONFIRMED", "RECV_RESPONSE", Dialog._response_in),
    ("EARLY,CONFIRMED,TERMINATED", "SEND_RESPONSE", Dialog._response_out),
    ("EARLY,CONFIRMED", "TERMINATE", Dialog._terminate),
    ("CONFIRMED", "RECV_1XX,RECV_2XX,SEND_2XX,SEND_ACK", Dialog._absorb),
    ("TERMINATED", "RECV_REQUEST", Dialog._gone),
    (
        "TERMINATED",
        "RECV_1XX,RECV_2XX,RECV_FAILURE,RECV_RESPONSE,SEND_FAILURE,SEND_ACK,TERMINATE",
        Dialog._absorb,
    ),
)
