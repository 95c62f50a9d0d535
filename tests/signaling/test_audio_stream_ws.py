"""The `/ws` request `audio_stream` (gateway/signaling/audio_stream/ws_request.py), sans-I/O: parsed from
the JSON the client sends, each bad field refused by name, and handed to the call service's
`audio_stream` (or refused with 409 when the gateway has none)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from gateway.signaling.audio_stream.ws_request import AudioStream, audio_stream_request
from gateway.signaling.errors import BadRequest, Conflict
from gateway.signaling.ws.protocol import parse_json, request_from_json


def parse(message: dict[str, object]) -> object:
    return request_from_json(parse_json(json.dumps({"type": "audio_stream", "id": 3, **message})))


def test_start_and_stop_are_parsed() -> None:
    start = parse({"call_id": "c-1", "action": "start", "sample_rate": 16000, "inject": "sip", "other": 1})
    assert start == AudioStream(3, "c-1", "start", {"sample_rate": 16000, "inject": "sip"})
    assert parse({"call_id": "c-1", "action": "stop"}) == AudioStream(3, "c-1", "stop", {})


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"action": "start"}, "call_id"),
        ({"call_id": "c 1", "action": "start"}, "call_id"),
        ({"call_id": "c-1"}, "action"),
        ({"call_id": "c-1", "action": "pause"}, "action"),
        ({"call_id": "c-1", "action": "start", "url": "ws://app"}, "url"),
        ({"call_id": "c-1", "action": "stop", "inject": "sip"}, "inject"),
    ],
)
def test_bad_requests_name_the_field(message: dict[str, object], field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(message)
    assert caught.value.field == field


class Streams:
    def __init__(self) -> None:
        self.asked: list[tuple[object, str, str, Mapping[str, object]]] = []

    async def audio_stream(
        self, session: object, call_id: str, action: str, options: Mapping[str, object]
    ) -> None:
        self.asked.append((session, call_id, action, options))


async def test_the_request_goes_to_the_call_service_or_is_refused() -> None:
    service = Streams()
    request = AudioStream(1, "c-1", "start", {"encoding": "pcm16"})
    await audio_stream_request(service, "session", request)
    assert service.asked == [("session", "c-1", "start", {"encoding": "pcm16"})]
    with pytest.raises(Conflict) as caught:
        await audio_stream_request(object(), "session", request)
    assert caught.value.field == "action"
