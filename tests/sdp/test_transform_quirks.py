"""The quirks of sdp-transform 1.1.0 that made this package keep raw lines, each shown and then avoided.

Each test first shows what sdp-transform's whole-document parse/write does (so a library upgrade that
fixes or changes it is noticed), then that ``sdp.parse``/``sdp.write`` do not suffer from it.
"""

from __future__ import annotations

import math
import re

import pytest
import sdp_transform

import sdp
from tests.sdp.samples import load, text


def test_write_reorders_attributes() -> None:
    original = text("chromium-offer-audio")
    rewritten = sdp_transform.write(sdp_transform.parse(original))
    a_lines = [line for line in original.splitlines() if line.startswith("a=")]
    assert [line for line in rewritten.splitlines() if line.startswith("a=")] != a_lines
    assert sdp.write(sdp.parse(original)) == original


def test_unknown_attributes_go_to_invalid_and_move_to_the_end() -> None:
    parsed = sdp_transform.parse(text("chromium-offer-audio"))
    assert parsed["media"][0]["invalid"] == [{"value": "rtcp-xr:rcvr-rtt=all"}]
    rewritten = sdp_transform.write(parsed).splitlines()
    assert rewritten[-1] == "a=rtcp-xr:rcvr-rtt=all"  # written after a=ssrc, not before a=rtpmap
    ours = load("chromium-offer-audio").media[0]
    names = [a.name for a in ours.attributes]
    assert names.index("rtcp-xr") < names.index("rtpmap")


def test_msid_semantic_without_token_is_written_with_two_spaces() -> None:
    parsed = sdp_transform.parse(text("chromium-offer-datachannel"))
    assert parsed["msidSemantic"] == {"semantic": "", "token": "WMS"}
    assert "a=msid-semantic:  WMS\r\n" in sdp_transform.write(parsed)
    assert "a=msid-semantic: WMS\r\n" in sdp.write(load("chromium-offer-datachannel"))


def test_msid_semantic_gains_a_space() -> None:
    assert "a=msid-semantic: WMS *" in sdp_transform.write(sdp_transform.parse(text("aiortc-offer-audio")))
    assert "a=msid-semantic:WMS *" in sdp.write(load("aiortc-offer-audio"))


def test_tcptype_is_lost_because_the_rule_says_tcpfield() -> None:
    candidate = sdp_transform.parse(text("chromium-offer-audio"))["media"][0]["candidates"][2]
    assert candidate["protocol"] == "tcp"
    assert "tcptype" not in candidate and "generation" not in candidate and "network-id" not in candidate
    ours = load("chromium-offer-audio").media[0].candidates[2]
    assert ours.tcptype == "active"
    assert (
        ours.to_sdp()
        == "candidate:3050231284 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0 network-id 1 network-cost 50"
    )


def test_only_the_last_fingerprint_is_kept() -> None:
    parsed = sdp_transform.parse(text("aiortc-offer-audio"))
    assert parsed["media"][0]["fingerprint"]["type"] == "sha-512"
    assert len(load("aiortc-offer-audio").media[0].fingerprints) == 3


def test_numbers_are_converted_and_text_is_lost() -> None:
    parsed = sdp_transform.parse("v=0\r\na=ice-ufrag:1e5\r\na=mid:nan\r\n")
    assert parsed["iceUfrag"] == 100000.0 and math.isnan(parsed["mid"])
    sipp = sdp_transform.parse(text("sipp-offer"))
    assert sipp["media"][0]["payloads"] == 0  # an int, while "0 8" stays a string
    chromium = sdp_transform.parse(text("chromium-offer-audio"))
    assert chromium["media"][0]["mid"] == 0 and chromium["groups"][0]["mids"] == 0
    ours = load("chromium-offer-audio")
    assert ours.media[0].mid == "0" and ours.bundle_mids() == ("0",)


def test_upper_case_udp_transport_is_kept_as_written() -> None:
    candidate = sdp_transform.parse(text("baresip-offer-dtls-ice"))["media"][0]["candidates"][0]
    assert candidate["protocol"] == "UDP"
    ours = load("baresip-offer-dtls-ice").media[0].candidates[0]
    assert ours.transport == "UDP" and ours.protocol == "udp"


def test_session_and_media_level_are_separate() -> None:
    parsed = sdp_transform.parse(text("baresip-offer-dtls-ice"))
    assert "iceUfrag" in parsed and "iceUfrag" not in parsed["media"][0]
    ours = load("baresip-offer-dtls-ice")
    assert ours.ice is not None and ours.media[0].ice is None and ours.ice_for(0) == ours.ice


def test_fmtp_and_rtcp_fb_parsing() -> None:
    media = sdp_transform.parse(text("chromium-offer-audio"))["media"][0]
    assert sdp_transform.parseParams(media["fmtp"][0]["config"]) == {"minptime": 10, "useinbandfec": 1}
    linphone = sdp_transform.parse(text("linphone-offer"))["media"][0]
    assert linphone["rtcpFbTrrInt"] == [{"payload": "*", "value": 5000}]  # a separate list from rtcpFb
    assert linphone["rtcpFb"] == [{"payload": "*", "type": "ccm", "subtype": "tmmbr"}]
    opus = load("chromium-offer-audio").media[0].codecs[0]
    assert opus.parameters == {"minptime": "10", "useinbandfec": "1"}  # text, as written


def test_rtcp_with_address() -> None:
    media = sdp_transform.parse(text("chromium-offer-audio"))["media"][0]
    assert media["rtcp"] == {"port": 9, "netType": "IN", "ipVer": 4, "address": "0.0.0.0"}
    assert load("chromium-offer-audio").media[0].rtcp == sdp.Rtcp(9, "0.0.0.0")
    assert sdp.Rtcp(9, "0.0.0.0").to_sdp() == "9 IN IP4 0.0.0.0"
    assert sdp.Rtcp(40001).to_sdp() == "40001"


def test_unknown_bandwidth_types_are_dropped() -> None:
    parsed = sdp_transform.parse("v=0\r\nb=X-YZ:12\r\nb=AS:84\r\n")
    assert parsed["bandwidth"] == [{"type": "AS", "limit": 84}]
    ours = sdp.parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nb=X-YZ:12\r\nb=AS:84\r\nt=0 0\r\n")
    assert ours.bandwidths == (sdp.Bandwidth("X-YZ", 12), sdp.Bandwidth("AS", 84))


def test_port_count_in_m_line_is_not_understood() -> None:
    parsed = sdp_transform.parse("v=0\r\nm=audio 49170/2 RTP/AVP 0\r\n")
    assert "type" not in parsed["media"][0]
    with pytest.raises(TypeError):
        sdp_transform.write(parsed)
    ours = sdp.parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 49170/2 RTP/AVP 0\r\n")
    assert (ours.media[0].port, ours.media[0].port_count) == (49170, 2)
    assert "m=audio 49170/2 RTP/AVP 0\r\n" in sdp.write(ours)


def test_ice_options_keeps_only_the_first_token() -> None:
    parsed = sdp_transform.parse("v=0\r\na=ice-options:trickle renomination\r\n")
    assert parsed["iceOptions"] == "trickle"
    ours = sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:abcd\r\n"
        "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle renomination\r\n"
    )
    assert ours.ice is not None and ours.ice.options == ("trickle", "renomination")


def test_garbage_is_accepted_silently_and_a_description_invented() -> None:
    assert sdp_transform.parse("garbage") == {"media": []}
    assert sdp_transform.write(sdp_transform.parse("garbage")) == "v=0\r\ns= \r\n"
    with pytest.raises(sdp.SdpParseError):
        sdp.parse("garbage")


def test_invalid_origin_is_dropped_silently() -> None:
    parsed = sdp_transform.parse("v=0\r\no=- x 1 IN IP4 192.0.2.1\r\n")
    assert "origin" not in parsed
    with pytest.raises(sdp.SdpParseError, match=re.escape("o=- x 1 IN IP4 192.0.2.1")):
        sdp.parse("v=0\r\no=- x 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n")


def test_splitlines_splits_on_vertical_tab() -> None:
    parsed = sdp_transform.parse("v=0\x0bm=audio 1 RTP/AVP 0")
    assert parsed["media"][0]["type"] == "audio"
    with pytest.raises(sdp.SdpParseError):
        sdp.parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\x0bm=audio 1 RTP/AVP 0\r\n")


def test_trailing_text_after_a_known_rule_is_ignored() -> None:
    parsed = sdp_transform.parse("v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/1/extra junk\r\n")
    assert parsed["media"][0]["rtp"][0]["codec"] == "PCMU"
    # ours does not take the junk as a channel count: the line is unusable, static PT 0 stands (RFC 3551)
    parsed_ours = sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/1/extra junk\r\n"
    )
    assert parsed_ours.media[0].codecs == (sdp.Codec(0, "PCMU", 8000),)
