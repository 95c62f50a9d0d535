"""A browser's full re-offer that restarts ICE (gateway.media.webrtc.offer_restart): which re-offers restart
it (a new ice-ufrag, RFC 8839 §4.4.1.1.1), what a new DTLS fingerprint gets, the offer's candidates as
trickled ones, and our last answer with the new credentials and a new o= version."""

from __future__ import annotations

import pytest

import sdp
from gateway.media.webrtc.offer_restart import (
    credentials_of,
    local_fragment,
    restart_offered,
    with_credentials,
)

FINGERPRINT = "sha-256 " + ":".join(["AB"] * 32)
OTHER_FINGERPRINT = "sha-256 " + ":".join(["CD"] * 32)


def offer(ufrag: str, fingerprint: str = FINGERPRINT, *, session_level: bool = False) -> str:
    ice = f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{'p' * 24}\r\n"
    return (
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
        + (ice if session_level else "")
        + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
        + ("" if session_level else ice)
        + f"a=fingerprint:{fingerprint}\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n"
        + "a=candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host\r\n"
        + "a=candidate:1 2 udp 2122260222 192.0.2.10 50001 typ host\r\n"
        + "a=end-of-candidates\r\n"
    )


FINGERPRINTS = (sdp.Fingerprint("sha-256", ":".join(["AB"] * 32)),)


def test_the_same_ufrag_or_no_ice_session_is_no_restart() -> None:
    assert restart_offered(offer("abcd"), "abcd", FINGERPRINTS) is None  # a hold, a refresh
    assert restart_offered(offer("efgh"), None, FINGERPRINTS) is None  # not connected: nothing to restart


@pytest.mark.parametrize("session_level", [False, True])
def test_a_new_ufrag_restarts_with_the_offers_rtp_candidates(session_level: bool) -> None:
    restart = restart_offered(offer("efgh", session_level=session_level), "abcd", FINGERPRINTS)
    assert restart is not None
    assert (restart.ice.ufrag, restart.ice.pwd, restart.mid, restart.index) == ("efgh", "p" * 24, "0", 0)
    inits = restart.inits()
    assert [i.candidate.port if i.candidate else None for i in inits] == [50000, None]  # RTP, then the end
    assert all(i.sdp_mid == "0" and i.username_fragment == "efgh" for i in inits)


def test_a_new_dtls_fingerprint_is_no_restart_in_place() -> None:
    with pytest.raises(sdp.SdpUnacceptable, match="fingerprint"):
        restart_offered(offer("efgh", OTHER_FINGERPRINT), "abcd", FINGERPRINTS)
    # the same certificate written in lower case is the same fingerprint
    assert restart_offered(offer("efgh", FINGERPRINT.lower()), "abcd", FINGERPRINTS) is not None


def test_our_answer_gets_the_new_credentials_and_a_new_version() -> None:
    answer = offer("ours").replace("a=setup:actpass", "a=setup:passive")
    new = sdp.IceParameters("NEWufrag", "n" * 24)
    restarted = with_credentials(answer, new)
    assert credentials_of(restarted) == new
    assert "o=- 1 3 IN IP4 127.0.0.1\r\n" in restarted  # RFC 3264 §8: a changed description, version + 1
    assert (
        restarted.replace("NEWufrag", "ours").replace("n" * 24, "p" * 24).replace(" 1 3 ", " 1 2 ") == answer
    )


def test_our_fragment_has_the_new_credentials_and_the_same_candidates() -> None:
    fragment = local_fragment(
        "0", "NEWufrag", "n" * 24, ["candidate:7 1 udp 2130706431 192.0.2.1 40000 typ host"]
    )
    assert fragment.ice == sdp.IceParameters("NEWufrag", "n" * 24)
    assert [(mid, c.port) for mid, c in fragment.candidates()] == [("0", 40000)]
    assert fragment.media[0].end_of_candidates
