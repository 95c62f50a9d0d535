"""gateway.runtime.passthrough: the browser's description to the SIP side unchanged, trickle ICE in
RFC 8840 INFO bodies both ways (sdpfrag with the right mid, credentials and end-of-candidates), and what a
pass-through call refuses. Driven without a network: INFO bodies are collected from the callback."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

import sdp
from gateway.media.errors import DtmfError
from gateway.runtime.passthrough import INFO_HEADERS, PassthroughError, PassthroughMedia

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "sdp"
CHROMIUM = (SAMPLES / "chromium-offer-audio.sdp").read_text()
AIORTC_ANSWER = (SAMPLES / "aiortc-answer-audio.sdp").read_text()
AIORTC_OFFER = (SAMPLES / "aiortc-offer-audio.sdp").read_text()
CHROMIUM_ANSWER = (SAMPLES / "chromium-answer-audio.sdp").read_text()
HOST = "candidate:1 1 udp 2122260223 127.0.0.1 49344 typ host"


class Infos:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []

    def __call__(self, content_type: str, body: str, headers: Sequence[tuple[str, str]]) -> None:
        self.sent.append((content_type, body, tuple(headers)))


async def test_descriptions_pass_unchanged() -> None:
    media = PassthroughMedia("c1", Infos())
    assert await media.offer_to_sip(CHROMIUM) == CHROMIUM
    assert await media.answer_from_sip(AIORTC_ANSWER) == AIORTC_ANSWER
    with pytest.raises(sdp.SdpError):
        await media.offer_to_sip("not sdp")


async def test_browser_candidates_go_as_sdpfrag_info_with_the_browser_credentials() -> None:
    infos = Infos()
    media = PassthroughMedia("c1", infos)
    await media.offer_to_sip(CHROMIUM)
    ufrag = sdp.parse(CHROMIUM).ice_for(0)
    assert ufrag is not None
    await media.add_web_candidate(sdp.IceCandidateInit(sdp.Candidate.parse(HOST), None, 0, ufrag.ufrag))
    await media.add_web_candidate(sdp.IceCandidateInit(None, "0", None))
    assert [s[0] for s in infos.sent] == [sdp.TRICKLE_MEDIA_TYPE] * 2
    assert all(s[2] == INFO_HEADERS for s in infos.sent)
    first, last = (sdp.decode_sdpfrag(s[1]) for s in infos.sent)
    assert first.ice is not None and (first.ice.ufrag, first.ice.pwd) == (ufrag.ufrag, ufrag.pwd)
    assert "trickle" in first.ice.options  # a=ice-options:trickle as in RFC 8840 §9's example
    assert first.candidates() == [("0", sdp.Candidate.parse(HOST))]  # the mid from sdpMLineIndex 0
    assert last.media[0].end_of_candidates and not last.media[0].candidates
    assert media.candidates_sent == 1


async def test_a_candidate_of_other_credentials_goes_without_them() -> None:
    infos = Infos()
    media = PassthroughMedia("c1", infos)
    await media.offer_to_sip(CHROMIUM)
    await media.add_web_candidate(sdp.IceCandidateInit(sdp.Candidate.parse(HOST), "0", None, "other"))
    assert sdp.decode_sdpfrag(infos.sent[0][1]).ice is None  # RFC 8840 §9: no credentials we cannot vouch for


async def test_the_sip_sides_fragment_becomes_browser_candidates() -> None:
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    fragment = sdp.TrickleFragment(
        sdp.IceParameters("peer", "peerpasswordpeerpassword"),
        (sdp.TrickleMedia("0", (sdp.Candidate.parse(HOST),), True),),
    )
    found = media.browser_candidates(sdp.encode_sdpfrag(fragment))
    assert [c.to_json() for c in found] == [
        {"candidate": HOST, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "peer"},
        {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "peer"},
    ]
    assert media.candidates_received == 1
    with pytest.raises(sdp.SdpError):
        media.browser_candidates("v=0\r\n")  # not a fragment


async def test_hold_reoffers_the_browser_description_with_the_direction_changed() -> None:
    media = PassthroughMedia("c1", Infos())
    with pytest.raises(PassthroughError):
        await media.reoffer_to_sip(True)
    await media.offer_to_sip(CHROMIUM)
    held = await media.reoffer_to_sip(True)
    assert sdp.parse(held).media[0].direction is sdp.Direction.SENDONLY and media.awaiting_reanswer
    await media.answer_to_reoffer(AIORTC_ANSWER)
    assert not media.awaiting_reanswer
    assert sdp.parse(await media.reoffer_to_sip(False)).media[0].direction is sdp.Direction.SENDRECV
    media.drop_reoffer()
    assert not media.awaiting_reanswer


async def test_a_reoffer_from_the_sip_side_gets_the_browsers_description_with_its_dtls_role() -> None:
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)  # aiortc answers a=setup:active: the browser is passive
    answer = sdp.parse(await media.update_from_sip(AIORTC_ANSWER))
    assert answer.media[0].setup is sdp.Setup.PASSIVE


def restarted(description: str, ufrag: str, pwd: str) -> str:
    """``description`` as its RTCPeerConnection's ICE restart offers it: new ICE credentials (RFC 8839
    §4.4.1.1.1) and the o= version raised (RFC 3264 §8)."""
    description = re.sub(r"(?m)^(o=\S+ \S+ )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 1}", description)
    return re.sub(
        r"a=ice-pwd:\S+", f"a=ice-pwd:{pwd}", re.sub(r"a=ice-ufrag:\S+", f"a=ice-ufrag:{ufrag}", description)
    )


def origin(description: str) -> str:
    found = re.search(r"(?m)^o=.*$", description)
    assert found is not None
    return found[0].strip()


async def test_the_sip_sides_ice_restart_goes_to_the_browser_and_its_answer_back() -> None:
    """A re-offer of the SIP side's with new ICE credentials (a WebRTC far end restarting ICE, or a
    peer-to-peer call's other page on a new connection) is the browser's to answer: it gets the offer as
    it is, and its answer goes in the 200 with the session's o= line, its version raised (RFC 3264 §8).
    While the browser is asked the call has no handover. A re-offer that changes neither the ICE
    session nor the DTLS association (a session refresh) is answered at once, as before."""
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    assert await media.reoffer_web_for_sip(AIORTC_ANSWER) is None  # a refresh
    lower = re.sub(r"(?m)^a=fingerprint:.*$", lambda m: m[0].lower(), AIORTC_ANSWER)
    assert (
        lower != AIORTC_ANSWER and await media.reoffer_web_for_sip(lower) is None
    )  # the same, written otherwise
    reoffer = restarted(AIORTC_ANSWER, "peerU", "peerpasswordpeerpassword")
    assert await media.reoffer_web_for_sip(reoffer) == reoffer
    assert media.handover() is None
    sent = await media.reanswer_from_web(CHROMIUM_ANSWER)
    session = sdp.parse(CHROMIUM).origin
    assert sent is not None and session is not None
    assert origin(sent) == f"o={session.next_version()}"
    assert sent.replace(origin(sent), "") == CHROMIUM_ANSWER.replace(origin(CHROMIUM_ANSWER), "")
    handover = media.handover()
    assert handover is not None and handover["web"] == CHROMIUM_ANSWER
    assert await media.reoffer_web_for_sip(reoffer) is None  # the new session, refreshed
    ice = sdp.parse(await media.update_from_sip(reoffer)).ice_for(0)
    chromium = sdp.parse(CHROMIUM_ANSWER).ice_for(0)
    assert ice is not None and chromium is not None and ice.ufrag == chromium.ufrag


async def test_a_held_calls_answer_to_the_sip_sides_restart_stays_held_and_a_refused_one_is_dropped() -> None:
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    await media.reoffer_to_sip(True)
    await media.answer_to_reoffer(AIORTC_ANSWER)  # the web user holds the call
    reoffer = restarted(AIORTC_ANSWER, "peerU", "peerpasswordpeerpassword")
    assert await media.reoffer_web_for_sip(reoffer) == reoffer
    sent = await media.reanswer_from_web(CHROMIUM_ANSWER)
    assert sent is not None and sdp.parse(sent).direction_for(0) is sdp.Direction.SENDONLY
    again = restarted(reoffer, "thirdU", "thirdpasswordthirdpassword")
    assert await media.reoffer_web_for_sip(again) == again
    await media.cancel_web_reoffer()  # the browser did not answer: 488, the session as it was
    assert await media.reanswer_from_web(CHROMIUM_ANSWER) is None and media.handover() is not None
    assert await media.reoffer_web_for_sip(reoffer) is None


async def test_a_new_connections_offer_keeps_the_sessions_origin_and_a_held_call_stays_held() -> None:
    """A reattach's offer comes from a new RTCPeerConnection (an o= of its own): relayed with the call's
    o= line and its version raised (RFC 3264 §8); on a call the web user held, with a=sendonly (the page
    offers sendrecv whatever its hold)."""
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    held = await media.reoffer_to_sip(True)
    assert origin(held) == origin(CHROMIUM).replace(" 2 IN", " 3 IN")
    await media.answer_to_reoffer(AIORTC_ANSWER)
    fresh = restarted(CHROMIUM, "newU", "newpasswordnewpassword").replace(
        "o=- 7736580442132231234 3", "o=- 99 1"
    )
    relayed = await media.reoffer_sip_for_web(fresh)
    assert origin(relayed) == origin(CHROMIUM).replace(" 2 IN", " 4 IN")
    assert sdp.parse(relayed).media[0].direction is sdp.Direction.SENDONLY
    assert sdp.parse(await media.update_from_sip(AIORTC_ANSWER)).media[0].direction is sdp.Direction.SENDONLY


async def test_the_browsers_ice_restart_goes_to_the_sip_side_and_its_answer_back_unchanged() -> None:
    """The browser's new offer (its network changed: new credentials) is our re-INVITE's offer as it is;
    its candidates from then on go with the new credentials; the SIP side's answer reaches it as it is,
    and a later re-offer of the SIP side's is answered with the new description in the role it took."""
    infos = Infos()
    media = PassthroughMedia("c1", infos)
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    offer = restarted(CHROMIUM, "newU", "newpasswordnewpassword")
    assert await media.reoffer_sip_for_web(offer) == offer
    await media.add_web_candidate(sdp.IceCandidateInit(sdp.Candidate.parse(HOST), "0", 0, "newU"))
    fragment = sdp.decode_sdpfrag(infos.sent[-1][1])
    assert fragment.ice is not None and (fragment.ice.ufrag, fragment.ice.pwd) == (
        "newU",
        "newpasswordnewpassword",
    )
    answer = restarted(
        AIORTC_ANSWER.replace("a=setup:active", "a=setup:passive"), "peerU", "peerpasswordpeerpassword"
    )
    assert await media.answer_web_reoffer(answer) == answer
    again = sdp.parse(await media.update_from_sip(answer))
    ice = again.ice_for(0)
    assert ice is not None and ice.ufrag == "newU"
    assert again.media[0].setup is sdp.Setup.ACTIVE  # the SIP side now passive: the browser active


async def test_candidates_trickled_while_the_new_offer_is_out_go_again_once_it_is_taken() -> None:
    """A take-back's re-INVITE that met a 491 goes again after RFC 3261 §14.1's wait, as it was; the far
    end rolled the first attempt back, and with it the browser's candidates of the new ufrag trickled
    meanwhile: they go again once the SIP side took the offer (and not after a refusal)."""
    infos = Infos()
    media = PassthroughMedia("c1", infos)
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    await media.add_web_candidate(sdp.IceCandidateInit(sdp.Candidate.parse(HOST), "0", 0))  # before
    await media.reoffer_sip_for_web(restarted(CHROMIUM, "newU", "newpasswordnewpassword"))
    await media.add_web_candidate(sdp.IceCandidateInit(sdp.Candidate.parse(HOST), "0", 0, "newU"))
    await media.add_web_candidate(sdp.IceCandidateInit(None, "0", 0, "newU"))  # end of candidates
    sent = [body for _, body, _ in infos.sent]
    assert len(sent) == 3
    await media.answer_web_reoffer(AIORTC_ANSWER)
    assert [body for _, body, _ in infos.sent] == [*sent, *sent[1:]]  # the two of the new offer, again
    await media.answer_web_reoffer(AIORTC_ANSWER)
    assert len(infos.sent) == 5  # once
    await media.reoffer_sip_for_web(restarted(CHROMIUM, "newV", "newpasswordnewpasswordV"))
    await media.add_web_candidate(sdp.IceCandidateInit(sdp.Candidate.parse(HOST), "0", 0, "newV"))
    media.cancel_sip_reoffer()
    await media.answer_web_reoffer(AIORTC_ANSWER)
    assert len(infos.sent) == 6  # refused: nothing again


async def test_a_refused_browser_offer_leaves_the_description_as_it_was() -> None:
    infos = Infos()
    media = PassthroughMedia("c1", infos)
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    await media.reoffer_sip_for_web(restarted(CHROMIUM, "newU", "newpasswordnewpassword"))
    media.cancel_sip_reoffer()  # 488 or 491 from the SIP side (RFC 3261 §14.1)
    old = sdp.parse(CHROMIUM).ice_for(0)
    assert old is not None
    assert await media.update_from_sip(AIORTC_ANSWER) == CHROMIUM.replace(
        "a=setup:actpass", "a=setup:passive"
    )
    await media.add_web_candidate(sdp.IceCandidateInit(sdp.Candidate.parse(HOST), "0", 0, old.ufrag))
    fragment = sdp.decode_sdpfrag(infos.sent[-1][1])
    assert fragment.ice is not None and fragment.ice.ufrag == old.ufrag
    with pytest.raises(sdp.SdpError):
        await media.reoffer_sip_for_web("not sdp")


async def test_a_call_to_the_web_user_passes_both_descriptions_and_trickles_with_the_answer_credentials() -> (
    None
):
    """Inbound: the SIP side's offer to the browser and the browser's answer to the SIP side, unchanged;
    the browser's candidates then carry its answer's ICE credentials; a SIP re-offer gets that answer."""
    infos = Infos()
    media = PassthroughMedia("c1", infos)
    assert await media.offer_to_web(AIORTC_OFFER) == AIORTC_OFFER
    assert await media.answer_from_web(CHROMIUM_ANSWER) == CHROMIUM_ANSWER
    ice = sdp.parse(CHROMIUM_ANSWER).ice_for(0)
    assert ice is not None
    await media.add_web_candidate(sdp.IceCandidateInit(sdp.Candidate.parse(HOST), "0", 0, ice.ufrag))
    ((_, body, _),) = infos.sent
    fragment = sdp.decode_sdpfrag(body)
    assert fragment.ice is not None and (fragment.ice.ufrag, fragment.ice.pwd) == (ice.ufrag, ice.pwd)
    assert await media.update_from_sip(AIORTC_OFFER) == CHROMIUM_ANSWER  # its role kept: active


async def test_a_survivor_carries_the_signaling_on_with_the_session_unchanged() -> None:
    """Issue 34: the handover holds the browser's description and what was settled; the survivor's
    re-INVITE offers the same session (the settled DTLS role, not actpass, so the o= version is raised;
    a call to the browser, whose answer said the role already, keeps it), held if it was, and later
    offers go on from that o= line."""
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)  # aiortc is active: the browser passive
    held = await media.reoffer_to_sip(True)
    assert media.handover() is None  # a re-INVITE out: not steady
    await media.answer_to_reoffer(AIORTC_ANSWER)
    data = media.handover()
    assert data is not None and data["kind"] == "passthrough" and data["held"] is True
    survivor = PassthroughMedia("c1", Infos())
    refresh = await survivor.resume_sip(json.loads(json.dumps(data)))  # as Redis gives it back
    parsed = sdp.parse(refresh)
    assert parsed.media[0].setup is sdp.Setup.PASSIVE and parsed.media[0].direction is sdp.Direction.SENDONLY
    # actpass became the browser's role: a changed description, its version raised (RFC 3264 §8)
    assert origin(refresh) == origin(held).replace(" 3 IN", " 4 IN")
    resumed = await survivor.reoffer_to_sip(False)
    assert origin(resumed) == origin(held).replace(" 3 IN", " 5 IN")


async def test_a_call_to_the_browser_is_taken_over_with_its_version_unchanged() -> None:
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_web(AIORTC_OFFER)
    await media.answer_from_web(CHROMIUM_ANSWER)
    data = media.handover()
    assert data is not None
    refresh = await PassthroughMedia("c1", Infos()).resume_sip(data)
    assert origin(refresh) == origin(CHROMIUM_ANSWER)  # the browser's answer, as the SIP side has it


@pytest.mark.parametrize(
    "change",
    [
        {"web": "not sdp"},
        {"browser_setup": "actpass"},
        {"origin": "garbage"},
        {"web_mids": None},
        {"held": None},
    ],
)
async def test_a_pass_through_handover_that_cannot_be_read_is_refused(change: dict[str, object]) -> None:
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    data = media.handover()
    assert data is not None
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(PassthroughError, match="handover"):
        await PassthroughMedia("c1", Infos()).resume_sip(data)


async def test_what_a_passthrough_call_cannot_do() -> None:
    media = PassthroughMedia("c1", Infos())
    with pytest.raises(PassthroughError):  # a late offer: nothing to pass to the browser
        await media.offer_to_web(None)
    with pytest.raises(sdp.SdpError):
        await media.answer_from_web("not sdp")
    with pytest.raises(DtmfError):  # the runtime sends it as INFO instead
        media.send_dtmf("5", "sip")
    await media.close()
    assert media.closed


async def test_the_sip_sides_hold_and_resume_go_to_the_browser_and_a_refresh_does_not() -> None:
    """Issue 68 item 4: a re-offer of the SIP side's that holds the call (a=sendonly or inactive, RFC 3264
    §8.4) or resumes it goes to the browser, whose answer (recvonly, then sendrecv) goes into the 200; a
    refresh of the same hold is answered at once, with the direction the offer allows; and the web
    user's own hold on top makes that answer inactive."""
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    hold = AIORTC_ANSWER.replace("a=sendrecv", "a=sendonly")
    assert await media.reoffer_web_for_sip(hold) == hold
    recvonly = CHROMIUM_ANSWER.replace("a=sendrecv", "a=recvonly")
    sent = await media.reanswer_from_web(recvonly)
    assert sent is not None and sdp.parse(sent).direction_for(0) is sdp.Direction.RECVONLY
    assert await media.reoffer_web_for_sip(hold) is None  # the same hold again: a refresh
    refreshed = sdp.parse(await media.update_from_sip(hold))
    assert refreshed.direction_for(0) is sdp.Direction.RECVONLY
    await media.reoffer_to_sip(True)
    await media.answer_to_reoffer(AIORTC_ANSWER.replace("a=sendrecv", "a=inactive"))
    both = sdp.parse(await media.update_from_sip(hold.replace("a=sendonly", "a=inactive")))
    assert both.direction_for(0) is sdp.Direction.INACTIVE
    data = media.handover()
    assert data is not None and (data["held"], data["sip_held"]) == (True, True)
    resume = AIORTC_ANSWER
    assert await media.reoffer_web_for_sip(resume) == resume  # the SIP side resumes
    sent = await media.reanswer_from_web(CHROMIUM_ANSWER)
    assert sent is not None and sdp.parse(sent).direction_for(0) is sdp.Direction.SENDONLY  # ours holds


async def test_a_hold_the_browser_is_not_asked_about_is_answered_recvonly() -> None:
    """An HTTP API client is never offered again: the SIP side's hold is answered at once with its
    description, recvonly (RFC 3264 §6.1: a sendonly offer is never answered sendrecv)."""
    media = PassthroughMedia("c1", Infos())
    await media.offer_to_sip(CHROMIUM)
    await media.answer_from_sip(AIORTC_ANSWER)
    answer = sdp.parse(await media.update_from_sip(AIORTC_ANSWER.replace("a=sendrecv", "a=sendonly")))
    assert answer.direction_for(0) is sdp.Direction.RECVONLY
    assert sdp.parse(await media.update_from_sip(AIORTC_ANSWER)).direction_for(0) is sdp.Direction.SENDRECV


async def test_a_pickup_takes_the_browsers_unanswered_offer_but_not_an_answered_one() -> None:
    """Issue 68 item 4: while the call rings the browser's offer is unanswered, and a pickup's bridge
    answers it (runtime/media_side.py); once early media answered it, the pickup is refused 488."""
    media = PassthroughMedia("c1", Infos())
    with pytest.raises(PassthroughError) as none:
        media.offer_for_pickup()
    assert none.value.sip_status == 488
    await media.offer_to_sip(CHROMIUM)
    assert media.offer_for_pickup() == CHROMIUM
    await media.answer_from_sip(AIORTC_ANSWER)  # a 183's answer: the browser's session is the far end's
    with pytest.raises(PassthroughError, match="early media") as early:
        media.offer_for_pickup()
    assert early.value.sip_status == 488
