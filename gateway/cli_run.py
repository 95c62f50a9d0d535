"""`sip-webrtc-gateway run [-c FILE] [--ready-file PATH]`: load the config and serve until SIGINT/SIGTERM.

Once every listener is open it logs where to point a browser ("open http://..."; on a wildcard address
with HTTPS, the names the certificate holds, since https://0.0.0.0/ fails the certificate's name check;
without HTTPS, 127.0.0.1), writes the first of those URLs and how to log in (a demo user's published
secret while it is in effect, else where the secrets are) to `--ready-file` (scripts/demo waits for it
and prints both) and tells systemd READY=1 when run as a Type=notify service.
A listener that cannot open is one line naming it ("SIP udp 127.0.0.1:5060: address already in use")
and exit status 1, never a traceback. Listening beyond loopback with demo secrets, no session_secret
or an open /metrics, it refuses to start (gateway/config/exposure.py) unless `--insecure-lab` is given.
SIGHUP reloads users, routes and certificates (gateway/reload.py).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import Config, ConfigError, ConfigFileError, WebAuthMode
from gateway.config.exposure import DEMO_SECRETS, OVERRIDE, refusal
from gateway.config.loader import load_config
from gateway.listen import ListenError
from gateway.logs import configure_logging
from gateway.state_dir import StateDirError
from gateway.tls import TlsError, certificate_names

if TYPE_CHECKING:
    from gateway.app import Gateway

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.cli import default_config_path

    parser = subparsers.add_parser("run", help="run the gateway", description=__doc__)
    parser.add_argument(
        "-c", "--config", default=default_config_path(), help="config file (default: %(default)s)"
    )
    parser.add_argument(
        OVERRIDE,
        action="store_true",
        help="serve demo secrets, no session_secret and an open /metrics beyond loopback (labs only)",
    )
    parser.add_argument(
        "--ready-file", help="write the page's URL to this file once the gateway listens (for scripts)"
    )


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) `state`, e.g. READY=1; nothing when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        logger.warning("cannot notify systemd (%s): %s", state, exc)


_WILDCARDS = ("0.0.0.0", "[::]")


def browser_urls(listening: str, certificate: str | Path | None) -> list[str]:
    """Where a browser can open the page served on ``listening`` (scheme://host:port): the certificate's
    names (subjectAltName) with HTTPS, 127.0.0.1 without, when the host is a wildcard; else itself."""
    scheme, _, rest = listening.partition("://")
    host, _, port = rest.rpartition(":")
    if host not in _WILDCARDS:
        return [listening + "/"]
    if certificate is None:
        return [f"{scheme}://127.0.0.1:{port}/"]
    names = [f"[{n}]" if ":" in n else n for n in certificate_names(certificate) if not n.startswith("*")]
    return [f"{scheme}://{name}:{port}/" for name in names] or [listening + "/"]


def login_hint(config: Config, config_path: str) -> str:
    """How to log in to the page, as the demo's banner says it ("log in as alice / alice-demo"): a demo
    user's published secret only while it is in effect, else where the secrets are set."""
    token = config.web_auth.mode is WebAuthMode.TOKEN
    for user in config.users:
        for secret in DEMO_SECRETS:
            if token:
                published = user.web_token is not None and user.web_token.reveal() == secret
            else:
                published = user.web_secret_hash is not None and user.web_secret_hash.verify(secret)
            if published:
                return f"log in as {user.id} / {secret}"
    field = "web_token" if token else "web_secret_hash"
    ids = [user.id for user in config.users if getattr(user, field) is not None]
    if not ids:
        return f"no user can log in yet: give one a {field} in {config_path}'s users"
    others = f" (or {', '.join(ids[1:])})" if ids[1:] else ""
    what = "token set in" if token else "secret whose hash is"
    return f"log in as {ids[0]}{others} with the {what} its {field} in {config_path}"


def _ready(gateway: Gateway, ready_file: str | None, config_path: str) -> None:
    tls = gateway.config.http.tls
    first, *others = browser_urls(gateway.http_url, tls.certificate if tls is not None else None)
    where = first + (f" (or {', '.join(others)})" if others else "")
    listeners = gateway.sip.layer.transports if gateway.sip is not None else []
    # each listener by its own transport (the TLS one was named after listen[0], "udp": issue 33)
    hosts = [(t.name.lower(), *t.local) for t in listeners]
    sip = ", ".join(f"{name} {f'[{h}]' if ':' in h else h}:{p}" for name, h, p in hosts)
    logger.info("gateway ready: open %s in a browser; SIP on %s", where, sip or "no listener")
    if ready_file is not None:
        # a URL a browser opens (never https://0.0.0.0/, which no certificate holds: issue 67 item 10)
        hint = login_hint(gateway.config, config_path)
        Path(ready_file).write_text(f"{first}\n{hint}\n", encoding="utf-8")
    sd_notify("READY=1")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, os.environ)
    except ConfigFileError as exc:  # "gateway.yaml: no such file", not an invalid configuration
        print(*exc.errors, sep="\n", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.config}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    unsafe = refusal(config)
    insecure_lab = getattr(args, "insecure_lab", False)
    if unsafe and not insecure_lab:
        print(f"{args.config}: refusing to start: {unsafe[0]}", file=sys.stderr)
        for line in unsafe[1:]:
            print(line, file=sys.stderr)
        return 1
    # formatted and written by a thread of their own: the event loop never waits on the terminal or disk
    writer = configure_logging(config.logging.level, config.logging.format, queued=True)
    atexit.register(writer.stop)  # what is queued is written whichever way the process ends
    logger.info("configuration loaded from %s", args.config)
    for line in unsafe[:-2]:
        logger.warning("INSECURE LAB (%s): %s", OVERRIDE, line.strip())
    ready_file = getattr(args, "ready_file", None)
    # Imported here: the whole gateway (aiortc, aiohttp...) is a second of CPU that `check`, `init`, `sdp`,
    # `dev-cert` and `healthcheck` never need, and `gateway.cli` imports every subcommand's module.
    from gateway.app import serve

    try:
        asyncio.run(
            serve(
                config,
                config_path=args.config,
                on_ready=lambda gateway: _ready(gateway, ready_file, args.config),
            )
        )
    except TlsError as exc:
        logger.error("cannot start: http.tls: %s", exc)
        return 1
    except (ListenError, StateDirError) as exc:  # "SIP udp 127.0.0.1:5060: address already in use"
        logger.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        logger.error("cannot start: %s", exc.strerror or exc)
        return 1
    finally:
        sd_notify("STOPPING=1")
        # Everything is closed; what is left is the interpreter's exit, whose full collections walked the
        # whole heap (GcTuning.close() unfreezes it) 2-4 times: 0.3 s on a quiet machine after 20 calls,
        # 2-3.3 s at load 6-9, doubling the stop. Frozen objects are skipped by those walks (and are freed
        # with the process anyway).
        gc.freeze()
        writer.stop()
    return 0
