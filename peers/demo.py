"""The demo's gateway for the examples and benchmarks: gateway.yaml's demo user alice (sip 1001, secret
alice-demo) with a desk phone as its PBX, on free ports of 127.0.0.1.

    config = demo_config(phone_port)                  # pbx.address = the desk phone
    gateway = Gateway(config); await gateway.start()

    async with running_demo() as (gateway, phone):    # the same, with the desk phone 2000 running
        ...
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.app import Gateway
from gateway.config import Config
from gateway.config.loader import config_from_mapping
from peers.binaries import unavailable
from peers.phone import DeskPhone
from peers.ports import free_port, free_range

__all__ = ["ALICE_HASH", "ALICE_SECRET", "demo_config", "require_desk_phone", "running_demo"]

# gateway.yaml's demo user: alice / alice-demo (sip 1001).
ALICE_SECRET = "alice-demo"
ALICE_HASH = "scrypt$16384$8$1$3NC6hA5nutew8BgmMtbYGw==$HcvwtRnaZ2T6ULpMGMVb4QufY1XJj5LG1OAvmW9nQdA="


def require_desk_phone() -> None:
    """pjsua2 (the desk phone's SIP stack) or a clear stop: under pytest a skip (a failure under
    CI=true), elsewhere an exit with the install command. It comes with the project's `test` and
    `demo` extras (`make test` or `make run` install it)."""
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        unavailable("pjsua2 is not installed, the desk phone needs it: .venv/bin/pip install -e '.[test]'")


def demo_config(phone_port: int) -> Config:
    """The demo's gateway (alice = 1001, the desk phone as PBX) on free ports of 127.0.0.1."""
    rtp = free_range()
    return config_from_mapping(
        {
            "sip": {
                "listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}],
                "trusted_sources": ["127.0.0.1/32"],
            },
            "media": {"rtp_ports": {"start": rtp, "end": rtp + 99}},
            "pbx": {"address": f"127.0.0.1:{phone_port}", "domain": "127.0.0.1"},
            "http": {"host": "127.0.0.1", "port": free_port()},
            "users": [
                {
                    "id": "alice",
                    "display_name": "Alice",
                    "sip": "1001",
                    "allow_outbound": ["."],
                    "web_secret_hash": ALICE_HASH,
                    "default_dial": "2000",  # API clients naming no destination call the desk phone
                }
            ],
            "logging": {"level": "WARNING"},
            # the demo's session key: logins survive a restart of the demo
            "state_dir": str(Path(tempfile.gettempdir()) / "sip-webrtc-gateway-demo-state"),
        },
        {},
    )


@contextlib.asynccontextmanager
async def running_demo(tone: float = 440) -> AsyncIterator[tuple[Gateway, DeskPhone]]:
    """`make run`'s demo in this process: the desk phone 2000 (pjsua2, plays `tone` Hz) and a gateway
    whose PBX it is; both stopped on the way out, the gateway first."""
    require_desk_phone()
    phone = await DeskPhone(user="2000", tone=tone).start()
    try:
        gateway = Gateway(demo_config(phone.port))
        try:
            await gateway.start()
            yield gateway, phone
        finally:
            await gateway.close()
    finally:
        await phone.close()
