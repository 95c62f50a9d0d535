"""No byte string reaching a SIP transport writes a traceback or an ERROR line (issue 10, item 4): every
malformed message ends in the typed error path (a 400 to its source, or a drop with at most a short
line). Mutations of real requests and responses (headers removed, doubled, emptied, bare parameters,
control characters, truncation, flipped bytes) go through the whole receive path of a running user
agent, from a trusted and from an untrusted address. Seeded: the seed is in the failure message."""

from __future__ import annotations

import logging
import random

import pytest

from gateway.sip.transports.transport import Source
from tests.conftest import RUN_SEED
from tests.sip.ua_helpers import LOOPBACK, running_ua

BASE = [
    "INVITE sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKf1;rport\r\n"
    'Max-Forwards: 70\r\nFrom: "Bob" <sip:bob@example.org>;tag=a1\r\nTo: <sip:1001@127.0.0.1>\r\n'
    "Call-ID: fuzz-1@example.org\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@127.0.0.9:5060>\r\n"
    "Content-Type: application/sdp\r\nContent-Length: 56\r\n\r\n"
    "v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
    "BYE sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKf2\r\nMax-Forwards: 70\r\n"
    "From: <sip:bob@example.org>;tag=a1\r\nTo: <sip:1001@127.0.0.1>;tag=b2\r\nCall-ID: fuzz-2@example.org\r\n"
    "CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
    "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9;branch=z9hG4bKf3\r\nMax-Forwards: 70\r\n"
    "From: <sip:probe@example.org>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: fuzz-3\r\nCSeq: 7 OPTIONS\r\n"
    "Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
    "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9;branch=z9hG4bKf4\r\nMax-Forwards: 70\r\n"
    "From: <sip:1001@127.0.0.1>;tag=r\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: fuzz-4\r\nCSeq: 1 REGISTER\r\n"
    "Contact: <sip:1001@127.0.0.9>;expires=60\r\nContent-Length: 0\r\n\r\n",
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnot-ours\r\nFrom: <sip:a@b>;tag=1\r\n"
    "To: <sip:c@d>;tag=2\r\nCall-ID: fuzz-5\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
]
ADDRESSING = ("From", "To", "Via", "Contact", "CSeq", "Call-ID")
PARAMS = [";tag", ";tag=", ";branch", ";rport=", ";received", ";expires", ";lr", ";x=\x00", ";=1", ";;"]
ODD = [
    "",
    ";",
    ";tag",
    ";tag=",
    "\x00",
    "\x1b[31m",
    "\r",
    "<",
    ">",
    '"',
    "%",
    "=",
    ",",
    "::",
    "[",
    "]",
    "é",
    "\xff",
    "9" * 40,
]


def mutate(message: str, rng: random.Random) -> bytes:
    lines = message.split("\r\n")
    if rng.random() < 0.3:  # one odd parameter on an addressing header, and nothing else wrong
        headers = [i for i, line in enumerate(lines) if line.split(":", 1)[0] in ADDRESSING]
        i = rng.choice(headers)
        lines[i] = lines[i] + rng.choice(PARAMS)
        return "\r\n".join(lines).encode()
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        choice = rng.randrange(8)
        if choice == 0:
            del lines[i]
        elif choice == 1:
            lines.insert(i, lines[i])
        elif choice == 2 and ":" in lines[i]:
            lines[i] = lines[i].split(":", 1)[0] + ":" + rng.choice(ODD)
        elif choice == 3:
            lines[i] = lines[i] + rng.choice(ODD)
        elif choice == 4:
            cut = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:cut] + rng.choice(ODD) + lines[i][cut:]
        elif choice == 5 and lines[i]:
            lines[i] = lines[i][: rng.randrange(len(lines[i]))]
        elif choice == 6:
            lines[i] = lines[i].replace("=", rng.choice(ODD), 1)
        else:
            lines[i] = lines[i].upper() if rng.random() < 0.5 else lines[i].lower()
    data = bytearray("\r\n".join(lines).encode("utf-8", "surrogateescape"))
    if rng.random() < 0.2 and data:
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


@pytest.mark.parametrize("seed", [20261122, RUN_SEED])
async def test_no_mutated_message_writes_a_traceback(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(seed)
    async with running_ua(trusted_sources=LOOPBACK) as ua:
        transport = ua.layer.transports[0]
        with caplog.at_level(logging.DEBUG):
            for n in range(1500):
                host = "127.0.0.1" if n % 2 else "127.0.0.2"  # trusted, then untrusted
                ua.layer.receive(mutate(rng.choice(BASE), rng), Source(transport, host, 9))
        bad = [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
        assert not bad, f"seed {seed}: {bad[0].getMessage()}\n{caplog.text[-3000:]}"
        long = [r for r in caplog.records if len(r.getMessage()) > 2000]
        assert not long, f"seed {seed}: a {len(long[0].getMessage())}-character log line"


@pytest.mark.parametrize("header", ["To: <sip:1001@127.0.0.1>;tag", "From: <sip:bob@example.org>;tag"])
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2"])
async def test_a_tag_without_a_value_gets_400_not_a_traceback(
    header: str, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The attack of issue 10 (item 4): `To: ...;tag` made an empty dialog id deep in the policy check."""
    name = header.split(":", 1)[0]
    message = "\r\n".join(
        line if not line.startswith(f"{name}:") else header for line in BASE[1].split("\r\n")
    )
    sent: list[bytes] = []
    async with running_ua(trusted_sources=LOOPBACK) as ua:
        transport = ua.layer.transports[0]
        transport.send = lambda data, destination, on_error=None: sent.append(data)  # type: ignore[method-assign]
        with caplog.at_level(logging.DEBUG):
            ua.layer.receive(message.encode(), Source(transport, host, 9))
    assert not [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert len(sent) == 1 and sent[0].startswith(b"SIP/2.0 400 Bad Request: tag parameter without a value")
