"""Logs an operator can trust on a terminal (issue 10, item 5): whatever a peer puts in a Call-ID, a
header or a message, a log line is one line without control characters, in text and in JSON."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from gateway.logs import configure_logging, escape_controls

HOSTILE = "abc\x1b[2J\x1b[31mred\x00nul\r\nFAKE 2026-11-22 INFO gateway: admin logged in\x07\x9b"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_control_characters_are_escaped() -> None:
    assert escape_controls("a\x1b[1mb\x00\r\n\x7f\x85\tc") == "a\\x1b[1mb\\x00\\x0d\\x0a\\x7f\\x85\tc"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_peer_supplied_value_stays_one_inert_line(fmt: str, restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", fmt, out)
    logging.getLogger("gateway.sip.transactions.layer").info("dropped request, Call-ID %s", HOSTILE)
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert not any((ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) < 0xA0 for ch in text), repr(text)
    if fmt == "json":
        assert json.loads(text)["message"].endswith(HOSTILE)  # the value itself is kept, escaped
    else:
        assert "\\x1b[2J" in text and "\\x0d\\x0aFAKE" in text


def test_a_traceback_keeps_its_lines(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("gateway").exception("failed on %s", "x\ny")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("failed on x\\x0ay") and lines[1].startswith("Traceback")


def test_a_rate_limit_logs_the_first_lines_then_how_many_were_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gateway.logs import RateLimit

    now = [0.0]
    limit = RateLimit(burst=3, window=10.0, clock=lambda: now[0])
    logger = logging.getLogger("gateway.test")
    with caplog.at_level(logging.INFO):
        allowed = [limit.allow(logger, logging.INFO) for _ in range(50)]
        now[0] = 10.5
        assert limit.allow(logger, logging.INFO)
    assert allowed.count(True) == 3
    assert [r.getMessage() for r in caplog.records] == ["... and 47 more like it in the last 10 s"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_quoted_by_a_debug_line_are_masked(fmt: str, restore_root: None) -> None:
    """Issue 10, item 8: DEBUG logs showed ICE passwords (and could show SDES keys or login secrets)."""
    out = io.StringIO()
    configure_logging("DEBUG", fmt, out)
    sdp_text = (
        "a=ice-ufrag:Jy7E\r\na=ice-pwd:4HpIvvApUFxtIYq6GrjnZj\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^31\r\n"
    )
    logging.getLogger("gateway.test").debug("offer %s", sdp_text)
    logging.getLogger("gateway.test").debug('message {"type": "login", "secret": "hunter2"}')
    logging.getLogger("gateway.test").debug("Authorization: Basic YWxpY2U6aHVudGVyMg==")
    text = out.getvalue()
    for secret in ("4HpIvvApUFxtIYq6GrjnZj", "NzB4d1BINUAvLEw6", "hunter2", "YWxpY2U6aHVudGVyMg"):
        assert secret not in text, text
    assert "ice-pwd:***" in text and "inline:***" in text and "Jy7E" in text  # the ufrag is not a secret


class _Stream(io.StringIO):
    """A stream that notes which thread wrote each line."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[str] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.current_thread().name)
        return super().write(text)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_queued_lines_are_written_by_a_thread_of_their_own_in_the_same_format(
    fmt: str, restore_root: None
) -> None:
    """The CLI's gateway (issue 64 item 4): its event loop never formats nor writes a line; the lines
    are those the direct handler writes, with the arguments' values as they were when logged."""
    direct, queued = io.StringIO(), _Stream()
    mutable = ["before"]
    configure_logging("INFO", fmt, direct)
    logging.getLogger("gateway.test").info("call=%s state %s", "c1", mutable)
    writer = configure_logging("INFO", fmt, queued, queued=True)
    try:
        logging.getLogger("gateway.test").info("call=%s state %s", "c1", mutable)
        mutable[0] = "after"
    finally:
        writer.stop()
        writer.stop()  # idempotent

    def messages(out: io.StringIO) -> list[str]:  # all but the time
        lines = out.getvalue().splitlines()
        if fmt == "text":
            return [line.split(" ", 2)[2] for line in lines]
        return [str(json.loads(line)["message"]) for line in lines]

    assert messages(queued) == messages(direct) and len(messages(direct)) == 1
    assert "before" in queued.getvalue() and "after" not in queued.getvalue()
    assert threading.current_thread().name not in queued.writers and queued.writers, queued.writers
