"""The SIP status <-> user-facing reason tables."""

from __future__ import annotations

import pytest

from gateway.calls import CallError, EndReason, RejectKind, local_reason, reason_for_status
from gateway.calls.reasons import REJECT_STATUS, RESPONSE_PHRASES, Reason, phrase, reject_kind


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (404, EndReason.NO_SUCH_NUMBER, "No such number"),
        (486, EndReason.BUSY, "Busy"),
        (487, EndReason.CANCELLED, "The call was cancelled"),
        (408, EndReason.PBX_UNREACHABLE, "The PBX is unreachable"),
        (480, EndReason.UNAVAILABLE, "The person you called is unavailable"),
        (603, EndReason.DECLINED, "The call was declined"),
        (488, EndReason.INCOMPATIBLE_MEDIA, "The other side cannot use the call's audio"),
    ],
)
def test_exact_statuses(status: int, code: EndReason, message: str) -> None:
    assert reason_for_status(status) == Reason(code, message, status)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (301, EndReason.REDIRECTED),
        (420, EndReason.REJECTED),
        (502, EndReason.SERVER_ERROR),
        (699, EndReason.GLOBAL_FAILURE),
    ],
)
def test_status_classes_quote_the_status(status: int, code: EndReason) -> None:
    reason = reason_for_status(status, "Some Phrase")
    assert reason.code is code and reason.sip_status == status
    assert f"SIP {status} Some Phrase" in reason.message


@pytest.mark.parametrize("status", [100, 180, 200, 299, 700, 0])
def test_not_a_failure(status: int) -> None:
    with pytest.raises(CallError, match=str(status)):
        reason_for_status(status)


def test_reject_statuses_and_phrases() -> None:
    assert REJECT_STATUS == {RejectKind.BUSY: 486, RejectKind.UNAVAILABLE: 480, RejectKind.DECLINE: 603}
    assert phrase(486) == "Busy Here" and phrase(603) == "Decline" and phrase(299) == ""
    assert phrase(480) == "Temporarily Unavailable"
    for status in REJECT_STATUS.values():
        assert status in RESPONSE_PHRASES


@pytest.mark.parametrize("kind", list(RejectKind))
def test_reject_kind_is_the_inverse_of_reject_status(kind: RejectKind) -> None:
    assert reject_kind(REJECT_STATUS[kind]) is kind


@pytest.mark.parametrize("status", [200, 404, 487, 500, 600])
def test_reject_kind_refuses_other_statuses(status: int) -> None:
    with pytest.raises(CallError, match=str(status)):
        reject_kind(status)


def test_local_reasons() -> None:
    assert local_reason(EndReason.HANGUP).message == "You hung up"
    assert local_reason(EndReason.REMOTE_HANGUP, 200).sip_status == 200
    assert local_reason(EndReason.BUSY, message="x").message == "x"
    with pytest.raises(CallError):
        Reason(EndReason.BUSY, "Busy", 42)
