"""peers.rtpengine: the bencode codec and the ng messages (pure), then a real rtpengine answering them."""

from __future__ import annotations

from pathlib import Path

import pytest

from peers.rtpengine import (
    BencodeError,
    NgClient,
    NgError,
    bdecode,
    bencode,
    delete,
    running_rtpengine,
    sip_answer_to_web,
    web_offer_to_sip,
)


def test_bencode_scalars_and_containers() -> None:
    assert bencode(42) == b"i42e"
    assert bencode(-7) == b"i-7e"
    assert bencode("spam") == b"4:spam"
    assert bencode(b"") == b"0:"
    assert bencode(["a", 1]) == b"l1:ai1ee"
    # BEP 3: dict keys sorted as raw strings, whatever order they were given in
    assert bencode({"sdp": "x", "call-id": "c", "ICE": "remove"}) == b"d3:ICE6:remove7:call-id1:c3:sdp1:xe"


def test_bencode_counts_bytes_not_characters() -> None:
    assert bencode("Jürgen") == b"7:J\xc3\xbcrgen"


@pytest.mark.parametrize("value", [True, 1.5, None])
def test_bencode_refuses_what_it_cannot_say(value: object) -> None:
    with pytest.raises(TypeError):
        bencode(value)  # type: ignore[arg-type]


def test_bdecode_round_trip() -> None:
    message = web_offer_to_sip("call", "tag", "v=0\r\n", transcode=True)
    decoded = bdecode(bencode(message))
    assert isinstance(decoded, dict)
    assert decoded["command"] == b"offer"
    assert decoded["rtcp-mux"] == [b"demux"]
    assert decoded["codec"] == {"mask": [b"opus"], "transcode": [b"PCMU"]}
    assert bdecode(b"d6:result4:pong4:numsli1ei-2eee") == {"result": b"pong", "nums": [1, -2]}


@pytest.mark.parametrize(
    "data", [b"", b"i12", b"ix2e", b"5:abc", b"l1:a", b"di1e1:ae", b"d1:ae", b"x", b"i1ei2e", b"3x:abc"]
)
def test_bdecode_rejects_malformed_input(data: bytes) -> None:
    with pytest.raises(BencodeError):
        bdecode(data)


def test_offer_and_answer_carry_the_flags_aiortc_needs() -> None:
    offer = web_offer_to_sip("c1", "f1", "sdp-offer")
    assert offer["transport-protocol"] == "RTP/AVP"
    assert offer["ICE"] == "remove"
    assert offer["DTLS-reverse"] == "passive"  # else rtpengine's early ClientHello makes aiortc abort
    assert offer["rtcp-mux"] == ["demux"]
    assert "codec" not in offer
    answer = sip_answer_to_web("c1", "f1", "t1", "sdp-answer")
    assert (answer["transport-protocol"], answer["ICE"], answer["DTLS"]) == (
        "UDP/TLS/RTP/SAVPF",
        "force",
        "passive",
    )
    assert answer["rtcp-mux"] == ["require"]
    assert answer["to-tag"] == "t1"
    assert delete("c1", "f1") == {"command": "delete", "call-id": "c1", "from-tag": "f1"}


PLAIN_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40100 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)


async def test_real_rtpengine_anchors_a_call_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    with running_rtpengine(tmp_path, ports=(46000, 46099), threads=1) as engine:
        async with NgClient(engine.control) as ng:
            reply = await ng.request(
                {"command": "offer", "call-id": "c1", "from-tag": "f1", "sdp": PLAIN_OFFER}
            )
            sdp = reply["sdp"]
            assert isinstance(sdp, bytes)
            port = int(sdp.split(b"m=audio ")[1].split(b" ")[0])
            assert 46000 <= port <= 46099  # rtpengine's own port, from the range we gave it
            assert b"c=IN IP4 127.0.0.1" in sdp
            await ng.request(delete("c1", "f1"))
            with pytest.raises(NgError, match="query"):  # gone: rtpengine's error-reason, raised
                await ng.request({"command": "query", "call-id": "c1"})
