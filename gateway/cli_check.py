"""`check [-c FILE]`: validate a config and summarise it; `hash-secret`: hash a web login secret.

`check` prints what the gateway would use (addresses, RTP range, codecs, PBX, users, which secrets
are set, never their values) and exits 0, or lists every problem on stderr and exits 1. A config that
listens beyond loopback with demo secrets, no session_secret or an open /metrics is refused
(gateway/config/exposure.py) unless `--insecure-lab` is given.
`hash-secret` reads a secret from stdin (or prompts twice on a terminal) and prints the hash string
for `users[].web_secret_hash` in gateway.yaml.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping
from typing import TextIO
from urllib.parse import urlsplit

from gateway.config import Codec, Config, ConfigError, ConfigFileError, HostPort, PbxSection
from gateway.config.cluster import ClusterSection
from gateway.config.exposure import OVERRIDE, refusal
from gateway.config.loader import iter_secrets, load_config_and_overrides
from gateway.identity.passwords import HashAlgorithm, hash_secret
from gateway.identity.store import web_users_from_config
from gateway.tls import ServerTls, TlsError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.cli import default_config_path

    check = subparsers.add_parser(
        "check", help="validate a config file and summarise it", description=run.__doc__
    )
    check.add_argument(
        "-c", "--config", default=default_config_path(), help="config file (default: %(default)s)"
    )
    check.add_argument(
        OVERRIDE,
        action="store_true",
        help="accept demo secrets, no session_secret and an open /metrics beyond loopback (labs only)",
    )
    hasher = subparsers.add_parser(
        "hash-secret",
        help="hash a web login secret for users[].web_secret_hash",
        description=run_hash_secret.__doc__,
    )
    hasher.add_argument(
        "--algorithm",
        choices=[a.value for a in HashAlgorithm],
        default=None,
        help="hash algorithm (default: scrypt where available, else pbkdf2_sha256)",
    )
    hasher.set_defaults(handler=run_hash_secret)


def run(args: argparse.Namespace) -> int:
    """Validate the config: print a summary and exit 0, or print every error and exit 1."""
    return check(args.config, os.environ, sys.stdout, sys.stderr, getattr(args, "insecure_lab", False))


def check(path: str, env: Mapping[str, str], out: TextIO, err: TextIO, insecure_lab: bool = False) -> int:
    try:
        config, overrides = load_config_and_overrides(path, env)
    except ConfigFileError as exc:  # "gateway.yaml: no such file", not an invalid configuration
        print(*exc.errors, sep="\n", file=err)
        return 1
    except ConfigError as exc:
        print(
            f"{path}: invalid configuration ({len(exc.errors)} problem{'s' if len(exc.errors) != 1 else ''})",
            file=err,
        )
        for error in exc.errors:
            print(f"  {error}", file=err)
        return 1
    if config.http.tls is not None:
        try:
            ServerTls(config.http.tls.certificate, config.http.tls.private_key)
        except TlsError as exc:
            print(f"{path}: invalid configuration (1 problem)", file=err)
            print(f"  http.tls: {exc}", file=err)
            return 1
    unsafe = refusal(config)
    if unsafe and not insecure_lab:
        print(f"{path}: refused: {unsafe[0]}", file=err)
        for line in unsafe[1:]:
            print(line, file=err)
        return 1
    if unsafe:
        print(f"{path}: WARNING ({OVERRIDE}): {unsafe[0]}", file=err)
        for line in unsafe[1:-2]:
            print(line, file=err)
    print(f"{path}: configuration OK", file=out)
    for label, text in [*environment(overrides), *summary(config)]:
        print(f"  {label + ':':<18} {text}", file=out)
    for text in warnings(config):
        print(f"{path}: warning: {text}", file=err)
    return 0


def environment(overrides: Mapping[str, str]) -> list[tuple[str, str]]:
    """(label, text) lines naming each setting a `GATEWAY_*` variable sets instead of the file (never
    its value: it may be a secret), or saying that none does."""
    if not overrides:
        return [("from environment", "nothing (no GATEWAY_* variable overrides the file)")]
    return [("from environment", f"{path} ({var}, not the file)") for path, var in sorted(overrides.items())]


def warnings(config: Config) -> list[str]:
    """What is valid but unsafe: a static TURN credential is the same for every browser, readable in
    any logged-in user's page, and never expires (use ice.turn: per-login credentials)."""
    return [
        f"ice.browser[{index}].credential is a static TURN credential handed to every browser; "
        "set ice.turn (TURN REST API shared secret, coturn use-auth-secret) for per-login credentials"
        for index, server in enumerate(config.ice.browser)
        if server.credential is not None
    ]


def _pbx_summary(pbx: PbxSection) -> str:
    """A PBX's address, transport, domain and registration, for `summary`."""
    if pbx.address is None:
        return "no address"
    proxy = f", outbound proxy {pbx.outbound_proxy}" if pbx.outbound_proxy else ""
    register = f"registration on, every {pbx.register_expiry} s" if pbx.register else "registration off"
    return f"{pbx.transport.value} {pbx.address}{proxy}, domain {pbx.effective_domain}, {register}"


def summary(config: Config) -> list[tuple[str, str]]:
    """(label, text) lines describing `config`; secrets appear only as set/not set and their source."""
    sip, media, pbx = config.sip, config.media, config.pbx
    lines = [
        (
            "SIP listen",
            ", ".join(f"{item.transport.value} {HostPort(item.host, item.port)}" for item in sip.listen),
        ),
        (
            "SIP public",
            str(sip.public_address) if sip.public_address else "not set (Via/Contact use the listen address)",
        ),
        (
            "media public IP",
            ", ".join(str(address) for address in media.public_address)
            if media.public_address
            else "not set (SDP c= lines carry the local address: set it behind NAT)",
        ),
        (
            "RTP ports",
            f"{media.rtp_ports.start}-{media.rtp_ports.end} ({media.rtp_ports.pairs} RTP/RTCP pairs)"
            + (" for all media, the browsers' ICE too" if media.web_ports is None else ""),
        ),
        *(
            [("web media ports", f"{media.web_ports.start}-{media.web_ports.end} (browsers' ICE)")]
            if media.web_ports is not None
            else []
        ),
        ("RTP inactivity", f"hang up after {media.inactivity_timeout:g} s without RTP"),
        (
            "browser loss",
            f"reported after {media.loss_detect:g} s without its RTP (the phone hears a fill)"
            if media.loss_detect
            else "not reported (media.loss_detect 0: the phone hears dead air)",
        ),
        ("media fast lane", _fast_lane(media.fast_path)),
        (
            "call timeouts",
            f"PBX unreachable after {config.calls.setup_timeout:g} s, ring out "
            f"{config.calls.outbound_ring_timeout:g} s, ring in {config.calls.inbound_ring_timeout:g} s",
        ),
    ]
    event = " + telephone-event" if config.codecs.telephone_event else ""
    lines.append(("codecs SIP leg", ", ".join(c.value for c in config.codecs.sip) + event))
    lines.append(("codecs WebRTC leg", ", ".join(c.value for c in config.codecs.webrtc) + event))
    lines.append(("G.729", _g729(Codec.G729 in config.codecs.sip)))
    video = ", ".join(c.value for c in config.codecs.video)
    lines.append(("codecs video", video or "none (audio only: a browser's video is turned down)"))
    lines.append(("DTMF on SIP leg", sip.dtmf_mode.value))
    for label, servers in (("ICE for browsers", config.ice.browser), ("ICE for gateway", config.ice.gateway)):
        lines.append((label, ", ".join(url for s in servers for url in s.urls) or "none"))
    if config.ice.turn is not None:
        turn = config.ice.turn
        lines.append(("TURN REST", f"{', '.join(turn.urls)}, credentials per login live {turn.ttl} s"))
    if pbx.address is None:
        lines.append(("PBX", "none (outbound calls are impossible)"))
    else:
        lines.append(("PBX", _pbx_summary(pbx)))
    for name, entry in config.pbxs.items():  # several PBXs (config/pbxs.py)
        users = sum(1 for user in web_users_from_config(config) if user.pbx == name)
        lines.append((f"PBX {name}", f"{_pbx_summary(entry)}; {users} users"))
    if config.tenants:
        lines.append(("tenants", ", ".join(sorted(config.tenants))))
    lines.append(("trusted sources", ", ".join(str(n) for n in sip.trusted_sources) or "none (only the PBX)"))
    http = config.http
    if http.tls is None:
        lines.append(
            (
                "HTTP/WebSocket",
                f"http {http.host}:{http.port} (browsers give the microphone to localhost only)",
            )
        )
    else:
        redirect = f", plain HTTP on {http.tls.redirect_port} redirects" if http.tls.redirect_port else ""
        lines.append(
            ("HTTPS/WSS", f"https {http.host}:{http.port}, certificate {http.tls.certificate}{redirect}")
        )
    if http.allowed_origins or http.public_origins:
        own = ", ".join(http.public_origins) or "own"
        lines.append(("WebSocket origins", ", ".join([own, *http.allowed_origins])))
    lines.append(
        ("web auth", f"{config.web_auth.mode.value}, session tokens live {config.web_auth.token_ttl} s")
    )
    ids = ", ".join(user.id for user in config.users)
    lines.append(("users", f"{len(config.users)}" + (f" ({ids})" if ids else "")))
    lines.append(("logging", f"{config.logging.level.value} as {config.logging.format.value}"))
    lines.append(("cluster", _cluster(config.cluster)))
    for path, secret in iter_secrets(config):
        # Unset per-user secrets are the normal case (e.g. web_token in secret mode): list only set ones.
        if secret is not None:
            lines.append((f"secret {path}", f"set ({secret.describe()})"))
        elif not path.startswith("users["):
            lines.append((f"secret {path}", "not set"))
    hashed = sum(1 for user in config.users if user.web_secret_hash is not None)
    lines.append(("login hashes", f"{hashed} of {len(config.users)} users have web_secret_hash"))
    return lines


def run_hash_secret(args: argparse.Namespace) -> int:
    """Read a secret (stdin, or prompted twice on a terminal) and print its hash for gateway.yaml."""
    algorithm = HashAlgorithm(args.algorithm) if getattr(args, "algorithm", None) else None
    return hash_secret_command(sys.stdin, sys.stdout, sys.stderr, algorithm)


def hash_secret_command(
    stdin: TextIO, out: TextIO, err: TextIO, algorithm: HashAlgorithm | None = None
) -> int:
    if stdin.isatty():
        secret = getpass.getpass("secret: ")
        if getpass.getpass("again: ") != secret:
            print("hash-secret: the two entries differ", file=err)
            return 1
    else:
        secret = stdin.readline().rstrip("\r\n")
    if not secret:
        print("hash-secret: empty secret", file=err)
        return 1
    print(str(hash_secret(secret, algorithm)), file=out)
    return 0


def _cluster(cluster: ClusterSection | None) -> str:
    """The cluster section in one line; a Redis URL without its credentials."""
    if cluster is None:
        return "off (one instance, state in memory)"
    if cluster.redis is not None:
        url = urlsplit(cluster.redis)
        host = url.hostname or ""
        where = f"redis {url.scheme}://{f'[{host}]' if ':' in host else host}:{url.port or 6379}{url.path}"
    else:
        assert cluster.sentinel is not None  # ClusterSection checks one of the two is given
        addresses = ", ".join(str(a) for a in cluster.sentinel.addresses)
        where = f"sentinel {addresses}, service {cluster.sentinel.service}"
    return (
        f"instance {cluster.instance_id}, advertised as sip {cluster.advertise.sip}, {cluster.advertise.http}; "
        f"{where}, keys {cluster.key_prefix}*, heartbeat {cluster.heartbeat:g} s, lease {cluster.lease:g} s"
    )


def _g729(listed: bool) -> str:
    """Whether G.729 can be offered on the SIP leg: libbcg729 loads (gateway/media/codecs/g729.py)."""
    from gateway.media.codecs import g729

    where = g729.library_path()
    if where is not None:
        return f"available ({where})" + ("" if listed else "; add G729 to codecs.sip to offer it")
    return "not available: install libbcg729-0" + ("; G729 in codecs.sip is not offered" if listed else "")


def _fast_lane(wanted: bool) -> str:
    from gateway.media import fastlane
    from gateway.media.fastlane import native

    if not wanted:
        return "off (media.fast_path: false)"
    if not fastlane.available():
        return "wanted, but the extension is not built (Python path)"
    stale = native.stale_sources()
    return f"on, but built before {', '.join(stale)} changed: rebuild it (make)" if stale else "on"
