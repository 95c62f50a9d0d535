"""Property tests: no exception but the package's own on any input; write/parse round trips."""

from __future__ import annotations

import contextlib
import pathlib

from hypothesis import given
from hypothesis import strategies as st

from sipcore import (
    CSeq,
    Framing,
    Headers,
    NameAddr,
    Request,
    Response,
    SIPError,
    SipURI,
    Via,
    error_response,
    parse_message,
    parse_uri,
)
from sipcore.auth.digest import DigestClient, parse_auth_header
from sipcore.syntax.framing import KeepAlive, StreamFramer
from sipcore.syntax.parser import MULTI_VALUE_HEADERS

TORTURE = pathlib.Path(__file__).parent / "torture"
SAMPLES = [p.read_bytes() for p in sorted(TORTURE.glob("*.dat"))]
SIP_ALPHABET = b'INVITE SIP/2.0 sip:@;=<>",\\:%\r\n\t 0123456789abcdefVia: From To CSeq Call-ID lz9hG4bK'

# examples: tests/conftest.py's profile (150, SIP_HYPOTHESIS_EXAMPLES; a fifth in make test-fast)


def _only_own_errors(data: bytes, framing: Framing = Framing.DATAGRAM) -> None:
    try:
        message = parse_message(data, framing=framing)
    except SIPError as exc:
        error_response(exc)  # building the answer must not fail either
        str(exc.reason_phrase)
        return
    # Whatever parses can be written and re-read.
    parse_message(message.serialize(), supported=None)
    message.vias, message.cseq, message.from_, message.to, message.contacts  # noqa: B018


@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    _only_own_errors(data)


@given(st.lists(st.sampled_from(list(SIP_ALPHABET)), max_size=400).map(bytes))
def test_sip_looking_bytes(data: bytes) -> None:
    _only_own_errors(data)
    _only_own_errors(data, Framing.STREAM)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "replace" and data:
            data[pos] = draw(st.sampled_from(list(SIP_ALPHABET) + list(range(256))))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif action == "truncate":
            del data[pos:]
        else:
            end = pos + draw(st.integers(1, 60))
            data[end:end] = data[pos:end]
    return bytes(data)


@given(mutated())
def test_mutated_valid_messages(data: bytes) -> None:
    _only_own_errors(data)


@given(st.text(max_size=200))
def test_random_uris(text: str) -> None:
    try:
        uri = parse_uri(text)
    except SIPError:
        return
    assert parse_uri(str(uri)) == uri


@given(st.text(max_size=300))
def test_random_auth_headers(text: str) -> None:
    with contextlib.suppress(SIPError):
        parse_auth_header(text)
    response = Response(
        401, "Unauthorized", Headers((("WWW-Authenticate", text.replace("\r", "").replace("\n", "")),))
    )
    request = Request("REGISTER", SipURI("example.com"))
    with contextlib.suppress(SIPError):
        DigestClient("alice", "secret").authorize(request, response)


@given(st.lists(st.binary(max_size=300), max_size=6))
def test_framer_random_chunks(chunks: list[bytes]) -> None:
    framer = StreamFramer()
    try:
        for chunk in chunks:
            framer.feed(chunk)
    except SIPError:
        pass


# ---- round trips -------------------------------------------------------------------------

TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~", min_size=1, max_size=12
)
HOST = st.builds(
    lambda labels: ".".join(labels),
    st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8), min_size=1, max_size=3),
)
SAFE_TEXT = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\r\n"), max_size=30
)
PARAMS = st.lists(st.tuples(TOKEN, st.none() | TOKEN), max_size=3).map(tuple)
URI_TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()[]/:&+$", min_size=1, max_size=12
)
URI_PARAMS = st.lists(st.tuples(URI_TOKEN, st.none() | URI_TOKEN), max_size=3).map(tuple)
URIS = st.builds(
    SipURI,
    host=HOST,
    user=st.none() | st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=15),
    port=st.none() | st.integers(0, 65535),
    params=URI_PARAMS,
    scheme=st.sampled_from(["sip", "sips"]),
)
# RFC 3261 §25.1: tag-param = "tag" EQUAL token (the parser refuses a valueless tag: 400)
NAME_ADDR_PARAMS = PARAMS.filter(lambda params: all(n.lower() != "tag" or v for n, v in params))
NAME_ADDRS = st.builds(NameAddr, uri=URIS, display_name=st.none() | SAFE_TEXT, params=NAME_ADDR_PARAMS)
VIAS = st.builds(
    Via,
    transport=st.sampled_from(["UDP", "TCP", "TLS", "WS"]),
    host=HOST,
    port=st.none() | st.integers(0, 65535),
    params=PARAMS,
)
UNKNOWN_NAMES = TOKEN.filter(lambda n: n.lower() not in MULTI_VALUE_HEADERS).map(lambda n: "X-" + n)
UNKNOWN_VALUES = SAFE_TEXT.map(lambda v: v.strip(" \t"))


@st.composite
def headers(draw: st.DrawFn, method: str) -> Headers:
    items: list[tuple[str, str]] = [("Via", str(v)) for v in draw(st.lists(VIAS, min_size=1, max_size=3))]
    items += [
        ("From", str(draw(NAME_ADDRS))),
        ("To", str(draw(NAME_ADDRS))),
        ("Call-ID", draw(TOKEN)),
        ("CSeq", str(CSeq(draw(st.integers(0, 2**31)), method))),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
    ]
    items += [("Contact", str(c)) for c in draw(st.lists(NAME_ADDRS, max_size=2))]
    items += draw(st.lists(st.tuples(UNKNOWN_NAMES, UNKNOWN_VALUES), max_size=4))
    order = draw(st.permutations(items))
    return Headers(tuple(order))


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(st.sampled_from(["INVITE", "ACK", "BYE", "OPTIONS", "INFO"]) | TOKEN)
    return Request(method, draw(URIS), draw(headers(method)), draw(st.binary(max_size=200)))


@st.composite
def responses(draw: st.DrawFn) -> Response:
    return Response(
        draw(st.integers(100, 699)),
        draw(SAFE_TEXT),
        draw(headers(draw(TOKEN))),
        draw(st.binary(max_size=200)),
    )


@given(requests())
def test_request_round_trip(request: Request) -> None:
    for framing in Framing:
        assert parse_message(request.serialize(), framing=framing, supported=None) == request


@given(responses())
def test_response_round_trip(response: Response) -> None:
    assert parse_message(response.serialize()) == response


@given(st.lists(requests() | responses(), min_size=1, max_size=4), st.data())
def test_framer_any_chunking(messages: list[Request | Response], data: st.DataObject) -> None:
    stream = b"\r\n\r\n".join(m.serialize() for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = StreamFramer()
    out: list[bytes | KeepAlive] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=False):
        out += framer.feed(stream[start:end])
    framed = [item for item in out if isinstance(item, bytes)]
    assert [parse_message(f, framing=Framing.STREAM, supported=None) for f in framed] == messages
    assert framer.buffered == 0
