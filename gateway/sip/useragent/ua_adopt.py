"""A call carried on from another gateway instance that died (issue 34: a call survives the loss of its
instance).

How it works: the instance that had the call wrote ``call.handover()`` (plain JSON: the dialog of RFC
3261 §12, the SDPs, what the far end allows, the session timer of RFC 4028) where the others can read
it. A survivor's ``ua.adopt(data)`` (:func:`adopt`) rebuilds the CONFIRMED dialog on its own endpoint,
with its own Contact, and registers it in the UA's ``DialogSet`` and calls exactly as ``invite()`` and
``accept_invite()`` do: in-dialog requests that reach this UA (BYE, re-INVITE, INFO, UPDATE...) are
matched by dialog id (§12.2.2) and delivered to the :class:`AdoptedCall`'s events like any call's.

The far end still sends to the dead instance's Contact: the owner then sends a re-INVITE from here
(``call.reinvite(sdp)``, with a new SDP for the media that moved too). It carries this UA's Contact,
which makes it a target refresh (RFC 3261 §12.2.2): the far end's later requests come here.

Nothing of the transactions moves: a re-INVITE either side had under way is forgotten (the far end's
own transaction times out; ours is not retransmitted any more). A browser's WebSocket flow cannot move
either (``handover()`` leaves it out): such a call's remote target is unreachable from here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from gateway.sip.useragent.ua_calls import Call, CallError, CallState
from gateway.sip.useragent.ua_events import Failed
from sipcore.auth.digest import DigestClient
from sipcore.dialogs.dialog import Dialog, DialogState
from sipcore.dialogs.session_timer import SessionTimer
from sipcore.dialogs.snapshot import MAX_SEQ, Fields, SnapshotError
from sipcore.location.routing import Target
from sipcore.syntax.headers import NameAddr, parse_name_addr
from sipcore.syntax.uri import SipURI

if TYPE_CHECKING:
    from gateway.identity import SipIdentity
    from gateway.sip.useragent.ua import UserAgent

__all__ = ["CSEQ_LEAP", "HANDOVER_VERSION", "AdoptedCall", "adopt", "caller"]

logger = logging.getLogger(__name__)

HANDOVER_VERSION = 1  # the "version" of Call.handover()
# How far our local CSeq jumps on adoption. RFC 3261 §12.2.1.1 only asks that each request of ours in the
# dialog has a higher CSeq than the last; the snapshot may be older than the dead instance's last requests
# (INFO for DTMF, session refreshes, a re-INVITE), and a re-INVITE with a CSeq the far end has seen gets
# 500 (§12.2.2). No call sends a thousand requests between two snapshots.
CSEQ_LEAP = 1000
Kind = Literal["outgoing", "incoming"]
_KINDS: tuple[Kind, ...] = ("outgoing", "incoming")


class AdoptedCall(Call):
    """A CONFIRMED call taken over from another instance. ``kind`` is how it began there: "outgoing" (an
    :class:`~gateway.sip.useragent.outgoing.OutgoingCall`, we sent the INVITE) or "incoming"."""

    def __init__(self, ua: UserAgent, dialog: Dialog, kind: Kind, digest: DigestClient | None) -> None:
        super().__init__(ua, dialog.id.call_id, CallState.CONFIRMED, digest)
        self.dialog = dialog
        self.local_tag = dialog.id.local_tag
        self.kind: Kind = kind

    def __repr__(self) -> str:
        return f"<AdoptedCall {self.kind} {self.call_id} {self.state.name}>"

    async def close(self) -> None:
        """End the call (the UA is closing): BYE (RFC 3261 §15.1.1); idempotent."""
        if self._ended:
            return
        if self.state is CallState.CONFIRMED:
            with contextlib.suppress(CallError):
                await self.bye()
        if not self._ended:
            self._emit(Failed(503, "User Agent Closing"))


def adopt(ua: UserAgent, data: Mapping[str, Any], identity: SipIdentity | None = None) -> AdoptedCall:
    """Carry on here the call ``data`` (a ``Call.handover()``) describes; see the module note.
    ``identity``: the user whose PBX credentials answer challenges to our requests in the call; without
    it, a call that had credentials gets those of its registered AOR (the dialog's local URI), if any.
    Raises SnapshotError (a ValueError naming the field) on malformed data, CallError when this UA has
    the call already. The UA registers the call (``UserAgent.adopt``); its dialog is registered here."""
    fields = Fields(data, "call")
    if fields.get("version") != HANDOVER_VERSION:
        raise fields.fail("version", f"expected {HANDOVER_VERSION}, got {fields.get('version')!r}")
    kind = _KINDS[_index(fields, "kind", _KINDS)]
    raw = fields.sub("dialog").data
    old = Dialog.from_dict(raw)  # checks every field, names the bad one
    if (fields.token("call_id"), fields.token("local_tag")) != (old.id.call_id, old.id.local_tag):
        raise fields.fail("call_id", "the call's Call-ID and local tag are not its dialog's")
    if old.state is not DialogState.CONFIRMED:
        raise fields.fail("dialog.state", f"only a confirmed dialog is adopted, not {old.state.value!r}")
    hop, timer = _next_hop(fields), _session_timer(fields)  # all read before anything is registered
    # Our Via and Contact toward the far end (as invite() and accept_invite() choose them).
    first = old.route_set[0].uri if old.route_set else old.remote_target
    toward = hop.host if hop is not None else (first.host if isinstance(first, SipURI) else None)
    endpoint = ua.endpoint_for(toward)
    user = old.contact.uri.user if isinstance(old.contact.uri, SipURI) else None
    moved = {
        **raw,
        "local_cseq": min((old.local_cseq or 0) + CSEQ_LEAP, MAX_SEQ),  # see CSEQ_LEAP
        "contact": str(endpoint.contact(user)),  # ours: a re-INVITE with it refreshes the target (§12.2)
        "pending_out_invite": False,  # the transactions died with the other instance
        "pending_in_invite": False,
    }
    dialog = Dialog.from_dict(moved, endpoint)
    if (dialog.id.call_id, dialog.id.local_tag) in {(c.call_id, c.local_tag) for c in ua.calls}:
        raise CallError(f"call {dialog.id.call_id} (tag {dialog.id.local_tag}) is already on this user agent")
    if dialog.id in ua.dialogs:
        raise CallError(f"dialog {dialog.id!r} already exists on this user agent")
    digest = _digest(ua, dialog, identity) if fields.flag("digest") else None
    call = AdoptedCall(ua, dialog, kind, digest)
    _restore(call, fields)
    call.next_hop = hop
    ua.dialogs.add(dialog)
    logger.info(
        "sip_call_id=%s adopted (%s, local CSeq %s, Contact %s)",
        call.call_id,
        kind,
        dialog.local_cseq,
        dialog.contact,
    )
    call.start_session_timer(timer)
    return call


def _index(fields: Fields, name: str, choices: tuple[str, ...]) -> int:
    value = fields.get(name)
    if value not in choices:
        raise fields.fail(name, f"expected one of {list(choices)}, got {value!r}")
    return choices.index(str(value))


def _restore(call: AdoptedCall, fields: Fields) -> None:
    call.local_sdp, call.remote_sdp = fields.body("local_sdp"), fields.body("remote_sdp")
    call.peer_allows = frozenset(m.upper() for m in fields.texts("peer_allows"))
    call.info_packages = frozenset(p.lower() for p in fields.texts("info_packages"))
    call.peer_info_packages = frozenset(p.lower() for p in fields.texts("peer_info_packages"))
    call.peer_hosts = set(fields.texts("peer_hosts"))
    call.transfers = fields.flag("transfers")


def _next_hop(fields: Fields) -> Target | None:
    if fields.get("next_hop") is None:
        return None
    hop = fields.sub("next_hop")
    try:
        return Target(hop.text("transport"), hop.text("host"), hop.integer("port", 1, 65535))
    except ValueError as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"{hop.where}: {exc}") from None


def _session_timer(fields: Fields) -> SessionTimer | None:
    if fields.get("session_timer") is None:
        return None
    timer = fields.sub("session_timer")
    roles = ("uac", "uas")
    refresher, we_are = roles[_index(timer, "refresher", roles)], roles[_index(timer, "we_are", roles)]
    return SessionTimer(
        timer.integer("interval", 1),
        "uac" if refresher == "uac" else "uas",
        "uac" if we_are == "uac" else "uas",
    )


def _digest(ua: UserAgent, dialog: Dialog, identity: SipIdentity | None) -> DigestClient | None:
    """The adopted call's credentials, as ``invite()`` (the user's) or ``accept_invite()`` (a registered
    AOR's) gives them; the snapshot holds none."""
    if identity is not None:
        return caller(identity)[1]
    uri = dialog.local_uri.uri
    return ua.registrations.digest_for(uri) if isinstance(uri, SipURI) else None


def caller(identity: SipIdentity | str) -> tuple[NameAddr, DigestClient | None]:
    """The From of a call or request of ``identity`` (a web user's SIP identity, or an AOR) and the
    digest client its PBX credentials answer challenges with (``invite()``, ``message()``, ``adopt()``)."""
    if isinstance(identity, str):
        return parse_name_addr(identity if "<" in identity else f"<{identity}>"), None
    aor = identity.aor
    uri = SipURI(aor.host, aor.user, port=aor.port, scheme=aor.scheme)
    digest = None
    if identity.credentials is not None:
        digest = DigestClient(identity.credentials.username, identity.credentials.password.reveal())
    return NameAddr(uri, identity.display_name or None), digest
