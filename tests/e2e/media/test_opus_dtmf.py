"""DTMF from a phone that offers opus with telephone-event/8000 only (CUCM, snom), end to end with sipp:
the 200 answers opus and keeps telephone-event/8000 (checked by sipp on the wire); when G.722 and PCMU
are offered too, one of those, whose clock the events share. The RFC 4733 events sipp then plays (Debian sip-tester's pcaps: digit 5, then 9) reach the web user as `dtmf`."""

from __future__ import annotations

from pathlib import Path

import pytest

from peers.binaries import require_binary, unavailable
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

PCAPS = Path("/usr/share/sip-tester")


@pytest.mark.parametrize(
    ("scenario", "codecs"),
    [
        ("uac_opus_dtmf", ("opus",)),
        # issue 67 item 5: with G.722 and PCMU offered too, the 200 answers one of those, whose 8 kHz
        # clock the events share (sipp checks the answer's m-line); opus put two clocks in one stream
        ("uac_opus_g722_dtmf", None),
    ],
)
async def test_dtmf_at_8000_hz_beside_opus_reaches_the_browser(
    tmp_path: Path, scenario: str, codecs: tuple[str, ...] | None
) -> None:
    require_binary("sipp")
    if not (PCAPS / "dtmf_2833_5.pcap").is_file():
        unavailable(f"sipp's RFC 4733 pcaps are not in {PCAPS} (Debian package sip-tester)")
    async with (
        running_gateway(gateway_config(None)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        host, port = gateway.sip_address
        sipp = Sipp(tmp_path, scenario, f"{host}:{port}", service="1001", duration_ms=1500)
        peer = WebPeer(1000.0, codecs)
        try:
            await sipp.start()
            incoming = await alice.wait_for("incoming")
            call_id = incoming["call_id"]
            await alice.answer(call_id, peer.answer)
            first = await alice.wait_for("dtmf", call_id=call_id)
            second = await alice.wait_for("dtmf", call_id=call_id)
            await alice.wait_for("ended", call_id=call_id, timeout=15)
            result = await sipp.wait(timeout=15)
        finally:
            await sipp.stop()
            await peer.close()
    assert (first["digit"], second["digit"]) == ("5", "9"), (first, second)
    assert first["duration_ms"] > 0
    assert result.ok, result  # the answer's codec as the scenario checks, and telephone-event/8000
