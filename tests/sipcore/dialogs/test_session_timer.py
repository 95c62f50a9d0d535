"""RFC 4028 negotiation (sipcore/dialogs/session_timer.py)."""

from __future__ import annotations

import pytest

from sipcore import BadRequest
from sipcore.dialogs.session_timer import (
    SessionTimer,
    TimerPolicy,
    TooSmall,
    parse_session_expires,
    uac_decision,
    uas_decision,
)
from sipcore.syntax.message import Headers, Request, Response
from sipcore.syntax.uri import parse_uri

POLICY = TimerPolicy(interval=1800, min_se=90)


def invite(*headers: tuple[str, str]) -> Request:
    return Request("INVITE", parse_uri("sip:gw@example.org"), Headers(headers))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((), None),
        ((("Session-Expires", "1800"), ("Supported", "timer")), SessionTimer(1800, "uac", "uas")),
        ((("Session-Expires", "1800"),), SessionTimer(1800, "uas", "uas")),  # the UAC cannot refresh
        (
            (("Session-Expires", "600;refresher=uas"), ("Supported", "100rel, timer")),
            SessionTimer(600, "uas", "uas"),
        ),
        ((("x", "600;refresher=uac"), ("k", "timer")), SessionTimer(600, "uac", "uas")),  # compact forms
        ((("Session-Expires", "600;refresher=uac"),), SessionTimer(600, "uas", "uas")),  # no timer support
        ((("Session-Expires", "60"),), TooSmall(90)),
    ],
)
def test_the_uas_decides_interval_and_refresher(
    headers: tuple[tuple[str, str], ...], expected: SessionTimer | TooSmall | None
) -> None:
    assert uas_decision(invite(*headers), POLICY) == expected


@pytest.mark.parametrize("value", ["", "abc", "0", "90;refresher=me", "-5"])
def test_a_malformed_session_expires_is_a_bad_request(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_session_expires(value)


def test_timer_arithmetic_and_headers() -> None:
    timer = SessionTimer(1800, "uac", "uas")
    assert not timer.we_refresh and timer.expiry_deadline == 1768 and timer.refresh_after == 900
    assert timer.headers(require=True) == (("Session-Expires", "1800;refresher=uac"), ("Require", "timer"))
    assert SessionTimer(90, "uas", "uas").expiry_deadline == 60  # a third, under 32 s
    assert TooSmall(90).headers() == (("Min-SE", "90"),)


def test_refresher_is_named_by_its_role_in_the_transaction() -> None:
    """RFC 4028 §7.4/§9 (issue 33): answered an INVITE as UAS and refreshing, our re-INVITE says uac."""
    ours = SessionTimer(600, "uas", "uas")  # we answered the INVITE and refresh
    assert ours.request_headers() == (("Session-Expires", "600;refresher=uac"),)
    assert ours.headers(require=False) == (("Session-Expires", "600;refresher=uas"),)
    theirs = SessionTimer(600, "uas", "uac")  # we sent the INVITE, they refresh
    assert theirs.request_headers() == (("Session-Expires", "600;refresher=uas"),)
    assert theirs.headers(require=True)[0] == ("Session-Expires", "600;refresher=uac")
    assert SessionTimer(600, "uac", "uac").request_headers() == (("Session-Expires", "600;refresher=uac"),)


def test_the_uac_reads_the_2xx() -> None:
    response = Response(200, "OK", Headers((("Session-Expires", "900;refresher=uac"),)))
    assert uac_decision(response, POLICY) == SessionTimer(900, "uac", "uac")
    assert uac_decision(Response(200, "OK", Headers(())), POLICY) is None
