"""Call transfer in the SIP core: REFER (RFC 3515), its implicit subscription's NOTIFYs (message/sipfrag,
RFC 3420) and the Replaces header (RFC 3891). Pure: values in, values and header text out.

- ``Refer-To`` (RFC 3515 §2.1) is a name-addr whose URI may carry URI headers: an attended transfer puts
  the dialog to replace there, ``?Replaces=<Call-ID>%3Bto-tag%3D..%3Bfrom-tag%3D..`` escaped as RFC 3891 §5
  shows (:func:`refer_to`, :func:`replaces_of`).
- ``Replaces`` (RFC 3891 §6.1): ``callid;to-tag=..;from-tag=..[;early-only]`` (:class:`Replaces`). Seen
  from the UAS that receives it, the to-tag is *its own* tag of the dialog and the from-tag the far end's
  (§3): :meth:`Replaces.matches` takes the dialog's local and remote tags in that sense.
- The referrer learns how the referred call goes from NOTIFYs of the ``refer`` event package (§2.4.4,
  §2.4.5): ``Event: refer;id=<CSeq of the REFER>``, ``Subscription-State: active`` until the final status,
  ``terminated;reason=noresource`` with it, and a ``message/sipfrag`` body holding a status line
  (:func:`sipfrag`, :func:`parse_sipfrag`, :func:`notify_headers`, :class:`ReferNotify`).

Bad input raises :class:`~sipcore.errors.BadRequest` (a 400 for the peer), never anything else.
"""

from __future__ import annotations

import enum
import re
import string
from dataclasses import dataclass
from typing import Final

from sipcore.errors import BadRequest
from sipcore.syntax.headers import NameAddr, get_param, is_token, parse_name_addr, parse_params, split_commas
from sipcore.syntax.uri import SipURI, percent_decode

__all__ = [
    "REFER_EVENT",
    "SIPFRAG",
    "ReferNotify",
    "Replaces",
    "SubscriptionState",
    "notify_headers",
    "parse_event",
    "parse_refer_to",
    "parse_sipfrag",
    "refer_to",
    "replaces_of",
    "sipfrag",
]

REFER_EVENT: Final = "refer"
SIPFRAG: Final = "message/sipfrag"
SIPFRAG_CONTENT_TYPE: Final = "message/sipfrag;version=2.0"  # RFC 3515 §2.4.5
# RFC 3986 unreserved: what stays as it is inside an escaped URI header value (RFC 3261 §19.1.2)
_UNESCAPED: Final = frozenset(string.ascii_letters + string.digits + "-_.!~*'()")
_STATUS_LINE: Final = re.compile(r"SIP/2\.0[ \t]+([1-6][0-9][0-9])(?:[ \t]+([^\r\n]*))?\Z", re.IGNORECASE)
MAX_SIPFRAG: Final = 8192


class SubscriptionState(enum.Enum):
    """RFC 6665 §8.2.3 (RFC 3265 §7.2.3) Subscription-State values the refer package uses."""

    ACTIVE = "active"
    PENDING = "pending"
    TERMINATED = "terminated"


def _escape(text: str) -> str:
    return "".join(ch if ch in _UNESCAPED else "".join(f"%{b:02X}" for b in ch.encode()) for ch in text)


@dataclass(frozen=True, slots=True)
class Replaces:
    """The dialog an INVITE replaces (RFC 3891 §6.1). ``to_tag`` is the tag of the UA receiving the
    INVITE with Replaces, ``from_tag`` its peer's (§3)."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    def __post_init__(self) -> None:
        for name in ("call_id", "to_tag", "from_tag"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or any(ch in value for ch in ';,\r\n \t"<>'):
                raise ValueError(f"invalid Replaces {name} {value!r}")

    def __str__(self) -> str:
        early = ";early-only" if self.early_only else ""
        return f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}{early}"

    @classmethod
    def parse(cls, value: str) -> Replaces:
        """Parse a Replaces header value; BadRequest (400, RFC 3891 §3) when it is malformed."""
        text = value.strip()
        call_id, semi, rest = text.partition(";")
        call_id = call_id.strip()
        if not call_id or not semi:
            raise BadRequest(f"invalid Replaces {value[:80]!r}: Call-ID and both tags are required")
        params = parse_params(";" + rest, "Replaces")
        to_tag, from_tag = get_param(params, "to-tag"), get_param(params, "from-tag")
        if not to_tag or not from_tag:
            raise BadRequest(f"invalid Replaces {value[:80]!r}: to-tag and from-tag are required")
        early = any(name.lower() == "early-only" for name, _ in params)
        try:
            return cls(call_id, to_tag, from_tag, early)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    @classmethod
    def of_request(cls, values: tuple[str, ...]) -> Replaces | None:
        """The one Replaces of a request (its header values); more than one is a 400 (RFC 3891 §3)."""
        if not values:
            return None
        items = [item for value in values for item in split_commas(value, "Replaces")]
        if len(items) != 1:
            raise BadRequest("more than one Replaces header")
        return cls.parse(items[0])

    def matches(self, call_id: str, local_tag: str, remote_tag: str) -> bool:
        """Whether this names the dialog (``call_id``, our tag, their tag) as seen by its UAS (§3)."""
        return self.call_id == call_id and self.to_tag == local_tag and self.from_tag == remote_tag

    def escaped(self) -> str:
        """The value as a URI header of Refer-To (RFC 3891 §5: ``;`` as %3B, ``=`` as %3D, ``@`` as %40)."""
        return _escape(str(self))


def refer_to(target: SipURI, replaces: Replaces | None = None) -> NameAddr:
    """The Refer-To for ``target`` (RFC 3515 §2.1), with the dialog it replaces for an attended transfer."""
    if replaces is not None:
        headers = tuple(h for h in target.headers if h[0].lower() != "replaces") + (
            ("Replaces", replaces.escaped()),
        )
        target = SipURI(
            target.host, target.user, target.password, target.port, target.params, headers, target.scheme
        )
    return NameAddr(target)


def parse_refer_to(value: str) -> NameAddr:
    """A Refer-To value (RFC 3515 §2.1: exactly one URI); BadRequest when it is not one usable SIP URI."""
    items = split_commas(value, "Refer-To")
    if len(items) != 1:
        raise BadRequest("Refer-To must hold exactly one URI")
    address = parse_name_addr(items[0], "Refer-To")
    if not isinstance(address.uri, SipURI):
        raise BadRequest(f"Refer-To {value[:80]!r} is not a sip: or sips: URI")
    return address


def replaces_of(uri: SipURI) -> Replaces | None:
    """The Replaces carried as a URI header of a Refer-To (RFC 3891 §5), decoded; None without one."""
    values = [v for name, v in uri.headers if name.lower() == "replaces"]
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest("more than one Replaces in Refer-To")
    return Replaces.parse(percent_decode(values[0], "Replaces"))


def parse_event(value: str) -> tuple[str, str | None]:
    """(package, id) of an Event header (RFC 6665 §8.2.1): ``refer;id=93809824`` -> ("refer", "93809824")."""
    package, _, rest = value.strip().partition(";")
    package = package.strip().lower()
    if not package or not is_token(package):
        raise BadRequest(f"invalid Event {value[:80]!r}")
    params = parse_params(";" + rest, "Event") if rest else ()
    return package, get_param(params, "id")


def sipfrag(status: int, reason: str) -> bytes:
    """A message/sipfrag body of one status line (RFC 3515 §2.4.5): ``SIP/2.0 200 OK``."""
    if not 100 <= status <= 699:
        raise ValueError(f"invalid status {status!r}")
    clean = " ".join(reason.split())
    return f"SIP/2.0 {status} {clean}\r\n".encode()


def parse_sipfrag(body: bytes) -> tuple[int, str]:
    """(status, reason) of a sipfrag's status line (its first line; headers after it are ignored)."""
    if len(body) > MAX_SIPFRAG:
        raise BadRequest("message/sipfrag body too large")
    text = body.decode("utf-8", "replace").lstrip("\r\n")
    line = text.split("\n", 1)[0].rstrip("\r")
    match = _STATUS_LINE.match(line.strip())
    if match is None:
        raise BadRequest(f"message/sipfrag without a status line: {line[:80]!r}")
    return int(match.group(1)), (match.group(2) or "").strip()


def notify_headers(refer_cseq: int, final: bool, expires: int = 60) -> tuple[tuple[str, str], ...]:
    """Event and Subscription-State of a NOTIFY for the REFER of CSeq ``refer_cseq`` (RFC 3515 §2.4.4,
    §2.4.6: ``id`` is the REFER's CSeq; the final status terminates the implicit subscription)."""
    state = "terminated;reason=noresource" if final else f"active;expires={expires}"
    return (("Event", f"{REFER_EVENT};id={refer_cseq}"), ("Subscription-State", state))


@dataclass(frozen=True, slots=True)
class ReferNotify:
    """What one NOTIFY of the refer package says: the referred call's status and whether it is the last."""

    status: int
    reason: str
    terminated: bool

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699:
            raise ValueError(f"invalid sipfrag status {self.status!r}")

    @property
    def final(self) -> bool:
        return self.status >= 200

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300

    @classmethod
    def parse(
        cls, event: str | None, state: str | None, content_type: str | None, body: bytes
    ) -> ReferNotify:
        """From a NOTIFY's Event, Subscription-State, Content-Type and body; BadRequest (400) when it is
        not a refer NOTIFY (a wrong Event is the caller's 489 to decide, RFC 6665 §8.2.1)."""
        if event is None or parse_event(event)[0] != REFER_EVENT:
            raise BadRequest(f"NOTIFY for event {event!r}, not refer")
        if state is None:
            raise BadRequest("NOTIFY without Subscription-State")
        value = state.split(";", 1)[0].strip().lower()
        try:
            sub_state = SubscriptionState(value)
        except ValueError:
            raise BadRequest(f"invalid Subscription-State {state[:80]!r}") from None
        kind = (content_type or "").split(";", 1)[0].strip().lower()
        if kind != SIPFRAG:
            raise BadRequest(f"NOTIFY body of type {content_type!r}, not {SIPFRAG}")
        status, reason = parse_sipfrag(body)
        return cls(status, reason, sub_state is SubscriptionState.TERMINATED)
