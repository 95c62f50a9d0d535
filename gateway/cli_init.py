"""`sip-webrtc-gateway init [PATH]`: write the sample configuration (the commented gateway.yaml shipped in
the package) to PATH (default: ./gateway.yaml), never over an existing file. Then edit it and check it
with `sip-webrtc-gateway check -c PATH`."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources

SAMPLE = "gateway.sample.yaml"


def sample_config() -> str:
    """The sample configuration shipped in the package (package data)."""
    return resources.files("gateway").joinpath(SAMPLE).read_text(encoding="utf-8")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("init", help="write a sample gateway.yaml", description=__doc__)
    parser.add_argument(
        "path", nargs="?", default="gateway.yaml", help="where to write it (default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    path: str = args.path
    try:
        # O_EXCL: refuse to overwrite, even a file created meanwhile; 0600: it will hold secrets
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"{path}: already exists; not overwritten (remove it or name another path)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{path}: cannot create: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(sample_config())
    print(f"wrote {path}: edit it (users, pbx, listen addresses), then: sip-webrtc-gateway check -c {path}")
    return 0
