"""The registrar for browsers' SIP libraries (RFC 3261 §10.3), sans I/O: bindings of web users to the
WebSocket flow they registered on.

A binding is (user, Contact URI) -> flow, with an expiry. The Contact of a browser names a host under
`.invalid` (RFC 7118 §5): it is kept as the Request-URI for requests to that browser, and the flow
(transport, ip, port) says where they go. A REGISTER's Contacts are added, refreshed or removed
(``expires=0``, or ``*`` with ``Expires: 0``); an expiry under ``min_expires`` gets 423 with
Min-Expires (§10.3 step 7), one over ``max_expires`` is cut to it; a Call-ID/CSeq older than the one
that made a binding is ignored for that binding (§10.3 step 7). The 200 lists every binding of the
user with its ``expires`` (JsSIP finds its own Contact there). A flow that closes loses its bindings.

A user has at most ``max_bindings`` (sip.websocket.max_bindings_per_user): a REGISTER that would leave
more, and more than before, changes nothing and gets 403 "Too Many Bindings" with a Warning (399)
naming the cap -- Kamailio's registrar refuses past ``max_contacts`` likewise (it answers 503, which
RFC 3261 §21.5.4 keeps for an overloaded server: a retry would not help here, so 403, §21.4.4).
Refreshing or removing bindings is always accepted, and so the 200 lists at most ``max_bindings``
Contacts (issue 32: 1,500 Contacts on one flow gave a 105 KB 200 OK).

RFC 5626 outbound: a Contact with `+sip.instance` and `reg-id` in a REGISTER with `Supported: outbound`
is keyed by (instance, reg-id), so a browser that reconnects on a new WebSocket replaces the binding of
its old flow; the 200 says `Require: outbound` and `Flow-Timer` (§5.4). Its calls follow it to the new
flow (gateway/websip/flows.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from sipcore.errors import SIPError
from sipcore.location.routing import Address
from sipcore.syntax.headers import NameAddr, get_param, warning_value
from sipcore.syntax.message import Request
from sipcore.syntax.parser import Framing, parse_message

__all__ = ["Binding", "Flow", "RegisterResult", "Registrar", "flow_identity", "identities_of"]

DEFAULT_EXPIRES = 3600
DEFAULT_MAX_BINDINGS = 10
# RFC 5626 §5.4: how often an outbound client must send keep-alives (a double CRLF) on its flow. The
# gateway needs none (its WebSocket pings find a dead flow); NATs and proxies between need traffic
# within their idle timeouts: 120 s is the RFC's TCP default (§4.4.1), within the usual 300 s+.
FLOW_TIMER = 120


@dataclass(frozen=True, slots=True)
class Flow:
    """Where a browser is: the transport token (WS, WSS) and its (ip, port)."""

    transport: str
    address: Address


@dataclass(frozen=True, slots=True)
class Binding:
    user_id: str
    contact: NameAddr  # as the browser wrote it (its URI is the Request-URI toward it)
    flow: Flow
    expires_at: float
    call_id: str
    cseq: int
    instance: str | None = None  # RFC 5626 +sip.instance when bound as an outbound flow
    refreshed_at: float = 0.0

    def remaining(self, now: float) -> int:
        return max(0, round(self.expires_at - now))


@dataclass(frozen=True, slots=True)
class RegisterResult:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    reason: str | None = None


class Registrar:
    def __init__(
        self,
        clock: Callable[[], float],
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        max_bindings: int = DEFAULT_MAX_BINDINGS,
    ) -> None:
        self._clock = clock
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.max_bindings = max_bindings
        self._bindings: dict[str, dict[str, Binding]] = {}  # user id -> contact URI text -> binding

    def register(self, request: Request, user_id: str, flow: Flow) -> RegisterResult:
        """Apply an authenticated REGISTER of ``user_id`` arriving on ``flow``."""
        now = self._clock()
        call_id = request.call_id or ""
        cseq = request.cseq.seq if request.cseq is not None else 0
        try:
            header = request.headers.get("Expires")
            default = int(header) if header is not None and header.strip().isdigit() else DEFAULT_EXPIRES
            wildcard = any(v.strip() == "*" for v in request.headers.get_all("Contact"))
            contacts = request.contacts
        except SIPError as exc:
            return RegisterResult(400, reason=exc.detail)
        outbound = _supports_outbound(request)
        if outbound and sum(get_param(c.params, "reg-id") is not None for c in contacts) > 1:
            return RegisterResult(400, reason="more than one Contact with reg-id (RFC 5626 §6)")
        if len(contacts) > self.max_bindings:  # never fits (and is not parsed further)
            return _too_many(self.max_bindings)
        mine = self._bindings.setdefault(user_id, {})
        if wildcard:
            if contacts or default != 0:
                return RegisterResult(400, reason="Contact * needs Expires: 0 and no other Contact")
            mine.clear()
        changes: list[tuple[str, Binding | None]] = []
        used_outbound = False
        for contact in contacts:
            raw = get_param(contact.params, "expires")
            try:
                expires = int(raw) if raw is not None else default
            except ValueError:
                return RegisterResult(400, reason=f"bad expires {raw!r}")
            instance = _flow_identity(contact) if outbound else None
            key = f"outbound {instance[0]} {instance[1]}" if instance is not None else str(contact.uri)
            old = mine.get(key)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                continue  # out of order (§10.3 step 7)
            if expires == 0:
                changes.append((key, None))
                continue
            if expires < self.min_expires:
                return RegisterResult(423, (("Min-Expires", str(self.min_expires)),))
            expires = min(expires, self.max_expires)
            bare = replace(contact, params=tuple(p for p in contact.params if p[0].lower() != "expires"))
            changes.append(
                (
                    key,
                    Binding(
                        user_id,
                        bare,
                        flow,
                        now + expires,
                        call_id,
                        cseq,
                        instance[0] if instance is not None else None,
                        now,
                    ),
                )
            )
            used_outbound = used_outbound or instance is not None
        if not self._apply(user_id, mine, changes):
            return _too_many(self.max_bindings)
        listed = tuple(
            ("Contact", f"{b.contact};expires={b.remaining(now)}") for b in self.bindings(user_id, now)
        )
        if used_outbound:
            listed = (("Require", "outbound"), ("Flow-Timer", str(FLOW_TIMER)), *listed)
        return RegisterResult(200, listed)

    def _apply(
        self, user_id: str, mine: dict[str, Binding], changes: list[tuple[str, Binding | None]]
    ) -> bool:
        """Make the changes (a binding added or replaced; None: removed), unless they would leave the user
        more bindings than the cap and more than before: then none (False). Refreshes and removals always
        pass."""
        after = set(mine) | {key for key, b in changes if b is not None}
        after -= {key for key, b in changes if b is None}
        if len(after) > self.max_bindings and len(after) > len(mine):
            if not mine:
                self._bindings.pop(user_id, None)
            return False
        for key, binding in changes:
            if binding is None:
                mine.pop(key, None)
            else:
                mine[key] = binding
        if not mine:
            self._bindings.pop(user_id, None)
        return True

    def bindings(self, user_id: str, now: float | None = None) -> list[Binding]:
        """The user's live bindings (expired ones are dropped here)."""
        now = self._clock() if now is None else now
        mine = self._bindings.get(user_id, {})
        for key in [k for k, b in mine.items() if b.expires_at <= now]:
            del mine[key]
        if not mine:
            self._bindings.pop(user_id, None)
        return list(mine.values())

    def reachable(self, binding: Binding) -> bool:
        """Whether requests for ``binding``'s user go over it: every plain binding; of an outbound
        instance's bindings (one per reg-id), the one refreshed last (RFC 5626 §5.3)."""
        if binding.instance is None:
            return True
        same = [b for b in self._bindings.get(binding.user_id, {}).values() if b.instance == binding.instance]
        return max(same, key=lambda b: b.refreshed_at, default=binding) is binding

    def on_flow(self, flow: Flow) -> list[Binding]:
        """Every live binding on ``flow``."""
        now = self._clock()
        return [b for user in list(self._bindings) for b in self.bindings(user, now) if b.flow == flow]

    def flow_closed(self, flow: Flow) -> list[Binding]:
        """Drop the bindings of a closed flow; the dropped ones."""
        dropped = []
        for user_id, mine in list(self._bindings.items()):
            for key, binding in list(mine.items()):
                if binding.flow == flow:
                    dropped.append(mine.pop(key))
            if not mine:
                del self._bindings[user_id]
        return dropped

    def expire(self) -> list[Binding]:
        """Drop expired bindings; the dropped ones."""
        now = self._clock()
        dropped = []
        for user_id, mine in list(self._bindings.items()):
            for key, binding in list(mine.items()):
                if binding.expires_at <= now:
                    dropped.append(mine.pop(key))
            if not mine:
                del self._bindings[user_id]
        return dropped

    def __len__(self) -> int:
        return sum(len(m) for m in self._bindings.values())


def _too_many(cap: int) -> RegisterResult:
    text = f"at most {cap} bindings per user (sip.websocket.max_bindings_per_user)"
    return RegisterResult(403, (("Warning", warning_value(399, text)),), "Too Many Bindings")


def _supports_outbound(request: Request) -> bool:
    return "outbound" in request.headers.tags("Supported", "Require")


def identities_of(data: bytes) -> frozenset[str]:
    """What a REGISTER in ``data`` (a flow's first message, not yet authenticated) would bind by: each
    Contact's `+sip.instance` when it registers as an outbound flow, else its URI, as `flow_identity`
    names a binding's. Empty for anything else, or a message that does not parse."""
    try:
        message = parse_message(data, framing=Framing.DATAGRAM, supported=None)  # a WebSocket message
        if not isinstance(message, Request) or message.method != "REGISTER":
            return frozenset()
        outbound, contacts = _supports_outbound(message), message.contacts
    except (SIPError, ValueError):
        return frozenset()
    found = set()
    for contact in contacts:
        instance = _flow_identity(contact) if outbound else None
        found.add(flow_identity(instance[0] if instance is not None else None, str(contact.uri)))
    return frozenset(found)


def flow_identity(instance: str | None, contact_uri: str) -> str:
    """What recognises a browser's binding on a new flow (RFC 5626 §4.2, §5.2): its outbound
    `+sip.instance`, else its Contact URI (gateway/websip/flows.py)."""
    return f"instance {instance}" if instance is not None else f"contact {contact_uri}"


def _flow_identity(contact: NameAddr) -> tuple[str, str] | None:
    """(+sip.instance, reg-id) of an outbound Contact; None without either (RFC 5626 §6: a Contact
    without +sip.instance is registered the ordinary way)."""
    instance, reg_id = get_param(contact.params, "+sip.instance"), get_param(contact.params, "reg-id")
    if not instance or not reg_id or not reg_id.isdigit():
        return None
    return instance.strip('"'), reg_id
