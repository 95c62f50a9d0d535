"""The `sdp` admin command: translate or classify a session description from a file or stdin.

    sip-webrtc-gateway sdp translate --to sip offer.sdp --address 192.0.2.10 --port 40000
    sip-webrtc-gateway sdp translate --to webrtc - --ice-ufrag ... --ice-pwd ... --fingerprint "sha-256 AB:..."
    sip-webrtc-gateway sdp classify offer.sdp

Values not given on the command line are placeholders (documentation addresses, PLACEHOLDER
credentials, an all-zero fingerprint); a note on stderr lists them. Errors go to stderr with the
SIP status the gateway would answer with, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys

import sdp

PLACEHOLDER_ADDRESS = "192.0.2.1"  # RFC 5737 documentation address
PLACEHOLDER_PORT = 40000
PLACEHOLDER_UFRAG = "PLACEHOLDER"
PLACEHOLDER_PWD = "PLACEHOLDERPLACEHOLDER00"
PLACEHOLDER_FINGERPRINT = "sha-256 " + ":".join(["00"] * 32)
DEFAULT_SIP_CODECS = "PCMU,PCMA,G722,opus"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `sdp` command with its `translate` and `classify` subcommands."""
    parser = subparsers.add_parser(
        "sdp",
        help="translate or classify a session description (WebRTC <-> plain RTP)",
        description="Offline SDP tools: the same translations the gateway does between its two legs.",
    )
    commands = parser.add_subparsers(dest="sdp_command", metavar="SDP_COMMAND", required=True)

    translate = commands.add_parser(
        "translate",
        help="translate a description for the SIP leg or the web leg",
        description="Translate FILE ('-' for stdin). Values not given are placeholders, listed on stderr.",
    )
    translate.add_argument("file", metavar="FILE", help="session description file, or - for stdin")
    translate.add_argument("--to", choices=("sip", "webrtc"), required=True, help="the leg to translate for")
    plain = translate.add_argument_group("plain RTP side (--to sip)")
    plain.add_argument("--address", help=f"connection address (placeholder {PLACEHOLDER_ADDRESS})")
    plain.add_argument("--port", type=int, help=f"RTP port; RTCP is port+1 (placeholder {PLACEHOLDER_PORT})")
    plain.add_argument(
        "--video-port", type=int, help="the video's RTP port (a video m-line goes to the SIP side too)"
    )
    web = translate.add_argument_group("WebRTC side (--to webrtc)")
    web.add_argument("--ice-ufrag", help=f"ICE username fragment (placeholder {PLACEHOLDER_UFRAG})")
    web.add_argument("--ice-pwd", help=f"ICE password (placeholder {PLACEHOLDER_PWD})")
    web.add_argument(
        "--fingerprint",
        action="append",
        help="DTLS fingerprint 'sha-256 AB:CD:...', repeatable (placeholder: all zeros)",
    )
    web.add_argument(
        "--setup",
        choices=[s.value for s in sdp.Setup],
        default=sdp.Setup.ACTPASS.value,
        help="DTLS role (default actpass, for an offer; an answer says active or passive)",
    )
    web.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="ICE candidate 'candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host', repeatable",
    )
    web.add_argument("--end-of-candidates", action="store_true", help="add a=end-of-candidates")
    web.add_argument("--no-trickle", action="store_true", help="omit a=ice-options:trickle")
    web.add_argument("--video", action="store_true", help="keep a video m-line too, bundled with the audio")
    translate.add_argument(
        "--codecs",
        help=f"allowed codecs, comma-separated NAME[/rate[/channels]] (default for sip: {DEFAULT_SIP_CODECS};"
        " for webrtc: all offered)",
    )

    classify = commands.add_parser("classify", help="tell the kind of a description (webrtc, plain-rtp, ...)")
    classify.add_argument("file", metavar="FILE", help="session description file, or - for stdin")


def run(args: argparse.Namespace) -> int:
    """Run `sdp translate` or `sdp classify`; 0 on success, 1 with a message on stderr otherwise."""
    try:
        text = _read(args.file)
    except OSError as exc:
        print(f"sdp: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        description = sdp.parse(text)
        if args.sdp_command == "classify":
            _print_kinds(description)
            return 0
        result, placeholders = _translate(description, args)
    except sdp.SdpError as exc:
        print(f"sdp: error (SIP {exc.sip_status}): {exc}", file=sys.stderr)
        return 1
    if placeholders:
        print(
            f"sdp: note: placeholder values used for {', '.join(placeholders)}; pass them for real use",
            file=sys.stderr,
        )
    sys.stdout.write(sdp.write(result))
    return 0


def _read(path: str) -> bytes:
    """The raw bytes: ``sdp.parse`` decodes them and names a bad encoding (SdpParseError, SIP 400)."""
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _print_kinds(description: sdp.SessionDescription) -> None:
    print(sdp.classify(description).value)
    for index, media in enumerate(description.media):
        state = "rejected" if media.rejected else sdp.classify_media(description, index).value
        print(f"  m={media.m_line[:72]}  ({state})")


def _codecs(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def _translate(
    description: sdp.SessionDescription, args: argparse.Namespace
) -> tuple[sdp.SessionDescription, list[str]]:
    placeholders: list[str] = []

    def given(value: object, name: str, placeholder: object) -> object:
        if value is None:
            placeholders.append(name)
            return placeholder
        return value

    if args.to == "sip":
        address = str(given(args.address, "--address", PLACEHOLDER_ADDRESS))
        port = int(str(given(args.port, "--port", PLACEHOLDER_PORT)))
        codecs = _codecs(args.codecs) or _codecs(DEFAULT_SIP_CODECS) or []
        plain = sdp.to_plain(
            description, address=address, port=port, codecs=codecs, video_port=args.video_port
        )
        return plain, placeholders
    ice = sdp.IceParameters(
        str(given(args.ice_ufrag, "--ice-ufrag", PLACEHOLDER_UFRAG)),
        str(given(args.ice_pwd, "--ice-pwd", PLACEHOLDER_PWD)),
    )
    texts = args.fingerprint or [str(given(None, "--fingerprint", PLACEHOLDER_FINGERPRINT))]
    dtls = sdp.DtlsParameters(tuple(sdp.Fingerprint.parse(t) for t in texts), sdp.Setup(args.setup))
    candidates = [sdp.Candidate.parse(c) for c in args.candidate]
    result = sdp.to_webrtc(
        description,
        ice=ice,
        dtls=dtls,
        candidates=candidates,
        end_of_candidates=args.end_of_candidates,
        trickle=not args.no_trickle,
        codecs=_codecs(args.codecs),
        media=("audio", "video") if args.video else ("audio",),
    )
    return result, placeholders
