"""The `sip-webrtc-gateway` command line: run, check, init, sdp, dev-cert, healthcheck.

Each subcommand lives in its own module exposing `add_parser(subparsers)` and `run(args) -> int`;
this module only assembles them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from gateway import __version__, cli_check, cli_devcert, cli_healthcheck, cli_init, cli_run, cli_sdp

DEFAULT_CONFIG = "gateway.yaml"


class _Subcommand(Protocol):
    def add_parser(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def default_config_path() -> str:
    """The config file used when `-c` is not given: $GATEWAY_CONFIG, else ./gateway.yaml."""
    return os.environ.get("GATEWAY_CONFIG", DEFAULT_CONFIG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sip-webrtc-gateway",
        description="SIP-to-WebRTC gateway: browser softphones reach PBXs, SIP phones reach web users.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules: Sequence[_Subcommand] = (cli_run, cli_check, cli_init, cli_sdp, cli_devcert, cli_healthcheck)
    for module in modules:
        before = set(subparsers.choices)
        module.add_parser(subparsers)
        # Each command a module added dispatches to that module's run(), unless it chose its own handler.
        for name in set(subparsers.choices) - before:
            command_parser = subparsers.choices[name]
            if command_parser.get_default("handler") is None:
                command_parser.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    try:
        result: int = handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `sip-webrtc-gateway sdp translate x | head`: the reader went away, which is not an error.
        sys.stderr.close()
        return 0
    return result
