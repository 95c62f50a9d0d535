"""A real Chromium calling a pjsua2 desk phone (PCMU) over /ws sends its Opus in RFC 2198 RED, and the
gateway gives back the packets its leg loses (issue 35 item 4).

libwebrtc sends RED only when the red payload type comes before its send codec in the description it
was given (sdp/opus.py); with red after Opus it negotiates red and never sends it, which is what the
gateway's answers did before. The browser's RTP crosses bench/impair.py's relay (its ICE candidates
pointed through it both ways), which drops 5 % of it, seeded; the bridge counts what it restored from
the next packet's redundant copy, and so does the call's listing (`packets_recovered`). The answer also
asks a narrowband Opus at 32 kbit/s (`maxaveragebitrate`), which Chromium's sender takes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import sdp
from gateway.ops.call_list import live_call
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from tests.conftest import REPO
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.lossy_sip_leg import Impairment, ImpairRelay, point_candidates
from tests.e2e.sip_interop.test_hold import bridge_stats
from tests.signaling.browser import chromium_page

sys.path.insert(0, str(REPO / "bench"))

from quality_chromium import ChromiumPeer

LOSS = 0.05

OUTBOUND = """() => {
  return pc.getStats().then((stats) => {
    let out = null;
    stats.forEach((r) => { if (r.type === 'outbound-rtp' && r.kind === 'audio') out = r; });
    return out && {packets: out.packetsSent, bytes: out.bytesSent, bitrate: out.targetBitrate};
  });
}"""


async def test_chromium_sends_red_and_the_gateway_restores_its_lost_packets(tmp_path: Path) -> None:
    require_desk_phone()
    relay = await ImpairRelay(Impairment("lossy", loss=LOSS, seed=5)).start()
    try:
        async with (
            DeskPhone(tmp_path, user="2000", tone=600) as phone,
            running_gateway(gateway_config(phone.address)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            chromium_page() as page,
        ):
            peer = ChromiumPeer(page.context)
            try:
                offer, browser = point_candidates(await peer.offer(), relay.b)
                relay.towards(peer=browser)
                call_id = await alice.call("2000", offer)
                connected = await alice.wait_for("connected", call_id=call_id, timeout=20)
                (audio,) = [m for m in sdp.parse(connected["sdp"]).media if m.media == "audio"]
                names = [c.name.lower() for c in audio.codecs]
                opus = next(c for c in audio.codecs if c.name.lower() == "opus")
                answer, box = point_candidates(connected["sdp"], relay.a)
                relay.towards(box=box)
                await peer.accept(answer)
                await wait_until(lambda: relay.impairer.lost >= 12, timeout=30)
                await asyncio.sleep(0.2)  # the packet after the last loss, with its copy
                stats = bridge_stats(gateway, call_id).web_to_sip
                lost = relay.impairer.lost  # at the same moment: the relay drops on until the hang-up
                sent = await peer.page.evaluate(OUTBOUND)
                listed = live_call(gateway.driver._runtimes[call_id], instance=None, dialect=None)
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id, timeout=10)
            finally:
                await peer.close()
    finally:
        relay.close()
    assert names.index("red") < names.index("opus"), names
    assert opus.parameters.get("maxaveragebitrate") == "32000", opus.parameters
    assert sent is not None and sent["bitrate"] == 32000, sent
    # random loss: a lost packet whose successor came is restored from it (two in a row: only the second)
    assert stats.recovered >= 0.7 * lost and stats.lost >= stats.recovered, (stats, lost)
    assert listed is not None and listed["legs"]["web"]["packets_recovered"] > 0, listed  # type: ignore[index]
