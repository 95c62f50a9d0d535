"""An offer's shape: its text with the values every call changes replaced by fixed ones.

The offer check (offer_check.py) hands each browser offer to a throwaway aiortc RTCPeerConnection, which
costs about a millisecond per call set-up. Two offers from the same client differ only in values drawn per
call (the o= session id and version, ICE credentials and candidates' addresses, ports and priorities, the
DTLS fingerprint, SSRCs, msid and cname tokens, the m= port and c= address), and aiortc treats any
well-formed value of these alike. ``shape`` replaces exactly those values, and only where the line matches
a strict pattern of a well-formed line (RFC 8839 §5.1 candidates with IP addresses, RFC 8122 fingerprints,
RFC 5576 ssrc lines, RFC 8830 msid): a line that does not match is kept as it is, so an odd value makes
a new shape and gets the full check. Equal shapes therefore get the same verdict from aiortc, and a
verdict cached per shape is safe to reuse.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from typing import Final

__all__ = ["shape"]

_ICE_CHARS: Final = r"[A-Za-z0-9+/]"  # ice-char, RFC 8839 §5.4
_IPV4: Final = r"(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}"
_PORT: Final = r"(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3})"  # 1-65535
_TOKEN: Final = r"[A-Za-z0-9{}\-_.+/=]{1,64}"

# (pattern, replacement template): the first pattern that matches the whole line rewrites it (the
# templates are compiled once: Match.expand would parse its template on every line)
# Each pattern is tried only on a line starting with its literal prefix (a str.startswith, not a regex
# call: most lines of an offer, rtpmap, fmtp, rtcp-fb, extmap, match none).
_RULES: Final[tuple[tuple[str, re.Pattern[str], Callable[[str], str]], ...]] = tuple(
    (
        prefix,
        re.compile(rf"\A(?:{pattern})\Z"),
        functools.partial(re.compile(rf"\A(?:{pattern})\Z").sub, replacement),
    )
    for prefix, pattern, replacement in (
        ("o=", r"o=(\S+) \d{1,19} \d{1,19} IN IP4 (\S+)", r"o=\1 1 1 IN IP4 \2"),
        ("a=ice-ufrag:", rf"a=ice-ufrag:{_ICE_CHARS}{{4,256}}", "a=ice-ufrag:UFRAG"),
        ("a=ice-pwd:", rf"a=ice-pwd:{_ICE_CHARS}{{22,256}}", "a=ice-pwd:PASSWORDPASSWORDPASSWORD"),
        ("m=", rf"m=(audio|video|application) {_PORT} (.*)", r"m=\1 9 \2"),
        ("c=IN IP4 ", rf"c=IN IP4 {_IPV4}", "c=IN IP4 0.0.0.0"),
        ("a=rtcp:", rf"a=rtcp:{_PORT} IN IP4 {_IPV4}", "a=rtcp:9 IN IP4 0.0.0.0"),
        ("a=msid:", rf"a=msid:{_TOKEN} {_TOKEN}", "a=msid:S T"),
        ("a=msid-semantic:", rf"a=msid-semantic: ?WMS(?: {_TOKEN})*", "a=msid-semantic: WMS S"),
    )
)
_FINGERPRINT: Final = re.compile(
    r"a=fingerprint:(sha-1|sha-224|sha-256|sha-384|sha-512) ((?:[0-9A-F]{2}:)+[0-9A-F]{2})"
)
_ADDRESS: Final = r"[0-9A-Fa-f:.]{2,45}"  # IPv4 or IPv6, checked by ipaddress (a name: kept as it is)
_CANDIDATE: Final = re.compile(
    rf"a=candidate:{_ICE_CHARS}{{1,32}} ([12]) (udp|UDP|tcp|TCP) \d{{1,10}} ({_ADDRESS}) {_PORT} "
    rf"typ (host|srflx|prflx|relay)(?: raddr ({_ADDRESS}) rport (?:0|{_PORT}))?"
    rf"((?: tcptype (?:active|passive|so))?(?: generation \d{{1,5}})?)(?: ufrag {_ICE_CHARS}{{4,256}})?"
    r"((?: network-id \d{1,5})?(?: network-cost \d{1,5})?)"
)
_SSRC: Final = re.compile(rf"a=ssrc:(\d{{1,10}}) (cname|msid|mslabel|label):{_TOKEN}((?: {_TOKEN})?)")
_SSRC_GROUP: Final = re.compile(r"a=ssrc-group:(FID|FEC|FEC-FR|SIM) (\d{1,10}(?: \d{1,10})*)")


def shape(text: str) -> str:
    """``text`` with its per-call values fixed (see the module note); lines kept in order."""
    ssrcs: dict[str, str] = {}  # each SSRC -> its rank, so that ssrc-group lines still name the same ones

    def ssrc(value: str) -> str:
        if int(value) > 0xFFFFFFFF:
            return value
        return ssrcs.setdefault(value, str(len(ssrcs) + 1))

    return "\n".join(_line(line, ssrc) for line in text.splitlines())


def _line(line: str, ssrc: Callable[[str], str]) -> str:
    for prefix, pattern, replacement in _RULES:
        if line.startswith(prefix) and pattern.match(line) is not None:
            return replacement(line)
    if not line.startswith(("a=candidate:", "a=fingerprint:", "a=ssrc")):
        return line
    if (match := _CANDIDATE.fullmatch(line)) is not None:
        return _candidate(match) or line
    if (match := _FINGERPRINT.fullmatch(line)) is not None:
        return f"a=fingerprint:{match[1]} " + ":".join(["00"] * (len(match[2]) // 3 + 1))
    if (match := _SSRC.fullmatch(line)) is not None:
        return f"a=ssrc:{ssrc(match[1])} {match[2]}:V{'W' if match[3] else ''}"
    if (match := _SSRC_GROUP.fullmatch(line)) is not None:
        return f"a=ssrc-group:{match[1]} " + " ".join(ssrc(v) for v in match[2].split())
    return line


def _candidate(match: re.Match[str]) -> str | None:
    """A candidate line with its foundation, priority, port and ufrag fixed and each address replaced by
    one of its family (None: an address ipaddress refuses)."""
    component, transport, host, kind, related, options, network = match.groups()
    try:
        family = ipaddress.ip_address(host).version
        related_family = ipaddress.ip_address(related).version if related is not None else 0
    except ValueError:
        return None
    return f"a=candidate:F {component} {transport} 1 IPv{family} 9 typ {kind} raddr:{related_family}{options}{network}"
