"""A Python client of the gateway's HTTP offer/answer API, shaped as RustPBX's `WebRtcClient` (docs/signaling.md):

    async with WebRtcClient("http://127.0.0.1:8080", api_key="...") as client:
        session_id, answer_sdp = await client.exchange_sdp(offer_sdp)       # the credentials' default
        answer = await client.send_offer(offer_sdp, "my-id", {"dial": "2000"})  # OfferAnswer
        await client.send_ice_candidate(session_id, IceCandidate("candidate:...", 0, "0"))
        async for event in client.events(session_id): ...                  # ringing, answered, ...
        await client.hold(session_id); await client.send_dtmf(session_id, "12")  # resume, transfer, send_message
        await client.close_session(session_id, "Completed")

A refused request raises `WebRtcClientError` with the error body's `code` (the HTTP status), `reason`
and `session_id`. This package is a client, not part of the running gateway (nothing of the gateway
imports it): it sits in gateway/signaling because it speaks the HTTP offer/answer dialect on aiohttp,
which only gateway/signaling may import. It imports nothing of the gateway."""

from gateway.signaling.client.http import (
    IceCandidate,
    OfferAnswer,
    ProgressEvent,
    WebRtcClient,
    WebRtcClientError,
)

__all__ = ["IceCandidate", "OfferAnswer", "ProgressEvent", "WebRtcClient", "WebRtcClientError"]
__version__ = "1.0.0"
