"""`healthcheck [-c FILE] [--timeout S]`: ask the running gateway's /healthz where its config serves it.

The URL comes from the config (`http.host`, `http.port`, `http.tls`, with the `GATEWAY_*` overrides, as
`run` reads them): https when `http.tls` is set, the loopback address when the host is a wildcard. Exit
0 on 200, else 1 with the reason on stderr. The certificate is not verified: it names the public host,
and the check is of the process on this host, not of the certificate (`check` does that). No proxy
from the environment is used.

The container's HEALTHCHECK runs it as `python -m gateway.cli_healthcheck` (Dockerfile, and
deploy/compose.yaml for podman's OCI images, which drop HEALTHCHECK): that loads the config's reader
only, not the media stack that the whole command line imports, every 15 seconds.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Final, TextIO

from gateway.config import ConfigError, ConfigFileError
from gateway.config.loader import load_config
from gateway.config.schema import HttpSection

DEFAULT_TIMEOUT: Final = 2.0
# A wildcard listener is reached on this host's loopback address of the same family.
_LOOPBACK: Final = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.cli import default_config_path

    parser = subparsers.add_parser(
        "healthcheck",
        help="ask the running gateway's /healthz at the port and scheme of its config (exit 0 if healthy)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser, default_config_path())


def _add_arguments(parser: argparse.ArgumentParser, default_config: str) -> None:
    parser.add_argument("-c", "--config", default=default_config, help="config file (default: %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait (default: %(default)s)"
    )


def healthz_url(http: HttpSection) -> str:
    """Where the gateway configured by `http` answers /healthz, seen from this host."""
    host = _LOOPBACK.get(http.host, http.host)
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if http.tls is not None else "http"
    return f"{scheme}://{host}:{http.port}/healthz"


def probe(url: str, timeout: float) -> str | None:
    """None when `url` answers 200, else what went wrong."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if url.startswith("https:"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"no answer: {reason}"
    return None if status == 200 else f"HTTP {status}"


def healthcheck(path: str, env: Mapping[str, str], timeout: float, out: TextIO, err: TextIO) -> int:
    try:
        config = load_config(path, env)
    except ConfigFileError as exc:  # "gateway.yaml: no such file", not an invalid configuration
        print(*exc.errors, "(cannot tell where /healthz is served)", file=err)
        return 1
    except ConfigError as exc:
        print(f"{path}: invalid configuration, cannot tell where /healthz is served", file=err)
        for error in exc.errors:
            print(f"  {error}", file=err)
        return 1
    url = healthz_url(config.http)
    problem = probe(url, timeout)
    if problem is not None:
        print(f"{url}: unhealthy: {problem}", file=err)
        return 1
    print(f"{url}: healthy", file=out)
    return 0


def run(args: argparse.Namespace) -> int:
    return healthcheck(args.config, os.environ, args.timeout, sys.stdout, sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m gateway.cli_healthcheck`: the subcommand without the rest of the command line."""
    parser = argparse.ArgumentParser(prog="python -m gateway.cli_healthcheck", description=__doc__)
    # gateway.cli.default_config_path's rule: importing gateway.cli would load every subcommand
    _add_arguments(parser, os.environ.get("GATEWAY_CONFIG", "gateway.yaml"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
