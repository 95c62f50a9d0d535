"""WebRTC offers from systems other than today's browsers, through a whole gateway by the HTTP offer API
and the JSON WebSocket dialect (issue 33 item 6): each is answered (200, an active audio m-line in the offer's own profile, an `o=`
line of the gateway's own), the call reaches the PBX (sipp) and is answered there, with no ERROR and
no traceback in the log.

- Firefox 35 (RTP/SAVPF with a fingerprint, `a=extmap` lines with extension attributes and an
  extension the gateway does not know: ignored, RFC 4566 §5.13 / RFC 8285 §5);
- FreeSWITCH (no `a=mid`, no BUNDLE group): was 502 `media_failed` "internal error: None is not in list";
- Kurento and Asterisk 13 (RTP/SAVPF + a=fingerprint: taken as UDP/TLS/RTP/SAVPF, RFC 8829 §5.1.3);
- Bria 4 (audio, video, T.140 text; a malformed `mid:1` line without `a=`: skipped, the audio answered).

The offers are in tests/data/sdp-field (written from the vendors' documented formats, see its README).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import sdp
from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.web_user import WebUser
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

FIELD = Path(__file__).resolve().parents[2] / "data" / "sdp-field"
OFFERS = [
    "firefox35-webrtc-offer",
    "freeswitch-webrtc-offer",
    "kurento-webrtc-offer",
    "asterisk13-webrtc-offer",
    "bria4-offer",
]

MEDIA = {"inactivity_timeout": 30}  # sipp sends no RTP
CODECS = {"video": ["VP8", "H264"]}  # the web leg takes video too: FreeSWITCH's reaches aiortc


def _auth() -> dict[str, str]:
    return {"Authorization": aiohttp.BasicAuth("alice", ALICE_SECRET).encode()}


async def _state(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Poll the session until it leaves `calling` (ringing counts as still calling)."""
    progress: dict[str, Any] = {}
    for _ in range(300):
        async with http.get(url, headers=_auth()) as response:
            progress = await response.json()
        if progress.get("state") not in ("calling", "ringing"):
            return progress
        await asyncio.sleep(0.1)
    return progress


@pytest.mark.parametrize("name", OFFERS)
async def test_field_webrtc_offer_is_answered_end_to_end(
    name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_binary("sipp")
    text = (FIELD / f"{name}.sdp").read_text()
    caplog.set_level(logging.INFO)
    async with (
        Sipp(tmp_path, "uas_basic_call", calls=None, auto_answer=True) as pbx,
        running_gateway(gateway_config(pbx.address, media=MEDIA, codecs=CODECS)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        body = {"sdp": {"type": "offer", "sdp": text}, "metadata": {"dial": "2000"}}
        async with http.post(f"{gateway.http_url}/webrtc/offer", json=body, headers=_auth()) as response:
            status, reply = response.status, await response.json()
        assert status == 200, reply
        answer = sdp.parse(reply["sdp"]["sdp"])
        offer = sdp.parse(text)
        audio = [m for m in answer.media if m.media == "audio" and not m.rejected]
        assert len(audio) == 1 and audio[0].codecs, reply["sdp"]["sdp"]
        first_audio = next(m for m in offer.media if m.media == "audio")
        assert audio[0].proto == first_audio.proto  # the profile offered comes back (RFC 8829 §5.3.1)
        assert len(answer.media) == len(offer.media)  # every m-line answered, the others with port 0
        assert all(m.rejected for m in answer.media if m.media not in ("audio", "video"))  # Bria's T.140
        assert answer.origin.session_id != offer.origin.session_id  # our own o= (RFC 8866 §5.2)
        progress = await _state(http, f"{gateway.http_url}{reply['status_url']}")
        assert progress["state"] == "answered", progress
        close = {"session_id": reply["session_id"]}
        async with http.post(f"{gateway.http_url}/webrtc/close", json=close, headers=_auth()) as response:
            assert response.status == 200
        async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:  # the JSON WebSocket dialect
            call_id = await alice.call("2000", text)
            connected = await alice.wait_for("connected", call_id=call_id, timeout=20)
            assert any(m.media == "audio" and not m.rejected for m in sdp.parse(connected["sdp"]).media)
            await alice.request({"type": "hangup", "call_id": call_id})
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]
