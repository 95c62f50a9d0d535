"""RFC 3891 §3: what an INVITE with Replaces gets, for each kind of dialog it names."""

from __future__ import annotations

import pytest

from sipcore.dialogs.refer import Replaces
from sipcore.dialogs.replacing import DialogPhase, Refusal, ReplacedDialog, judge

R = Replaces("abc@host", "ours", "theirs")
EARLY_ONLY = Replaces("abc@host", "ours", "theirs", early_only=True)
CONFIRMED = ReplacedDialog(DialogPhase.CONFIRMED, initiated_here=False)


@pytest.mark.parametrize(
    ("replaces", "found", "authorised", "status"),
    [
        (R, None, True, 481),  # nothing matches
        (R, ReplacedDialog(DialogPhase.CONFIRMED, True, by_invite=False), True, 481),  # not an INVITE dialog
        (R, ReplacedDialog(DialogPhase.TERMINATED, True), True, 603),
        (R, ReplacedDialog(DialogPhase.EARLY, initiated_here=False), True, 481),  # we are its UAS
        (R, CONFIRMED, False, 403),  # an untrusted source
        (R, None, False, 481),  # nothing to protect: 481 before 403, as §3 orders them
        (EARLY_ONLY, CONFIRMED, True, 486),
        (R, CONFIRMED, True, None),
        (EARLY_ONLY, ReplacedDialog(DialogPhase.EARLY, initiated_here=True), True, None),  # pickup
        (R, ReplacedDialog(DialogPhase.EARLY, initiated_here=True), True, None),
    ],
)
def test_judge(
    replaces: Replaces, found: ReplacedDialog | None, authorised: bool, status: int | None
) -> None:
    refusal = judge(replaces, found, authorised)
    assert (refusal.status if refusal is not None else None) == status


def test_values_are_validated() -> None:
    with pytest.raises(ValueError, match="200"):
        Refusal(200, "OK")
    with pytest.raises(ValueError, match="phase"):
        ReplacedDialog("early", True)  # type: ignore[arg-type]
