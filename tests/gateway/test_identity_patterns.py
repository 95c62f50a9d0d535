"""gateway.identity value modules: the dial pattern language, password hashes, SIP addresses."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.identity import (
    DialPattern,
    HashAlgorithm,
    IdentityError,
    PasswordHash,
    PasswordHashError,
    PatternError,
    SipAddress,
    hash_secret,
    verify_secret,
)
from gateway.identity.patterns import most_specific
from sipcore.errors import SIPError
from sipcore.syntax.uri import SipURI, parse_uri

# --- dial patterns -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("2xxx", ["2000", "2999"], ["200", "20000", "3000", "2a00", ""]),
        ("2XXX", ["2123"], ["1123"]),
        ("NXX", ["200", "999"], ["100", "099"]),
        ("nxx", ["200"], ["100"]),
        ("Zx", ["10", "99"], ["01", "00"]),
        ("[1-5]0", ["10", "50"], ["60", "00"]),
        ("[135-7]", ["1", "3", "5", "6", "7"], ["2", "4", "8", "0"]),
        ("0.", ["01", "0123456", "0abc"], ["0", "1"]),
        ("0!", ["0", "01", "0123"], ["1", ""]),
        (".", ["1", "anything", "+49"], [""]),
        ("+49x.", ["+4930", "+49301234"], ["+49", "4930"]),
        ("*97", ["*97"], ["97", "*98"]),
        ("#1", ["#1"], ["1"]),
        ("1001", ["1001"], ["10010", "1002"]),
    ],
)
def test_pattern_matches(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    compiled = DialPattern(pattern)
    for number in matching:
        assert compiled.matches(number), number
    for number in not_matching:
        assert not compiled.matches(number), number


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "bad dial pattern '': empty pattern"),
        ("2x[x", "bad dial pattern '2x[x': unclosed '['"),
        ("[]", "bad dial pattern '[]': empty class '[]'"),
        ("[5-1]", "bad dial pattern '[5-1]': bad range '5-1' in class '[5-1]'"),
        ("[1-]", "bad dial pattern '[1-]': unfinished range in class '[1-]'"),
        ("[a]", "bad dial pattern '[a]': unexpected 'a' in class '[a]' (only digits and ranges like 1-5)"),
        ("1.2", "bad dial pattern '1.2': '.' is only allowed at the end"),
        ("1!2", "bad dial pattern '1!2': '!' is only allowed at the end"),
        ("..", "bad dial pattern '..': '.' is only allowed at the end"),
        ("abc", "bad dial pattern 'abc': unexpected character 'a' at position 0"),
        ("12 3", "bad dial pattern '12 3': unexpected character ' ' at position 2"),
        ("1]", "bad dial pattern '1]': unexpected character ']' at position 1"),
    ],
)
def test_malformed_patterns_are_rejected(pattern: str, message: str) -> None:
    with pytest.raises(PatternError) as info:
        DialPattern(pattern)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError) and isinstance(info.value, IdentityError)


def test_from_config_accepts_numbers_rejects_other_types() -> None:
    assert DialPattern.from_config(1001) == DialPattern("1001")
    for bad in (None, True, 1.5, ["1"]):
        with pytest.raises(PatternError):
            DialPattern.from_config(bad)


def test_specificity_orders_patterns() -> None:
    exact, narrow, wide, prefix, anything = (DialPattern(p) for p in ("2001", "20xx", "2xxx", "2.", "."))
    assert (
        exact.specificity > narrow.specificity > wide.specificity > prefix.specificity > anything.specificity
    )
    assert DialPattern("2[0-1]xx").specificity > wide.specificity
    assert most_specific([wide, anything, narrow]) == [narrow]
    assert most_specific([DialPattern("2xxx"), DialPattern("3xxx")]) == [
        DialPattern("2xxx"),
        DialPattern("3xxx"),
    ]
    assert most_specific([]) == []


# One element of the pattern language, with the characters it admits (None: wildcard tail).
_ELEMENTS = {
    **{c: c for c in "0123456789+*#"},
    "x": "0123456789",
    "X": "0123456789",
    "N": "23456789",
    "n": "23456789",
    "Z": "123456789",
    "[1-5]": "12345",
    "[02-4]": "0234",
    "[9]": "9",
}
_ANY = "0123456789+*#abc"


@st.composite
def pattern_and_number(draw: st.DrawFn) -> tuple[str, str, list[str], str]:
    keys = draw(st.lists(st.sampled_from(sorted(_ELEMENTS)), min_size=0, max_size=8))
    tail = draw(st.sampled_from(["", ".", "!"]))
    if not keys and not tail:
        keys = ["x"]
    number = "".join(draw(st.sampled_from(_ELEMENTS[k])) for k in keys)
    rest = draw(st.text(alphabet=_ANY, min_size=1 if tail == "." else 0, max_size=5)) if tail else ""
    return "".join(keys) + tail, number + rest, keys, tail


@given(pattern_and_number())
def test_generated_numbers_match_their_pattern(case: tuple[str, str, list[str], str]) -> None:
    pattern, number, _keys, tail = case
    compiled = DialPattern(pattern)
    assert compiled.matches(number)
    if not tail:
        # Without a wildcard tail the length is fixed: one character more or less never matches.
        assert not compiled.matches(number + "0")
        assert not compiled.matches(number[:-1])


@given(pattern_and_number(), st.integers(min_value=0, max_value=7), st.sampled_from(_ANY))
def test_a_character_outside_its_class_breaks_the_match(
    case: tuple[str, str, list[str], str], position: int, replacement: str
) -> None:
    pattern, number, keys, _tail = case
    if not keys:
        return
    index = position % len(keys)
    if replacement in _ELEMENTS[keys[index]]:
        return
    mutated = number[:index] + replacement + number[index + 1 :]
    assert not DialPattern(pattern).matches(mutated)


@given(st.text(max_size=12))
def test_any_text_compiles_or_raises_pattern_error(text: str) -> None:
    try:
        DialPattern(text)
    except PatternError as exc:
        assert repr(text) in str(exc)
        return
    # What compiles only ever uses the documented characters.
    assert re.fullmatch(r"[0-9+*#xXnNzZ\[\]\-]*[.!]?", text)


@given(st.text(alphabet="0123456789+*#", min_size=1, max_size=10))
def test_literal_pattern_matches_only_itself(number: str) -> None:
    assert DialPattern(number).matches(number)
    assert not DialPattern(number).matches(number + "1")


# --- password hashes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "params"), [(HashAlgorithm.SCRYPT, (2**10, 8, 1)), (HashAlgorithm.PBKDF2_SHA256, (1000,))]
)
def test_hash_and_verify(algorithm: HashAlgorithm, params: tuple[int, ...]) -> None:
    hashed = hash_secret("s3cret pässword", algorithm, params)
    text = str(hashed)
    assert text.startswith(algorithm.value + "$")
    assert verify_secret("s3cret pässword", text) and verify_secret("s3cret pässword", hashed)
    assert not verify_secret("s3cret password", text)
    assert not verify_secret("", text)
    assert PasswordHash.parse(text) == hashed
    assert repr(hashed) == f"PasswordHash({algorithm.value})"
    # A fresh salt each time: the same secret never hashes to the same string.
    assert str(hash_secret("s3cret pässword", algorithm, params)) != text


def test_default_hash_is_scrypt() -> None:
    hashed = hash_secret("pw")
    assert hashed.algorithm is HashAlgorithm.SCRYPT and hashed.params == (2**14, 8, 1)


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "md5$abc",
        "scrypt$16384$8$1$c2FsdHNhbHRz",
        "scrypt$16384$8$1$!!!$c2FsdHNhbHRzYWx0c2FsdA==",
        "scrypt$1000$8$1$c2FsdHNhbHRz$c2FsdHNhbHRzYWx0c2FsdA==",  # n not a power of two
        "scrypt$1048576$64$1$c2FsdHNhbHRz$c2FsdHNhbHRzYWx0c2FsdA==",  # far too much memory
        "pbkdf2_sha256$10$c2FsdHNhbHRz$c2FsdHNhbHRzYWx0c2FsdA==",  # too few iterations
        "pbkdf2_sha256$x$c2FsdHNhbHRz$c2FsdHNhbHRzYWx0c2FsdA==",
        "pbkdf2_sha256$1000$c2FsdA==$c2FsdHNhbHRzYWx0c2FsdA==",  # salt too short
    ],
)
def test_malformed_hashes(text: str) -> None:
    with pytest.raises(PasswordHashError):
        PasswordHash.parse(text)


def test_refuses_to_hash_empty_secret() -> None:
    with pytest.raises(PasswordHashError):
        hash_secret("")


# --- SIP addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:1001@PBX.Example.org", SipAddress("sip", "1001", "pbx.example.org")),
        ("sips:alice@example.org:5061;transport=tcp", SipAddress("sips", "alice", "example.org", 5061)),
        ('"Alice" <sip:alice:pw@example.org>;tag=1', SipAddress("sip", "alice", "example.org")),
        ("<sip:2001@[2001:db8::1]:5070>", SipAddress("sip", "2001", "[2001:db8::1]", 5070)),
        ("sip:example.org", SipAddress("sip", None, "example.org")),
        ("sip:%61lice@Example.ORG", SipAddress("sip", "alice", "example.org")),  # RFC 3261 §19.1.4
    ],
)
def test_sip_address_parse(text: str, expected: SipAddress) -> None:
    assert SipAddress.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1001",
        "tel:+1555",
        "sip:@x",
        "sip:1@",
        "<sip:1@x",
        "sip:1@x:port",
        "sip:1@[::1",
        "sip:1@x:99999",
        "sip:al ice@host",  # a space is no URI character (RFC 3261 §25.1)
        "SIP:1@x?subject=hi",  # URI headers: no address place allows them (§19.1.1)
        "sip:1@ho st",
    ],
)
def test_sip_address_rejects(text: str) -> None:
    with pytest.raises(IdentityError):
        SipAddress.parse(text)


def test_sip_address_forms() -> None:
    address = SipAddress.parse("sip:1001@pbx.example.org:5070")
    assert str(address) == "sip:1001@pbx.example.org:5070"
    assert address.aor == "sip:1001@pbx.example.org"
    assert SipAddress("sip", None, "x").aor == "sip:x"


# The identity map reads URIs with the SIP core's parser: on every input both agree (accept and
# reject alike, and the same user, host and port), so that an address matches the INVITE it came from.
AGREEMENT_INPUTS = [
    "sip:%61lice@host",
    "sip:al ice@host",
    "tel:+15551234",
    "sip:1001@host?Subject=x",
    "sip:Alice@HOST.example.org:5070",
    "sips:1001@[2001:db8::1]:5061;transport=tcp",
    "sip:1001:secret@host",
    "sip:%2B4930@host;user=phone",
    "sip:1%3b2@host",
    "sip:host.example.org",
    "sip:-bad@-host",
    "sip:1@host:0",
]


@pytest.mark.parametrize("text", AGREEMENT_INPUTS)
def test_sip_address_agrees_with_the_sip_core(text: str) -> None:
    try:
        uri = parse_uri(text)
    except SIPError:
        uri = None
    if not isinstance(uri, SipURI) or uri.headers or uri.port == 0:
        with pytest.raises(IdentityError):
            SipAddress.parse(text)
        return
    address = SipAddress.parse(text)
    assert (address.user, address.host, address.port) == (uri.user, uri.host.lower(), uri.port)
    assert SipAddress.from_uri(uri) == address
