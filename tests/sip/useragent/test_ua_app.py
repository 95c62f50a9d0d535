"""The gateway starts its SIP user agent from the configuration: the users with PBX credentials
register at the PBX (here sipp's verifyauth registrar), /healthz details report the states, and
closing the gateway closes the user agent."""

from __future__ import annotations

import socket
from pathlib import Path

from gateway.app import Gateway
from gateway.config.loader import config_from_mapping
from peers.binaries import require_binary
from peers.ports import free_port
from peers.sipp import Sipp
from sipcore import RegState
from tests.sip.useragent.test_ua_registration import HASH


async def test_gateway_registers_its_users_and_reports_them(tmp_path: Path) -> None:
    require_binary("sipp")
    async with Sipp(tmp_path, "uas_registrar_auth", inf=[["1001", "pw1"]]) as registrar:
        config = config_from_mapping(
            {
                "sip": {
                    "listen": [
                        {"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}
                    ]
                },
                "pbx": {"address": registrar.address, "register": True, "domain": "127.0.0.1"},
                "http": {"host": "127.0.0.1", "port": free_port()},
                "users": [
                    {
                        "id": "alice",
                        "sip": "1001",
                        "pbx_auth": {"username": "1001", "password": "pw1"},
                        **HASH,
                    },
                    {"id": "bob", "sip": "1002", **HASH},
                ],
                "state_dir": str(tmp_path / "state"),
            },
            {},
        )
        gateway = Gateway(config)
        try:
            await gateway.start()
            assert gateway.sip is not None
            await gateway.sip.registrations.wait_for("sip:1001@127.0.0.1", RegState.REGISTERED)
            assert gateway._health_details()["sip"] == {"registrations": {"sip:1001@127.0.0.1": "registered"}}
        finally:
            await gateway.close()
        assert gateway.sip.state.name == "CLOSED"
        assert "REGISTER sip:127.0.0.1" in (await registrar.wait(10)).messages
