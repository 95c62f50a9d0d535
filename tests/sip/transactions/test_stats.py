"""The transaction layer's counters' labels and the per-source refusal warnings."""

from __future__ import annotations

import logging

import pytest

from gateway.sip.transactions.stats import SourceWarnings, first_line_label


def test_first_line_labels() -> None:
    assert first_line_label(b"INVITE sip:a@b SIP/2.0\r\n") == ("INVITE", "")
    assert first_line_label(b"SIP/2.0 486 Busy Here\r\n") == ("", "486")
    response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    assert first_line_label(response) == ("OPTIONS", "200")  # a response sent is counted by its CSeq method
    assert first_line_label(b"SIP/2.0 100 Trying\r\nCSeq: 1\r\n\r\n") == ("", "100")
    assert first_line_label(b"") == ("?", "")


def test_one_warning_per_source_per_window(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warnings = SourceWarnings(
        logging.getLogger("tests.sip.stats"), "refused", window=60, clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, logger="tests.sip.stats"):
        for _ in range(5):
            warnings.seen("192.0.2.1", "INVITE sip:x SIP/2.0")
        warnings.seen("192.0.2.2", "OPTIONS sip:x SIP/2.0")
        now[0] = 61.0
        warnings.seen("192.0.2.1", "INVITE sip:x SIP/2.0")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "refused from 192.0.2.1: INVITE sip:x SIP/2.0",
        "refused from 192.0.2.2: OPTIONS sip:x SIP/2.0",
        "refused from 192.0.2.1: INVITE sip:x SIP/2.0 (4 more in the last 60 s)",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
