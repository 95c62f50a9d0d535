"""The Reason header (RFC 3326): why a CANCEL or BYE was sent.

``Reason: SIP ;cause=200 ;text="Call completed elsewhere"`` is what a forking proxy puts in the CANCELs
of the branches that lost the race when another one answered (RFC 3326 §2; Kamailio's tm module sends
it): the callee's other phones must not show a missed call. ``Reason: Q.850 ;cause=16`` carries an ISDN
cause from a gateway to the PSTN (RFC 3326 §2, ITU-T Q.850 causes 1-127).

`parse_reasons` reads every value of every Reason header (RFC 3326 §2: ``Reason = "Reason" HCOLON
reason-value *(COMMA reason-value)``; one value per protocol); values it cannot read are skipped (a
CANCEL is answered 200 whatever its Reason says, RFC 3261 §9.2). `answered_elsewhere` is the one
question the UA asks of them; ``str(value)`` writes one (the gateway's own BYEs say why, when it knows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sipcore.errors import BadRequest
from sipcore.syntax.headers import get_param, is_digits, is_token, parse_params, split_commas

__all__ = ["ReasonValue", "answered_elsewhere", "parse_reasons"]

# RFC 3326 §2: the protocols a cause belongs to ("SIP": a SIP status code, "Q.850": an ISDN cause).
_CAUSE_RANGES: Final = {"sip": (100, 699), "q.850": (1, 127)}
MAX_TEXT_CHARS: Final = 200
Q850_NON_SELECTED: Final = 26  # "non-selected user clearing": another phone of the group answered


@dataclass(frozen=True, slots=True)
class ReasonValue:
    """One reason-value: its protocol as written (``SIP``, ``Q.850``, or another token), its cause (None
    when absent) and its text ('' when absent)."""

    protocol: str
    cause: int | None = None
    text: str = ""

    def __post_init__(self) -> None:
        if not is_token(self.protocol):
            raise BadRequest(f"invalid Reason protocol {self.protocol!r}")
        limits = _CAUSE_RANGES.get(self.protocol.lower())
        if self.cause is not None and limits is not None and not limits[0] <= self.cause <= limits[1]:
            raise BadRequest(f"Reason {self.protocol} cause out of range: {self.cause!r}")
        if len(self.text) > MAX_TEXT_CHARS:
            raise BadRequest(f"Reason text longer than {MAX_TEXT_CHARS} characters: {self.text[:40]!r}...")

    def __str__(self) -> str:
        """As a Reason header writes it (``Q.850;cause=41;text="..."``, RFC 3326 §2)."""
        cause = f";cause={self.cause}" if self.cause is not None else ""
        quoted = self.text.replace("\\", "\\\\").replace('"', '\\"')  # RFC 3261 §25.1 quoted-pair
        return f"{self.protocol}{cause}" + (f';text="{quoted}"' if self.text else "")

    @property
    def is_sip(self) -> bool:
        return self.protocol.lower() == "sip"

    @property
    def is_q850(self) -> bool:
        return self.protocol.lower() == "q.850"


def parse_reason_value(value: str) -> ReasonValue:
    """One reason-value (``protocol *(SEMI reason-params)``); BadRequest naming the value if malformed."""
    protocol, semi, rest = value.strip().partition(";")
    params = parse_params(semi + rest, "Reason")
    cause_text = get_param(params, "cause")
    cause: int | None = None
    if cause_text is not None:
        if not is_digits(cause_text) or len(cause_text) > 3:
            raise BadRequest(f"invalid Reason cause {cause_text!r}")
        cause = int(cause_text)
    text = get_param(params, "text") or ""
    return ReasonValue(protocol.strip(), cause, "".join(c if c.isprintable() else " " for c in text))


def parse_reasons(values: tuple[str, ...] | list[str]) -> tuple[ReasonValue, ...]:
    """Every readable reason-value of the Reason header values ``values`` (malformed ones skipped)."""
    found: list[ReasonValue] = []
    for header in values:
        try:
            parts = split_commas(header, "Reason")
        except BadRequest:
            continue
        for part in parts:
            try:
                found.append(parse_reason_value(part))
            except BadRequest:
                continue
    return tuple(found)


def answered_elsewhere(reasons: tuple[ReasonValue, ...]) -> bool:
    """Whether a CANCEL with these reasons says another branch answered: SIP cause 200 "Call completed
    elsewhere" (RFC 3326 §2, what Kamailio and FreeSWITCH send), or Q.850 cause 26 "non-selected user
    clearing" (ITU-T Q.850 §2.2.5, Asterisk's choice). Such a call was not missed."""
    return any((r.is_sip and r.cause == 200) or (r.is_q850 and r.cause == Q850_NON_SELECTED) for r in reasons)
