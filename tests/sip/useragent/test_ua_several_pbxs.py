"""The SIP user agent's view of several PBXs (issue 37 item 5, gateway/config/pbxs.py): each named PBX's
next hop, keep-alive and credential hops in `UASettings`, and each user's registration at her own PBX
(its REGISTERs sent to that PBX's hop), a trunk's own registration. No network: the settings only."""

from __future__ import annotations

from gateway.config import Config
from gateway.config.loader import config_from_mapping
from gateway.identity.store import web_users_from_config
from gateway.sip import UASettings, registrations_for_users
from gateway.sip.useragent.pbx_binding import PbxBinding
from sipcore import Headers, Response

TOKEN = "a-token-of-sixteen-or-more"


def config() -> Config:
    return config_from_mapping(
        {
            "web_auth": {"mode": "token"},
            "sip": {"listen": [{"host": "127.0.0.1", "port": 5060}]},
            "pbx": {"address": "127.0.0.1:5070", "register": True, "domain": "a.example", "realm": "a"},
            "pbxs": {
                "b": {"address": "127.0.0.2:5080", "transport": "tcp", "register": True, "register_expiry": 600,
                      "realm": "b",
                      "keepalive_interval": 5, "auth": {"username": "trunk", "password": "pw-t"}},
                "c": {"address": "127.0.0.3", "outbound_proxy": "127.0.0.4:5099", "keepalive_interval": 0},
            },
            "tenants": {"acme": {"pbx": "b"}},
            "users": [
                {"id": "ann", "sip": "1001", "web_token": TOKEN, "pbx_auth": {"username": "1001", "password": "pw-a"}},
                {"id": "bo", "sip": "1001", "tenant": "acme", "web_token": TOKEN,
                 "pbx_auth": {"username": "1001", "password": "pw-b"}},
                {"id": "cy", "sip": "1003", "pbx": "c", "web_token": TOKEN,
                 "pbx_auth": {"username": "1003", "password": "pw-c"}},
            ],
        },
        {},
    )  # fmt: skip


def test_each_pbx_has_its_hop_keepalive_and_credential_hops() -> None:
    cfg = config()
    settings = UASettings.from_config(cfg)
    assert settings.outbound is not None and (settings.outbound.host, settings.outbound.port) == (
        "127.0.0.1",
        5070,
    )
    hops = dict(settings.pbx_targets)
    assert (hops["b"].transport, hops["b"].host, hops["b"].port) == ("TCP", "127.0.0.2", 5080)
    assert (hops["c"].host, hops["c"].port) == ("127.0.0.4", 5099)  # its outbound proxy first
    assert [(name, interval) for name, _, interval in settings.keepalives] == [("b", 5.0)]  # c has none
    bound = {(h.host, h.port) for h in settings.credential_hops}
    assert {("127.0.0.1", 5070), ("127.0.0.2", 5080), ("127.0.0.3", 5060), ("127.0.0.4", 5099)} <= bound
    assert set(settings.pbx_hosts) == {"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}


def test_users_register_at_their_own_pbx() -> None:
    cfg = config()
    settings = UASettings.from_config(cfg)
    specs = registrations_for_users(
        web_users_from_config(cfg),
        cfg.pbx,
        cfg.pbxs,
        dict(settings.pbx_targets),
    )
    seen = [(str(s.aor), s.password, str(s.registrar), s.expires, s.hop) for s in specs]
    hop_b = dict(settings.pbx_targets)["b"]
    assert seen == [
        ("sip:1001@a.example", "pw-a", "sip:127.0.0.1:5070", 3600, None),  # `pbx:`: the UA's outbound
        ("sip:1001@127.0.0.2", "pw-b", "sip:127.0.0.2:5080", 600, hop_b),  # acme's PBX, its own hop
        # cy's PBX c does not register; b's trunk registers itself with its own credentials
        ("sip:trunk@127.0.0.2", "pw-t", "sip:127.0.0.2:5080", 600, hop_b),
    ]


async def test_each_pbx_challenges_with_its_own_realm() -> None:
    """pbx_binding: a challenge is answered only from a configured PBX address, and only for that
    PBX's `realm` when it has one (another PBX's realm is refused: its credentials are not these)."""
    settings = UASettings.from_config(config())
    binding = await PbxBinding.resolve(settings.credential_hops, settings.realm_of)
    assert binding.refusal(("127.0.0.1", 5070), _challenge("a")) is None
    assert binding.refusal(("127.0.0.2", 5080), _challenge("b")) is None
    assert "not the PBX's 'a'" in (binding.refusal(("127.0.0.1", 5070), _challenge("b")) or "")
    assert "not the PBX's 'b'" in (binding.refusal(("127.0.0.2", 5080), _challenge("a")) or "")
    assert binding.refusal(("127.0.0.4", 5099), _challenge("any")) is None  # c sets no realm
    assert "not the PBX" in (binding.refusal(("127.0.0.9", 5060), _challenge("a")) or "")


def _challenge(realm: str) -> Response:
    value = f'Digest realm="{realm}", nonce="n1", algorithm=MD5'
    return Response(401, "Unauthorized", Headers((("WWW-Authenticate", value),)))
