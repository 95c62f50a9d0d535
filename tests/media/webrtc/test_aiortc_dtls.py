"""A connected web leg's OpenSSL connection is released once no handshake reply can be needed
(gateway/media/webrtc/aiortc_dtls.py), and the browser's close_notify still ends the leg afterwards."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from OpenSSL import SSL

import sdp
from gateway.media.codecs import codec_choice
from gateway.media.events import DtlsFailed, MediaConnected, MediaEvent
from gateway.media.webrtc import aiortc_dtls
from gateway.media.webrtc.web_leg_state import WebLegState
from gateway.media.webrtc.webrtc_leg import WebLegOptions, WebRtcLeg
from peers.webpeer import WebPeer

PCMU = [codec_choice.known("PCMU"), *codec_choice.WEB_EVENTS]


def test_released_ssl_reads_an_alert_as_the_end_and_drops_other_records() -> None:
    released = aiortc_dtls.ReleasedSsl()
    released.bio_write(bytes((22, 0xFE, 0xFD)) + bytes(10))  # a retransmitted handshake record
    with pytest.raises(SSL.WantReadError):
        released.recv(1500)
    with pytest.raises(SSL.WantReadError):
        released.bio_read(1500)  # nothing to send back
    assert released.DTLSv1_get_timeout() is None and released.shutdown() is False
    with pytest.raises(SSL.Error):
        released.send(b"sctp")
    released.bio_write(bytes((21, 0xFE, 0xFD)) + bytes(10))  # an alert: close_notify or fatal
    with pytest.raises(SSL.ZeroReturnError):
        released.recv(1500)


async def _connected(events: list[MediaEvent]) -> tuple[WebRtcLeg, WebPeer]:
    leg = WebRtcLeg(
        WebLegOptions(host_addresses=("127.0.0.1",)), on_rtp=lambda *fields: None, on_event=events.append
    )
    peer = WebPeer()
    answer = await leg.accept_offer(sdp.parse(await peer.offer()), PCMU)
    await peer.accept(sdp.write(answer))
    for _ in range(300):
        if MediaConnected() in events:
            break
        await asyncio.sleep(0.01)
    assert leg.state is WebLegState.CONNECTED
    return leg, peer


def _dtls(leg: WebRtcLeg) -> RTCDtlsTransport:
    transport = leg._transceiver.receiver.transport
    assert transport is not None
    return transport


async def test_the_answering_leg_releases_its_ssl_and_still_hears_close_notify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiortc_dtls, "FIRST_CHECK", 0.05)
    events: list[MediaEvent] = []
    leg, peer = await _connected(events)
    try:
        dtls = _dtls(leg)
        assert dtls._role == "client"  # our answer is a=setup:active (RFC 5763 §5)
        for _ in range(100):
            if isinstance(dtls._ssl, aiortc_dtls.ReleasedSsl):
                break
            await asyncio.sleep(0.01)
        assert isinstance(dtls._ssl, aiortc_dtls.ReleasedSsl)
        assert dtls._state is State.CONNECTED and dtls._rx_srtp is not None
        await peer.close()  # the tab goes away: aiortc sends a DTLS close_notify
        for _ in range(100):
            if len(events) > 1:
                break
            await asyncio.sleep(0.01)
        assert events[1:] == [DtlsFailed("the browser closed DTLS (close_notify)", closed_by_peer=True)]
    finally:
        await peer.close()
        await leg.close()


async def test_a_server_waits_for_the_browsers_media_and_a_data_channel_keeps_the_ssl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiortc_dtls, "FIRST_CHECK", 3600.0)  # no release behind the test's back
    leg, peer = await _connected([])
    try:
        dtls = _dtls(leg)
        assert isinstance(dtls._ssl, SSL.Connection)
        assert aiortc_dtls.releasable(dtls, lambda: 0)  # the client's handshake is over
        monkeypatch.setattr(dtls, "_role", "server")
        assert not aiortc_dtls.releasable(dtls, lambda: 0)  # the browser may still need our Finished
        assert aiortc_dtls.releasable(dtls, lambda: 1)  # its SRTP came: it has its keys
        monkeypatch.setattr(dtls, "_data_receiver", object())
        assert not aiortc_dtls.releasable(dtls, lambda: 1)  # SCTP runs over the DTLS connection
        monkeypatch.undo()
        aiortc_dtls.release(dtls)
        assert not aiortc_dtls.releasable(dtls, lambda: 1)  # once only
        await leg.close()  # no close_notify goes out, and nothing raises
    finally:
        await peer.close()
        await leg.close()
