"""Video added and dropped mid-call over SIP over WebSocket (issue 19): the browser SIP libraries (JsSIP
3.13, SIP.js 0.21, unmodified, headless Chromium's fake camera) renegotiate by re-INVITE through the whole
gateway (`codecs.video: [VP8, H264]`), sipp as the SIP side with a plain RTP VP8 phone's media
(peers.video_phone.PlainVideoPeer, its ports passed to sipp with -set).

- SIP.js calls sipp (`uas_video_escalation`) with audio, then adds its camera by re-INVITE: the gateway
  re-INVITEs sipp first; sipp's 488 comes back to SIP.js as 488 (it rolls its offer back, the call goes
  on); its second re-INVITE is answered 200 once sipp's 200 came: the phone's picture (blue) decoded by
  Chromium and shown, the page's camera (green) decoded by the phone; SIP.js stops the video: port 0 to
  sipp (its third re-INVITE check). (JsSIP ends the call when its re-INVITE is refused: not this test.)
- sipp (`uac_video_escalation`) calls alice's library with audio, then adds video by re-INVITE: the
  gateway re-INVITEs the library with its new offer, the library's 200 (its camera on the new m-line)
  makes sipp's 200: pictures both ways; sipp's next re-INVITE drops the video, the library stops it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.softphones import Library, Softphone, require_softphones, softphone_server
from peers.video_phone import PlainVideoPeer
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.media.test_video_escalation import gateway_video_port, last_gateway_video
from tests.e2e.softphone.test_softphone_video_escalation import VIDEO_WINDOW_MS, aim, phone_ports
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD, no_calls, realm_of, websocket_config
from tests.e2e.websip.test_softphone_libraries import LIBRARIES, allowing
from tests.signaling.browser import chromium_page

SECTIONS = {"codecs": {"video": ["VP8", "H264"]}, "media": {"rtp_ports": {"start": 31000, "end": 31199}}}


def live(lines: dict[str, list[dict[str, Any]]], kind: str) -> list[bool]:
    """Per side (local, remote): the session has a ``kind`` m-line that is not rejected."""
    return [any(m["kind"] == kind and m["port"] != 0 for m in lines[side]) for side in ("local", "remote")]


async def pictures_both_ways(softphone: Softphone, camera: PlainVideoPeer) -> None:
    """While the (aimed, sending) phone sends its blue picture, Chromium decodes it and the page's <video>
    shows it; the phone decodes what the library's camera sends (the fake camera's green)."""
    seen: dict[str, Any] = {}

    def blue(reading: dict[str, Any]) -> bool:
        picture = reading["picture"]
        return picture is not None and picture["mean"][2] > picture["mean"][0] + 50

    # Until both sides have decoded enough, or 12 s went by: at load 9 Chromium once had no video packet
    # at all within a fixed 3 s.
    with contextlib.suppress(TimeoutError):  # the assertions below say what was missing
        async with asyncio.timeout(12):
            while not (seen.get("framesDecoded", 0) >= 15 and blue(seen) and len(camera.decoded) >= 15):
                await asyncio.sleep(0.1)
                seen = await softphone.remote_video()
    phone = {"frames sent": camera.sent_frames, "plis from the gateway": camera.plis}
    assert seen["framesDecoded"] >= 15 and blue(seen), (seen, phone)  # the phone's blue, decoded by Chromium
    assert (seen["frameWidth"], seen["frameHeight"]) == (320, 240) and seen["codec"] == "video/VP8", seen
    assert len(camera.decoded) >= 15, len(camera.decoded)
    width, height, _, u, v = camera.decoded[-1]
    assert (width, height) == (640, 480) and u < 110 and v < 110, camera.decoded[-1]  # green


async def test_sipjs_adds_video_by_reinvite_then_drops_it(tmp_path: Path) -> None:
    require_softphones()
    require_binary("sipp")
    camera = PlainVideoPeer("VP8")
    await camera.start()
    pbx = Sipp(tmp_path, "uas_video_escalation", calls=1, rtp_echo=True, auto_answer=True,
               extra_args=phone_ports(camera))  # fmt: skip
    await pbx.start()
    try:
        async with softphone_server() as origin:
            config = allowing(websocket_config(pbx.address, sections=SECTIONS), origin)
            config = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, keepalive_interval=0.0))
            async with running_gateway(config) as gateway, chromium_page() as page:
                realm = realm_of(gateway)
                softphone = Softphone(page, "sipjs")
                await softphone.open(origin)
                await softphone.registered(gateway.http_url, f"sip:alice@{realm}", ALICE_SIP_PASSWORD)
                await softphone.call(f"sip:2000@{realm}")
                await softphone.wait_for("confirmed")
                assert live(await softphone.m_lines(), "video") == [False, False]

                await softphone.add_video()  # sipp refuses the gateway's re-INVITE: its 488 to SIP.js
                await softphone.wait_for("renegotiationFailed", status=488)
                assert live(await softphone.m_lines(), "video") == [False, False]  # rolled back

                await softphone.add_video()  # taken: 200 to SIP.js once sipp's 200 came
                await softphone.wait_for("renegotiated")
                assert live(await softphone.m_lines(), "video") == [True, True]
                aim(camera, *last_gateway_video(pbx, camera.address[1]))
                async with camera.sending():
                    await pictures_both_ways(softphone, camera)

                await softphone.drop_video()  # port 0 to sipp (its third re-INVITE's check)
                await softphone.wait_for("renegotiated")
                assert live(await softphone.m_lines(), "video") == [False, False]
                assert not await softphone.sending_video()
                await softphone.hangup()
                await softphone.wait_for("ended")
                result = await pbx.wait(timeout=15)
                assert await no_calls(gateway)
        assert result.ok, result
    finally:
        await pbx.stop()
        camera.close()


@pytest.mark.parametrize("library", LIBRARIES)
async def test_library_takes_video_the_sip_side_adds(library: Library, tmp_path: Path) -> None:
    require_softphones()
    require_binary("sipp")
    camera = PlainVideoPeer("VP8")
    await camera.start()
    try:
        async with softphone_server() as origin:
            config = allowing(websocket_config(None, sections=SECTIONS), origin)
            async with running_gateway(config) as gateway, chromium_page() as page:
                softphone = Softphone(page, library)
                await softphone.open(origin)
                realm = realm_of(gateway)
                await softphone.registered(gateway.http_url, f"sip:alice@{realm}", ALICE_SIP_PASSWORD)
                host, port = gateway.sip_address
                sipp = Sipp(tmp_path, "uac_video_escalation", f"{host}:{port}", service="1001",
                            duration_ms=VIDEO_WINDOW_MS, rtp_echo=True, extra_args=phone_ports(camera), timeout=60)  # fmt: skip
                vport = camera.address[1]
                try:
                    await sipp.start()
                    await softphone.wait_for("incoming")
                    await softphone.answer()
                    await softphone.wait_for("confirmed")
                    await softphone.camera_ready()  # the camera for the video sipp is about to add
                    assert live(await softphone.m_lines(), "video") == [False, False]

                    # sipp's re-INVITE after 1 s: our re-INVITE to the library, its 200 -> sipp's 200
                    await wait_until(lambda: gateway_video_port(sipp, vport) is not None, timeout=10)
                    video_port = gateway_video_port(sipp, vport)
                    assert video_port is not None, "no 200 with video to sipp's re-INVITE"
                    aim(camera, video_port, 96)
                    async with camera.sending():  # at once: sipp drops the video VIDEO_WINDOW_MS after
                        assert live(await softphone.m_lines(), "video") == [True, True]
                        assert await softphone.sending_video()
                        await pictures_both_ways(softphone, camera)

                    # sipp's next re-INVITE drops the video; then its BYE
                    await softphone.wait_for("ended", timeout=VIDEO_WINDOW_MS / 1000 + 15)
                    result = await sipp.wait(timeout=15)
                    assert await no_calls(gateway)
                finally:
                    await sipp.stop()
        assert result.ok, result
        assert result.count("SIP/2.0 200") >= 4, result
    finally:
        camera.close()
