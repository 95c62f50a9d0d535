"""`AudioStreams` (gateway/runtime/audio_streams/service.py) without a call: each bad request refused
with the field it names before anything is looked up, unknown calls 404, and its place after the
driver's earlier listeners (which may fail without keeping streams from their calls' ends)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from gateway.config.audio_stream import AudioStreamSection, address_allowed, parse_target
from gateway.config.errors import InvalidValue
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
    assert _checked({"sample_rate": 16000, "encoding": "OPUS", "inject": "Both", "url": "wss://a/b"}, ()) == {
        "sample_rate": 16000, "encoding": "opus", "inject": "both", "url": "wss://a/b"
    }  # fmt: skip


ALLOWED = tuple(
    parse_target(p) for p in ("bot.example.org", "10.1.2.3:9000", "10.20.0.0/16", "[fd00::1]:443")
)


@pytest.mark.parametrize(
    ("url", "allowed", "refused"),
    [
        ("ws://10.1.2.3:9000/a", ALLOWED, None),
        ("ws://10.1.2.3:9001/a", ALLOWED, "10.1.2.3:9001 is not in audio_stream.allowed_targets"),
        ("ws://10.20.7.7/a", ALLOWED, None),
        ("wss://[fd00::1]/a", ALLOWED, None),
        ("ws://127.0.0.1:8080/a", ALLOWED, "127.0.0.1:8080 is not in audio_stream.allowed_targets"),
        ("wss://BOT.example.org./listen", ALLOWED, None),
        ("ws://other.example.org/a", ALLOWED, None),  # left to its addresses: a network is listed
        (
            "ws://other.example.org/a",
            ALLOWED[:1],
            "other.example.org:80 is not in audio_stream.allowed_targets",
        ),
        ("ws://127.0.0.1:8080/a", (), None),  # no list: as before
        ("ws://169.254.169.254/latest", (), "169.254.169.254 is a link-local address, refused unless"),
        ("ws://[fe80::1]:80/", (), "fe80::1 is a link-local address"),
        ("ws://169.254.169.254/", (parse_target("169.254.169.254"),), None),  # listed: allowed
    ],
)
def test_targets_outside_the_list_or_link_local_are_refused_naming_url(
    url: str, allowed: tuple[Any, ...], refused: str | None
) -> None:
    """Issue 67 item 20: a start's url, and the section's, checked against audio_stream.allowed_targets
    (without them: anything but link-local addresses, as a cloud's metadata service)."""
    if refused is None:
        assert _checked({"url": url}, allowed) == {"url": url}
        AudioStreamSection(url=url, allowed_targets=allowed)
        return
    with pytest.raises(BadRequest) as caught:
        _checked({"url": url}, allowed)
    assert caught.value.field == "url" and str(caught.value).startswith(refused), caught.value
    with pytest.raises(InvalidValue) as invalid:
        AudioStreamSection(url=url, allowed_targets=allowed)
    assert "url" in str(invalid.value) and refused in str(invalid.value), invalid.value


def test_resolved_addresses_are_checked_too() -> None:
    """A name listed by name may resolve anywhere but link-local; a name left to networks only to them."""
    assert address_allowed("bot.example.org", 443, "10.9.9.9", ALLOWED)
    assert not address_allowed("bot.example.org", 443, "169.254.169.254", ALLOWED)
    assert address_allowed("other.example.org", 80, "10.20.1.1", ALLOWED)
    assert not address_allowed("other.example.org", 80, "10.21.1.1", ALLOWED)
    assert not address_allowed("metadata.internal", 80, "169.254.169.254", ())
    assert not address_allowed("x", 80, "::ffff:169.254.1.1", ())
    assert address_allowed("localhost", 80, "127.0.0.1", ())
    for bad in ("", "a/b/c", "host:0", "host:x", "[::1", "a b"):
        with pytest.raises(ValueError):
            parse_target(bad)


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
