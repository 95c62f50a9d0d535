"""The registration client of the user agent: against sipp's verifyauth registrar (digest checked
by sipp), with a wrong password, with an unreachable registrar (retry with backoff), and the
unregistration on close; plus the registrations the identity map's users give."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

from gateway.config.loader import config_from_mapping
from gateway.identity import InMemoryPresence
from gateway.identity.lookup import identity_map_from_config
from gateway.sip.useragent.registrar_client import (
    RegistrationChanged,
    RegistrationSpec,
    registrations_for_users,
)
from gateway.sip.useragent.ua import Listen, UASettings, UserAgent
from peers.binaries import require_binary
from peers.ports import free_port
from peers.sipp import Sipp
from sipcore.registration import RegState
from sipcore.syntax.uri import SipURI
from tests.sip.ua_helpers import FAST, ChallengingUAS, running_ua

USERS = [["gateway", "gatewaysecret"]]
HASH = {
    "web_secret_hash": "scrypt$16384$8$1$3NC6hA5nutew8BgmMtbYGw==$HcvwtRnaZ2T6ULpMGMVb4QufY1XJj5LG1OAvmW9nQdA="
}


def spec(
    port: int, password: str = "gatewaysecret", expires: int = 300, **options: float
) -> RegistrationSpec:
    return RegistrationSpec(
        SipURI("127.0.0.1", "gateway", port=port),
        "gateway",
        password,
        expires=expires,
        **options,  # type: ignore[arg-type]
    )


async def test_register_with_digest_and_unregister_on_close(tmp_path: Path) -> None:
    require_binary("sipp")
    async with Sipp(tmp_path, "uas_registrar_auth", inf=USERS, calls=1) as registrar:
        changes: list[RegistrationChanged] = []
        settings = UASettings(timers=FAST, registrations=(spec(registrar.port),), unregister_timeout=0.3)
        ua = UserAgent(settings, on_registration=changes.append)
        await ua.start()
        aor = f"sip:gateway@127.0.0.1:{registrar.port}"
        try:
            state = await ua.registrations.wait_for(aor, RegState.REGISTERED, RegState.FAILED)
            assert state is RegState.REGISTERED
            assert ua.registration_states() == {aor: "registered"}
            registration = ua.registrations.registration(aor)
            assert registration.expires_at is not None and registration.last_status == 200
        finally:
            await ua.close()
        # sipp's registrar takes one Call-ID only: the REGISTER with expires=0 goes unanswered here
        # (the Kamailio test sees it answered), or fails at once on ICMP port unreachable when sipp has
        # already exited (RFC 3261 §18.4).
        assert [(c.old, c.new) for c in changes][:3] == [
            (RegState.UNREGISTERED, RegState.REGISTERING),
            (RegState.REGISTERING, RegState.REGISTERED),
            (RegState.REGISTERED, RegState.UNREGISTERING),
        ]
        assert [(c.old, c.new) for c in changes][3:] in (
            [],
            [(RegState.UNREGISTERING, RegState.UNREGISTERED)],
        )
        result = await registrar.wait(10)  # not ok: sipp calls our REGISTER expires=0 unexpected
        assert result.count("SIP/2.0 401") == 1 and result.count("SIP/2.0 200") == 1
        assert 'username="gateway"' in result.messages
        assert "Expires: 0" in (registrar.workdir / "messages.log").read_text()


async def test_wrong_password_fails_without_looping(tmp_path: Path) -> None:
    require_binary("sipp")
    async with Sipp(tmp_path, "uas_registrar_auth", inf=USERS) as registrar:
        aor = f"sip:gateway@127.0.0.1:{registrar.port}"
        async with running_ua(
            registrations=(spec(registrar.port, "nope", retry_base=60),), unregister_timeout=0.2
        ) as ua:
            await ua.registrations.wait_for(aor, RegState.RETRY_WAIT, RegState.FAILED)
            assert ua.registrations.registration(aor).last_status == 403
            await asyncio.sleep(0.5)
            assert ua.registrations.state(aor) is RegState.RETRY_WAIT  # waiting a minute, not looping
        result = await registrar.wait(10)
        # two REGISTER transactions (the challenge, then the wrong answer), however many UDP retransmissions
        # a slow machine adds to the trace
        cseqs = set(re.findall(r"^\s*CSeq:\s*(\d+)\s+REGISTER", result.messages, re.MULTILINE))
        assert len(cseqs) == 2 and result.count("SIP/2.0 403") >= 1, result


async def test_unreachable_registrar_is_retried_with_backoff(tmp_path: Path) -> None:
    require_binary("sipp")
    port = free_port(socket.SOCK_DGRAM)
    aor = f"sip:gateway@127.0.0.1:{port}"
    async with running_ua(
        registrations=(spec(port, retry_base=0.5, retry_max=1.0),), unregister_timeout=0.2
    ) as ua:
        # Nobody there: the port's ICMP unreachable ends the REGISTER at once as a transport error
        # (RFC 3261 §18.4, §8.1.3.1: a synthetic 503), not after Timer F (64*T1 = 3.2 s here).
        started = asyncio.get_running_loop().time()
        await ua.registrations.wait_for(aor, RegState.RETRY_WAIT, timeout=10)
        assert ua.registrations.registration(aor).last_status == 503
        assert asyncio.get_running_loop().time() - started < 3.0
        async with Sipp(tmp_path, "uas_registrar_auth", port=port, inf=USERS, calls=1):
            await ua.registrations.wait_for(aor, RegState.REGISTERED, timeout=10)


async def test_registrations_for_the_identity_maps_users() -> None:
    config = config_from_mapping(
        {
            "pbx": {"address": "127.0.0.1:5070", "register": True, "register_expiry": 600},
            "users": [
                {"id": "alice", "sip": "1001", "pbx_auth": {"username": "1001", "password": "pw1"}, **HASH},
                {"id": "bob", "sip": "1002", **HASH},
            ],
        },
        {},
    )
    identities = identity_map_from_config(config, InMemoryPresence())
    specs = registrations_for_users(await identities.store.all_users(), config.pbx)
    assert [(str(s.aor), s.username, s.password, str(s.registrar), s.expires) for s in specs] == [
        ("sip:1001@127.0.0.1", "1001", "pw1", "sip:127.0.0.1:5070", 600)
    ]
    settings = UASettings.from_config(config, specs)
    assert settings.outbound is not None and settings.outbound.port == 5070
    assert settings.listen[0] == Listen("udp", "127.0.0.1", 5060)


async def test_refresh_before_expiry_with_407_challenges() -> None:
    """A registrar that grants what is asked (2 s) and challenges every REGISTER with 407: the
    binding is refreshed before it runs out, each REGISTER answered with credentials."""
    registrar = await ChallengingUAS("gateway", "gatewaysecret").start()
    try:
        host, port = registrar.layer.transports[0].local  # type: ignore[union-attr]
        changes: list[RegistrationChanged] = []
        ua = UserAgent(
            UASettings(timers=FAST, registrations=(spec(port, expires=2),), unregister_timeout=1.0),
            on_registration=changes.append,
        )
        await ua.start()
        try:
            aor = f"sip:gateway@{host}:{port}"
            await ua.registrations.wait_for(aor, RegState.REGISTERED)
            await ua.registrations.wait_for(aor, RegState.REFRESHING, timeout=3)
            await ua.registrations.wait_for(aor, RegState.REGISTERED, timeout=3)
        finally:
            await ua.close()
        assert [c.new for c in changes] == [
            RegState.REGISTERING,
            RegState.REGISTERED,
            RegState.REFRESHING,
            RegState.REGISTERED,
            RegState.UNREGISTERING,
            RegState.UNREGISTERED,
        ]
        assert [(method, had) for method, _, had in registrar.seen] == [
            ("REGISTER", False),
            ("REGISTER", True),
        ] * 3
        cseqs = [seq for _, seq, _ in registrar.seen]
        assert cseqs == sorted(set(cseqs))  # one Call-ID, CSeq always up (RFC 3261 §10.2.4)
    finally:
        await registrar.close()
