"""Trickle ICE: sdpfrag bodies (RFC 8840) and the browser's JSON candidates."""

from __future__ import annotations

import json

import pytest

import sdp

# The sdpfrag of RFC 8840 §4.4 (INFO carrying candidates for two streams), with CRLF line endings.
RFC8840_BODY = (
    "a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n"
    "a=ice-ufrag:8hhY\r\n"
    "m=audio 9 RTP/AVP 0\r\n"
    "a=mid:1\r\n"
    "a=candidate:1 1 UDP 2130706432 2001:db8:a0b:12f0::1 5000 typ host\r\n"
    "a=candidate:1 2 UDP 2130706432 2001:db8:a0b:12f0::1 5001 typ host\r\n"
    "a=candidate:1 1 UDP 2130706431 192.0.2.1 5010 typ host\r\n"
    "a=candidate:1 2 UDP 2130706431 192.0.2.1 5011 typ host\r\n"
    "a=candidate:2 1 UDP 1694498815 192.0.2.3 5010 typ srflx raddr 192.0.2.1 rport 8998\r\n"
    "a=candidate:2 2 UDP 1694498815 192.0.2.3 5011 typ srflx raddr 192.0.2.1 rport 8998\r\n"
    "a=end-of-candidates\r\n"
    "m=audio 9 RTP/AVP 0\r\n"
    "a=mid:2\r\n"
    "a=candidate:1 1 UDP 2130706432 2001:db8:a0b:12f0::1 6000 typ host\r\n"
    "a=end-of-candidates\r\n"
)

CHROME_TCP = "candidate:3050231284 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0 network-id 1 network-cost 50"
CHROME_MDNS = (
    "candidate:1467250027 1 udp 2122260223 4f6c1c4e-8d43-4b61-a7f3-5b7d2c1e9a10.local 54321 typ host generation 0 "
    "ufrag PRwu network-id 1"
)


def test_rfc8840_example_decodes() -> None:
    fragment = sdp.decode_sdpfrag(RFC8840_BODY)
    assert fragment.ice is not None and (fragment.ice.ufrag, fragment.ice.pwd) == (
        "8hhY",
        "asd88fgpdd777uzjYhagZg",
    )
    assert [m.mid for m in fragment.media] == ["1", "2"]
    first = fragment.media[0]
    assert len(first.candidates) == 6 and first.end_of_candidates
    assert first.candidates[0].is_ipv6 and first.candidates[0].address == "2001:db8:a0b:12f0::1"
    srflx = first.candidates[4]
    assert (srflx.type, srflx.related_address, srflx.related_port) == ("srflx", "192.0.2.1", 8998)
    assert [mid for mid, _ in fragment.candidates()] == ["1"] * 6 + ["2"]


def test_media_level_credentials_are_read() -> None:
    """A fragment made from a browser's SDP carries a=ice-ufrag/a=ice-pwd in its m= section."""
    body = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:Nw9x\r\na=ice-pwd:" + "p" * 24 + "\r\n"
    fragment = sdp.decode_sdpfrag(body)
    assert fragment.ice is not None and (fragment.ice.ufrag, fragment.ice.pwd) == ("Nw9x", "p" * 24)
    assert sdp.decode_sdpfrag(
        "a=ice-ufrag:Sess\r\na=ice-pwd:" + "s" * 22 + "\r\n" + body
    ).ice == sdp.IceParameters("Sess", "s" * 22)  # the session level first
    assert sdp.decode_sdpfrag("m=audio 9 RTP/AVP 0\r\na=mid:0\r\n").ice is None


def test_rfc8840_example_round_trips() -> None:
    fragment = sdp.decode_sdpfrag(RFC8840_BODY)
    encoded = sdp.encode_sdpfrag(fragment)
    assert sdp.decode_sdpfrag(encoded) == fragment
    # our writer puts ice-ufrag before ice-pwd; everything else is the RFC's text
    assert encoded.replace(
        "a=ice-ufrag:8hhY\r\na=ice-pwd:asd88fgpdd777uzjYhagZg\r\n", ""
    ) == RFC8840_BODY.replace("a=ice-pwd:asd88fgpdd777uzjYhagZg\r\na=ice-ufrag:8hhY\r\n", "")


def test_encode_with_options_and_session_end_of_candidates() -> None:
    ice = sdp.IceParameters("gWay", "gatewaypassword0123456789", ("trickle",))
    tcp = sdp.Candidate.parse(CHROME_TCP)
    fragment = sdp.TrickleFragment(ice, (sdp.TrickleMedia("0", (tcp,)),), end_of_candidates=True)
    body = sdp.encode_sdpfrag(fragment)
    assert body == (
        "a=ice-options:trickle\r\n"
        "a=ice-ufrag:gWay\r\n"
        "a=ice-pwd:gatewaypassword0123456789\r\n"
        "a=end-of-candidates\r\n"
        "m=audio 9 RTP/AVP 0\r\n"
        "a=mid:0\r\n"
        f"a={CHROME_TCP}\r\n"
    )
    assert sdp.decode_sdpfrag(body) == fragment
    assert sdp.decode_sdpfrag(body.encode()) == fragment
    assert sdp.TRICKLE_MEDIA_TYPE == "application/trickle-ice-sdpfrag"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("m=audio 9 RTP/AVP 0\r\na=candidate:1 1 UDP 1 192.0.2.1 5000 typ host\r\n", "without a=mid"),
        ("a=ice-ufrag:8hhY\r\n", "both"),
        ("c=IN IP4 192.0.2.1\r\n", "c=IN IP4 192.0.2.1"),
        ("m=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 UDP x 192.0.2.1 5000 typ host\r\n", "1 1 UDP x"),
        ("m=audio\r\n", "m=audio"),
        (b"\xff", "UTF-8"),
    ],
)
def test_bad_fragments(body: str | bytes, message: str) -> None:
    with pytest.raises(sdp.SdpParseError, match=message) as caught:
        sdp.decode_sdpfrag(body)
    assert caught.value.sip_status == 400


def test_browser_json_round_trip() -> None:
    for text in (CHROME_TCP, CHROME_MDNS):
        data = {"candidate": text, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "PRwu"}
        init = sdp.candidate_from_json(json.loads(json.dumps(data)))
        assert init.candidate is not None and init.candidate.to_sdp() == text
        assert init.to_json() == data
    mdns = sdp.candidate_from_json({"candidate": CHROME_MDNS, "sdpMid": "0"}).candidate
    assert mdns is not None and mdns.is_mdns and mdns.extensions[1] == ("ufrag", "PRwu")
    tcp = sdp.candidate_from_json({"candidate": CHROME_TCP, "sdpMLineIndex": 0}).candidate
    assert tcp is not None and (tcp.protocol, tcp.tcptype) == ("tcp", "active")


def test_end_of_candidates_json() -> None:
    init = sdp.candidate_from_json({"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0})
    assert init.candidate is None
    assert sdp.candidate_to_json(None, mid="0", index=0) == {
        "candidate": "",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }


def test_candidate_with_a_prefix_is_accepted() -> None:
    assert sdp.Candidate.parse("a=" + CHROME_TCP) == sdp.Candidate.parse(CHROME_TCP)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"candidate": 5, "sdpMid": "0"},
        {"candidate": CHROME_TCP},
        {"candidate": CHROME_TCP, "sdpMid": 0},
        {"candidate": CHROME_TCP, "sdpMLineIndex": True},
        {"candidate": CHROME_TCP, "sdpMLineIndex": -1},
        {"candidate": "candidate:1 1 udp 1 192.0.2.1 99999 typ host", "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp 1 192.0.2.1 5000 typ host tcptype sideways", "sdpMid": "0"},
        {"candidate": "foo", "sdpMid": "0"},
    ],
)
def test_bad_browser_json(data: object) -> None:
    with pytest.raises(sdp.SdpParseError):
        sdp.candidate_from_json(data)


def test_fragment_to_and_from_browser_json() -> None:
    fragment = sdp.decode_sdpfrag(RFC8840_BODY)
    items = sdp.fragment_to_json(fragment, mids=["1", "2"])
    assert items[0] == {
        "candidate": "candidate:1 1 UDP 2130706432 2001:db8:a0b:12f0::1 5000 typ host",
        "sdpMid": "1",
        "sdpMLineIndex": 0,
        "usernameFragment": "8hhY",
    }
    assert items[6] == {"candidate": "", "sdpMid": "1", "sdpMLineIndex": 0, "usernameFragment": "8hhY"}
    assert sdp.fragment_from_json(items, ice=fragment.ice) == fragment
    by_index = [{k: v for k, v in item.items() if k != "sdpMid"} for item in items]
    assert sdp.fragment_from_json(by_index, ice=fragment.ice, mids=["1", "2"]) == fragment
    with pytest.raises(sdp.SdpParseError):
        sdp.fragment_from_json(by_index, ice=fragment.ice)
