"""The `sdp` admin command (gateway/cli_sdp.py), driven through its own argparse parser."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

import sdp
from gateway import cli_sdp
from tests.sdp.samples import DATA, text


def stdin(data: bytes) -> io.TextIOWrapper:
    """A standard input that has bytes underneath, as the real one does."""
    return io.TextIOWrapper(io.BytesIO(data))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="test")
    subparsers = parser.add_subparsers(dest="command", required=True)
    cli_sdp.add_parser(subparsers)
    status = cli_sdp.run(parser.parse_args(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_translate_to_sip(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        [
            "sdp",
            "translate",
            "--to",
            "sip",
            str(DATA / "chromium-offer-audio.sdp"),
            "--address",
            "192.0.2.50",
            "--port",
            "42000",
            "--codecs",
            "PCMU,PCMA",
        ],
        capsys,
    )
    assert status == 0 and err == ""
    result = sdp.parse(out)
    assert result.media[0].m_line == "audio 42000 RTP/AVP 0 8 126"
    assert result.connection == sdp.Connection("192.0.2.50")


def test_translate_to_sip_with_placeholders(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        ["sdp", "translate", "--to", "sip", str(DATA / "chromium-offer-audio.sdp")], capsys
    )
    assert status == 0
    assert "placeholder" in err and "--address" in err and "--port" in err
    assert sdp.parse(out).media[0].port == cli_sdp.PLACEHOLDER_PORT


def test_translate_to_webrtc_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", stdin(text("pjsua2-offer").encode()))
    fingerprint = "sha-256 " + ":".join(["AB"] * 32)
    status, out, err = run(
        [
            "sdp",
            "translate",
            "--to",
            "webrtc",
            "-",
            "--ice-ufrag",
            "abcd",
            "--ice-pwd",
            "abcdefghijklmnopqrstuvwx",
            "--fingerprint",
            fingerprint,
            "--setup",
            "active",
            "--end-of-candidates",
            "--candidate",
            "candidate:1 1 udp 2130706431 192.0.2.9 50000 typ host",
        ],
        capsys,
    )
    assert status == 0 and err == ""
    result = sdp.parse(out)
    assert sdp.classify(result) is sdp.SdpKind.WEBRTC
    assert result.media[0].setup is sdp.Setup.ACTIVE and result.media[0].end_of_candidates
    assert result.media[0].port == 50000


def test_translate_to_webrtc_placeholders(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["sdp", "translate", "--to", "webrtc", str(DATA / "sipp-offer.sdp")], capsys)
    assert status == 0
    assert "--ice-ufrag" in err and "--fingerprint" in err
    assert "a=ice-ufrag:PLACEHOLDER" in out


def test_errors_carry_the_sip_status(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    status, out, err = run(
        ["sdp", "translate", "--to", "sip", str(DATA / "chromium-offer-audio.sdp"), "--codecs", "G729"],
        capsys,
    )
    assert (status, out) == (1, "") and "SIP 488" in err
    status, out, err = run(["sdp", "translate", "--to", "sip", "/nonexistent.sdp"], capsys)
    assert status == 1 and "cannot read" in err


def test_parse_error_is_400(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", stdin(b"v=0\r\no=nonsense\r\n"))
    status, _, err = run(["sdp", "classify", "-"], capsys)
    assert status == 1 and "SIP 400" in err and "nonsense" in err


@pytest.mark.parametrize("data", [b"v=0\r\n\xff\xfe garbage\r\n", bytes(range(256)), b"\x80"])
def test_input_that_is_not_utf8_is_one_line_and_exit_1(
    data: bytes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = tmp_path / "capture.pcap"
    binary.write_bytes(data)
    for argv in (["sdp", "classify", str(binary)], ["sdp", "translate", "--to", "webrtc", "-"]):
        monkeypatch.setattr("sys.stdin", stdin(data))
        status, out, err = run(argv, capsys)
        assert (status, out) == (1, "")
        assert err.count("\n") == 1 and "not UTF-8" in err and "SIP 400" in err, err
        assert "Traceback" not in err


def test_a_directory_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = run(["sdp", "classify", str(tmp_path)], capsys)
    assert (status, out) == (1, "") and err.count("\n") == 1 and "cannot read" in err


def test_classify(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["sdp", "classify", str(DATA / "chromium-offer-audio-video.sdp")], capsys)
    assert status == 0
    assert out.splitlines()[0] == "webrtc" and "(webrtc)" in out


def test_translate_to_webrtc_offers_the_browser_one_audio_stream(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.sdp.test_translate import SAME_AUDIO_TWICE

    offer = tmp_path / "sbc-offer.sdp"
    offer.write_text(SAME_AUDIO_TWICE)
    status, out, _ = run(["sdp", "translate", "--to", "webrtc", str(offer)], capsys)
    assert status == 0
    lines = [line for line in out.splitlines() if line.startswith("m=audio")]
    assert len(lines) == 3 and lines[0].startswith("m=audio 0 ") and lines[2].startswith("m=audio 0 ")
    assert not lines[1].startswith("m=audio 0 ") and "a=group:BUNDLE 1" in out


def test_translate_video_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    """--video-port gives the SIP side the browser's video on its own port; --video bundles a SIP
    phone's video for the browser (issue 19)."""
    chromium = str(DATA / "chromium-offer-audio-video.sdp")
    status, out, _ = run(
        ["sdp", "translate", "--to", "sip", chromium, "--port", "44000", "--video-port", "44002"], capsys
    )
    plain = sdp.parse(out)
    assert status == 0 and [(m.media, m.port) for m in plain.media] == [("audio", 44000), ("video", 44002)]
    status, out, _ = run(
        ["sdp", "translate", "--to", "webrtc", str(DATA / "baresip-offer-video.sdp"), "--video"], capsys
    )
    web = sdp.parse(out)
    assert status == 0 and web.bundle_mids() == ("0", "1") and not web.media[1].rejected
