"""`AudioStreams` (gateway/runtime/audio_streams/service.py) without a call: each bad request refused
with the field it names before anything is looked up, unknown calls 404, and its place after the
driver's earlier listeners (which may fail without keeping streams from their calls' ends)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from gateway.config.audio_stream import AudioStreamSection
from gateway.runtime.audio_streams.service import AudioStreams, _checked
from gateway.runtime.driver import CallDriver
from gateway.signaling.errors import BadRequest, NotFound


class Driver:
    """What the service uses of the driver: its live calls and three hooks."""

    def __init__(self) -> None:
        self.runtimes: tuple[object, ...] = ()
        self.on_call_progress: Callable[[Any, str], None] | None = None
        self.on_call_end: Callable[[Any], None] | None = None
        self.audio_stream: object = None


def streams(driver: Driver) -> AudioStreams:
    return AudioStreams(AudioStreamSection(url="ws://127.0.0.1:9/app"), cast(CallDriver, driver))


@pytest.mark.parametrize(
    ("request_", "own_url", "field"),
    [
        ({"colour": "red"}, True, "colour"),
        ({"url": "ws://elsewhere/app"}, False, "url"),  # a web user names no url
        ({"url": "http://app"}, True, "url"),
        ({"sample_rate": True}, True, "sample_rate"),
        ({"sample_rate": 44100}, True, "sample_rate"),
        ({"encoding": "mp3"}, True, "encoding"),
        ({"inject": 1}, True, "inject"),
    ],
)
def test_bad_requests_name_the_field(request_: dict[str, object], own_url: bool, field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        streams(Driver()).start("c-1", request_, "admin a", own_url=own_url)
    assert caught.value.field == field


def test_good_fields_are_section_values() -> None:
    assert _checked({"sample_rate": 16000, "encoding": "OPUS", "inject": "Both", "url": "wss://a/b"}) == {
        "sample_rate": 16000, "encoding": "opus", "inject": "both", "url": "wss://a/b"
    }  # fmt: skip


async def test_calls_that_are_not_live_are_not_found() -> None:
    service = streams(Driver())
    for attempt in (
        lambda: service.start("c-1", {}, "admin a"),
        lambda: service.status("c-1"),
        lambda: service.call_of("alice", "h-1"),
    ):
        with pytest.raises(NotFound):
            attempt()
    with pytest.raises(NotFound) as caught:
        await service.stop("c-1")
    assert caught.value.field == "call_id"


def test_attach_hears_after_the_earlier_listeners_even_when_they_fail() -> None:
    driver = Driver()
    heard: list[str] = []

    def failing(runtime: Any, *more: Any) -> None:
        heard.append("ops")
        raise RuntimeError("a webhook failed")

    driver.on_call_progress = failing
    driver.on_call_end = failing
    service = streams(driver)
    service.call_progress = lambda runtime, progress: heard.append(progress)  # type: ignore[method-assign]
    service.call_ended = lambda runtime: heard.append("ended")  # type: ignore[method-assign]
    service.attach()
    assert driver.audio_stream == service.from_session
    assert driver.on_call_progress is not None and driver.on_call_end is not None
    with pytest.raises(RuntimeError):
        driver.on_call_progress(object(), "answered")
    with pytest.raises(RuntimeError):
        driver.on_call_end(object())
    assert heard == ["ops", "answered", "ops", "ended"]
