"""Receiving an INVITE with Replaces (RFC 3891 §3): which dialog it names and whether it may replace it.

Pure: the UA looks the named dialog up (Call-ID, *our* tag = the Replaces to-tag, *their* tag = the
from-tag, §3) and describes what it found as a :class:`ReplacedDialog`; :func:`judge` applies §3's
rules in the order the RFC gives them and returns the refusal, or None when the new INVITE takes the
dialog over:

====================================================  =============================
what matched                                          answer to the new INVITE
====================================================  =============================
nothing, or a dialog not created by INVITE             481 Call/Transaction Does Not Exist
a dialog already terminated                            603 Declined
an early dialog this UA did not initiate (its UAS)     481
a source not authorised to replace it                  403 Forbidden
a confirmed dialog, the Replaces says ``early-only``   486 Busy Here
anything else                                          accepted: the old dialog gets BYE
                                                       (confirmed) or CANCEL (early, ours)
====================================================  =============================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sipcore.dialogs.refer import Replaces

__all__ = ["DialogPhase", "Refusal", "ReplacedDialog", "judge"]


class DialogPhase(enum.Enum):
    """How far the dialog a Replaces names has come (RFC 3261 §12)."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class ReplacedDialog:
    """The dialog of ours a Replaces matched: its phase, whether we sent its INVITE (we are its UAC),
    and whether an INVITE created it at all."""

    phase: DialogPhase
    initiated_here: bool
    by_invite: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.phase, DialogPhase):
            raise ValueError(f"invalid dialog phase {self.phase!r}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """The final response the INVITE with Replaces gets instead of taking the dialog over."""

    status: int
    reason: str

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 699:
            raise ValueError(f"a refusal is a 4xx-6xx, not {self.status!r}")


def judge(replaces: Replaces, found: ReplacedDialog | None, authorised: bool) -> Refusal | None:
    """RFC 3891 §3 for the INVITE carrying ``replaces``: the refusal, or None (accepted)."""
    if found is None or not found.by_invite:
        return Refusal(481, "Call/Transaction Does Not Exist")
    if found.phase is DialogPhase.TERMINATED:
        return Refusal(603, "Declined")
    if found.phase is DialogPhase.EARLY and not found.initiated_here:
        # §3: an early dialog we are the UAS of cannot be replaced (call pickup targets the caller's UA)
        return Refusal(481, "Call/Transaction Does Not Exist")
    if not authorised:
        return Refusal(403, "Forbidden")
    if found.phase is DialogPhase.CONFIRMED and replaces.early_only:
        return Refusal(486, "Busy Here")
    return None
