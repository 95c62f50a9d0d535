"""`sip-webrtc-gateway dev-cert NAME... [--dir DIR]`: a local CA and a certificate for a LAN address.

Browsers give the microphone only to https pages (or localhost). This makes what a phone or laptop on
the LAN needs to use the gateway's page: trust dev-ca.pem there once, point http.tls at the printed
files, open https://NAME:PORT/.
"""

from __future__ import annotations

import argparse
import sys

from gateway.devcert import make_dev_certificates


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dev-cert", help="make a local CA and an HTTPS certificate for trying the gateway on a LAN",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "names", nargs="+", metavar="NAME", help="host name or IP address the browser will use"
    )
    parser.add_argument("--dir", default="dev-certs", help="where the files go (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    try:
        made = make_dev_certificates(args.dir, list(args.names))
    except (ValueError, OSError) as exc:
        print(f"dev-cert: {exc}", file=sys.stderr)
        return 1
    print(f"certificate for {', '.join(made.names)}, signed by the development CA {made.ca}")
    print("in gateway.yaml:")
    print("  http:")
    print("    tls:")
    print(f"      certificate: {made.certificate}")
    print(f"      private_key: {made.private_key}")
    print(
        f"then trust {made.ca} on each device (README: 'HTTPS on a LAN') and open https://{made.names[0]}:<port>/"
    )
    return 0
