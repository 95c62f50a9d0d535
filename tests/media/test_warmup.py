"""``warm_up``: the once-per-process parts of a call's setup are made when the gateway starts, so the
first call does not pay for them (issue 14 goal 3)."""

from __future__ import annotations

import aioice.ice
import pytest

import sdp
from gateway.media import bridge_settings, fastlane
from gateway.media.rtp.dtls_srtp import DtlsCertificates
from gateway.media.warmup import SAMPLE_OFFER, warm_up
from gateway.media.webrtc import aiortc_hooks


def test_the_certificate_and_the_codec_tables_are_made_once_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    certificates = DtlsCertificates()
    pool = fastlane.EnginePool() if fastlane.available() else None
    made: list[object] = []
    monkeypatch.setattr("gateway.media.rtp.dtls_srtp.DtlsCertificate.__init__", _counting(made))
    warm_up(certificates, pool)
    assert len(made) == 1
    first = bridge_settings.web_certificate(certificates)
    assert bridge_settings.web_certificate(certificates) is first  # the first call's: no new one
    assert first is not None and first._contexts  # type: ignore[attr-defined]  # its DTLS context made
    assert len(made) == 1
    if pool is not None:
        assert pool._transcoding is not None  # loaded: the first call's property read is free


def test_the_sample_offer_is_a_browser_offer_and_the_interfaces_are_cached() -> None:
    offer = sdp.parse(SAMPLE_OFFER)
    assert [m.media for m in offer.media] == ["audio"]
    aiortc_hooks.cache_host_addresses(60)
    try:
        warm_up(None, None)
        cached = aioice.ice.get_host_addresses
        assert isinstance(cached, aiortc_hooks._HostAddresses) and cached._found
    finally:
        aiortc_hooks.cache_host_addresses(0)


def _counting(made: list[object]):  # type: ignore[no-untyped-def]
    from gateway.media.rtp.dtls_srtp import DtlsCertificate

    original = DtlsCertificate.__init__

    def init(self: DtlsCertificate, *args: object, **kwargs: object) -> None:
        made.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    return init
