"""`sip-webrtc-gateway run [-c FILE]`: load the config and serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from gateway.app import serve
from gateway.config import ConfigError
from gateway.config.loader import load_config
from gateway.logs import configure_logging
from gateway.tls import TlsError

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.cli import default_config_path

    parser = subparsers.add_parser("run", help="run the gateway", description=__doc__)
    parser.add_argument(
        "-c", "--config", default=default_config_path(), help="config file (default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.config}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    configure_logging(config.logging.level, config.logging.format)
    logger.info("configuration loaded from %s", args.config)
    try:
        asyncio.run(serve(config))
    except TlsError as exc:
        logger.error("cannot start: http.tls: %s", exc)
        return 1
    except OSError as exc:  # typically a listen address already in use
        logger.error("cannot start: %s", exc)
        return 1
    return 0
