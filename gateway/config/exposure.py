"""Safe defaults: what `check` and `run` refuse when a listener is reachable from beyond this machine.

The shipped gateway.yaml is a demo: its users' login secrets are published (alice-demo, bob-demo), it
sets no `web_auth.session_secret` and leaves `/metrics` open. That is harmless while every listener is on
loopback (127.0.0.0/8, ::1, localhost); once one binds further (0.0.0.0, a LAN address, a host name) it
is a set of public passwords (and a cluster secret written in the file is one too). `exposure_problems`
names each such setting; the CLIs refuse to start
unless the operator passes `--insecure-lab` (a throwaway lab), which is then logged as a warning.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Final

from gateway.config.schema import Config
from gateway.config.secret import SecretSource

# The published secrets of the shipped demo users (gateway.yaml, README, peers/demo.py)
DEMO_SECRETS: Final = ("alice-demo", "bob-demo")
OVERRIDE: Final = "--insecure-lab"


def is_loopback(host: str) -> bool:
    """Whether `host` (an IP address or a name) can only be reached from this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def listeners(config: Config) -> Iterator[tuple[str, str, int]]:
    """(what, host, port) of every listening socket the config opens."""
    for index, item in enumerate(config.sip.listen):
        yield f"sip.listen[{index}] ({item.transport.value})", item.host, item.port
    http = config.http
    yield "http", http.host, http.port
    if http.tls is not None and http.tls.redirect_port is not None:
        yield "http.tls.redirect_port", http.host, http.tls.redirect_port
    websocket = config.sip.websocket
    if websocket is not None and websocket.listen is not None:
        yield "sip.websocket.listen", websocket.listen.host, websocket.listen.port
    metrics = config.metrics
    if metrics.enabled and metrics.listen is not None:
        yield "metrics.listen", metrics.listen.host, metrics.listen.port or 0


def exposed(config: Config) -> list[str]:
    """The listeners beyond loopback, as `what host:port`."""
    return [f"{what} {host}:{port}" for what, host, port in listeners(config) if not is_loopback(host)]


def _demo_secrets(config: Config) -> Iterator[str]:
    for index, user in enumerate(config.users):
        where = f"users[{index}] ({user.id})"
        digest = user.web_secret_hash
        if digest is not None and any(digest.verify(secret) for secret in DEMO_SECRETS):
            yield f"{where}.web_secret_hash: is a demo secret published in the README"
        if user.web_token is not None and user.web_token.reveal() in DEMO_SECRETS:
            yield f"{where}.web_token: is a demo secret published in the README"
        for number, key in enumerate(user.api_keys):
            if key.key.reveal() in DEMO_SECRETS:
                yield f"{where}.api_keys[{number}].key: is a demo secret published in the README"


def exposure_problems(config: Config) -> list[str]:
    """The settings unsafe beyond loopback (empty when every listener is on loopback)."""
    if not exposed(config):
        return []
    problems = list(_demo_secrets(config))
    if config.web_auth.session_secret is None:
        problems.append(
            "web_auth.session_secret: not set (set it from the environment: "
            "{env: GATEWAY_WEB_SESSION_SECRET}, at least 16 random bytes)"
        )
    cluster = config.cluster
    if cluster is not None and cluster.secret.source is SecretSource.INLINE:
        problems.append(
            "cluster.secret: written in the file "
            "(read it from the environment: {env: GATEWAY_CLUSTER_SECRET})"
        )
    metrics = config.metrics
    where = metrics.listen.host if metrics.listen is not None else config.http.host
    if metrics.enabled and metrics.token is None and not is_loopback(where):
        problems.append(
            f"metrics.token: not set, so /metrics is open to whoever reaches {where} "
            "(set metrics.token, or metrics.listen on 127.0.0.1, or metrics.enabled: false)"
        )
    return problems


def refusal(config: Config) -> list[str]:
    """The lines `check`/`run` print when they refuse `config`, or [] when it is safe to serve."""
    problems = exposure_problems(config)
    if not problems:
        return []
    return [
        f"unsafe to listen beyond loopback ({', '.join(exposed(config))}) with "
        f"{len(problems)} insecure setting{'s' if len(problems) != 1 else ''}:",
        *(f"  {problem}" for problem in problems),
        "  fix them, or listen on 127.0.0.1 only; in a container, mount your own gateway.yaml over "
        "/etc/sip-webrtc-gateway/gateway.yaml;",
        f"  for a throwaway lab only: {OVERRIDE} (serves these settings anyway, with a warning)",
    ]
