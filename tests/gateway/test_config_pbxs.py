"""gateway.config.pbxs: several PBXs, tenants, number rewriting and caller-ID presentation (issue 37
item 5): parsing, errors naming the key path, which PBX a call goes to and what its Request-URI is."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import cli_check
from gateway.config import ConfigError
from gateway.config.loader import config_from_mapping
from gateway.config.pbxs import DEFAULT_PBX, PbxPlan, RewriteRule, rewrite
from gateway.identity import InMemoryPresence
from gateway.identity.lookup import identity_map_from_config
from gateway.identity.store import web_users_from_config
from gateway.signaling.ws.presence_feed import may_see

TOKEN = "a-token-of-sixteen-or-more"


def config(**sections: Any) -> Any:
    base: dict[str, Any] = {
        "web_auth": {"mode": "token"},
        "pbx": {"address": "127.0.0.1:5070", "domain": "a.example"},
        "pbxs": {"b": {"address": "127.0.0.2:5080", "transport": "tcp", "domain": "b.example"}},
        "tenants": {"acme": {"pbx": "b"}, "home": {}},
    }
    base.update(sections)
    return config_from_mapping(base, {})


def user(uid: str, **extra: Any) -> dict[str, Any]:
    return {"id": uid, "sip": "1001", "web_token": TOKEN, "allow_outbound": ["."]} | extra


def test_pbx_alone_is_the_default_entry() -> None:
    cfg = config_from_mapping({"pbx": {"address": "127.0.0.1:5070"}}, {})
    plan = PbxPlan.from_config(cfg)
    assert list(plan.pbxs) == [DEFAULT_PBX] and not plan.several
    assert cfg.pbxs == {} and cfg.tenants == {}


def test_named_pbxs_carry_every_key_of_pbx() -> None:
    cfg = config(
        pbxs={
            "b": {
                "address": "127.0.0.2:5080",
                "transport": "tls",
                "register": True,
                "realm": "b",
                "keepalive_interval": 5,
                "auth": {"username": "trunk", "password": "trunk-secret"},
                "caller_id": {"display": "ACME", "user": "+442000", "privacy": True},
            }
        },
        sip={"listen": [{"host": "127.0.0.1", "port": 5062, "transport": "tls"}],
             "tls": {"certificate": "c.pem", "private_key": "k.pem"}},
    )  # fmt: skip
    b = cfg.pbxs["b"]
    assert b.transport.value == "tls" and b.register and b.realm == "b" and b.keepalive_interval == 5
    assert b.auth is not None and b.auth.username == "trunk" and b.auth.password.reveal() == "trunk-secret"
    assert b.caller_id is not None and b.caller_id.privacy and b.caller_id.user == "+442000"


def test_users_take_their_pbx_then_their_tenants_then_the_default() -> None:
    cfg = config(
        users=[
            user("ann", tenant="acme"),  # acme's PBX: b
            user("bob", tenant="acme", pbx="default"),  # her own wins over the tenant's
            user("cy"),  # no tenant: `pbx:`
            user("di", tenant="home"),  # a tenant without a PBX: `pbx:`
        ]
    )
    users = {u.id: u for u in web_users_from_config(cfg)}
    assert (users["ann"].pbx, str(users["ann"].aor), users["ann"].tenant) == (
        "b",
        "sip:1001@b.example",
        "acme",
    )
    assert (users["bob"].pbx, str(users["bob"].aor)) == ("default", "sip:1001@a.example")
    assert (users["cy"].pbx, users["di"].pbx) == ("default", "default")


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"routes": [{"match": "9.", "pbx": "x"}]}, "routes[0].pbx: no PBX named 'x'"),
        ({"routes": [{"match": "9.", "tenant": "y"}]}, "routes[0].tenant: no tenant named 'y'"),
        ({"users": [user("ann", pbx="z")]}, "users[0].pbx: no PBX named 'z'"),
        ({"users": [user("ann", tenant="t")]}, "users[0].tenant: no tenant named 't'"),
        ({"tenants": {"acme": {"pbx": "q"}}}, "tenants.acme.pbx: no PBX named 'q'"),
        ({"pbxs": {"default": {"address": "127.0.0.3"}}}, "pbxs.default: a PBX name is"),
        ({"pbxs": {"b": {"register": True}}}, "pbxs.b.register: registration needs pbx.address"),
        ({"pbxs": {"b": {"transport": "tls"}}}, "pbxs.b.transport: tls needs a sip.listen address"),
        ({"pbxs": {"b": {"adress": "127.0.0.3"}}}, "pbxs.b.adress: unknown key"),
        ({"pbxs": ["b"]}, "pbxs: expected a mapping of names to entries"),
        ({"pbxs": {"b": {"rewrite": [{"match": "(0"}]}}}, "pbxs.b.rewrite[0].match: bad regular expression"),
        ({"pbxs": {"b": {"rewrite": [{"match": "0", "replace": "\\1"}]}}}, "pbxs.b.rewrite[0].replace"),
        ({"pbxs": {"b": {"rewrite": [{}]}}}, "pbxs.b.rewrite[0]: a rewrite rule needs"),
        ({"pbxs": {"b": {"rewrite": [{"prefix": "+4a"}]}}}, "pbxs.b.rewrite[0].prefix: expected digits"),
        ({"routes": [{"match": "9.", "caller_id": {"display": 'A"B'}}]}, "routes[0].caller_id.display"),
        (
            {"pbxs": {"b": {"transport": "tcp"}}, "users": [user("ann", pbx="b")]},
            "users[0].sip: bare extension '1001' needs pbxs.b.domain or address",
        ),
    ],
)
def test_errors_name_the_key(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(**sections)
    assert any(line.startswith(message) for line in caught.value.errors), caught.value.errors


@pytest.mark.parametrize(
    ("rules", "number", "expected"),
    [
        ([{"match": "0(\\d+)", "replace": "+44\\1"}], "02012345678", "+442012345678"),  # E.164
        ([{"match": "0(\\d+)", "replace": "+44\\1"}], "+33123", "+33123"),  # no match: unchanged
        ([{"strip": 1}, {"match": "0(\\d+)", "replace": "+44\\1"}], "902012", "+442012"),  # in order
        ([{"prefix": "00"}], "123", "00123"),
        ([{"match": "9.*", "strip": 1, "prefix": "0"}], "9123", "0123"),
        ([{"match": "(?P<n>\\d{4})", "replace": "+4930\\g<n>"}], "1234", "+49301234"),
    ],
)
def test_rewrite_rules_apply_in_order(rules: list[dict[str, Any]], number: str, expected: str) -> None:
    cfg = config(routes=[{"match": ".", "rewrite": rules}])
    assert rewrite(cfg.routes[0].rewrite, number) == expected
    assert all(isinstance(rule, RewriteRule) for rule in cfg.routes[0].rewrite)


def test_routes_choose_the_pbx_rewrite_and_caller_id() -> None:
    cfg = config(
        pbxs={
            "b": {
                "address": "127.0.0.2:5080",
                "domain": "b.example",
                "rewrite": [{"match": "0(\\d+)", "replace": "+44\\1"}],
            }
        },
        routes=[
            {"match": "9.", "pbx": "b", "rewrite": [{"strip": 1}], "caller_id": {"display": "ACME"}},
            {"match": "8.", "tenant": "acme", "pbx": "default"},
            {"match": "7xxx", "media": "passthrough"},  # a media route: not a PBX route
        ],
    )
    plan = PbxPlan.from_config(cfg)
    choice = plan.choose("default", None, "sip:902012345678@a.example", "902012345678")
    assert (choice.pbx, choice.target, choice.own) == ("b", "sip:+442012345678@b.example", False)
    assert choice.caller_id is not None and choice.caller_id.display == "ACME"
    # no route: her own PBX, its domain, no rewrite of `pbx:`
    assert plan.choose("default", None, "sip:1001@a.example", "1001").target == "sip:1001@a.example"
    assert plan.choose("b", "acme", "sip:1001@b.example", "1001").target == "sip:1001@b.example"
    # a tenant's route applies to that tenant only
    assert plan.choose("b", "acme", "sip:8123@b.example", "8123").pbx == "default"
    assert plan.choose("b", None, "sip:8123@b.example", "8123").pbx == "b"
    # a dialled SIP URI is not rewritten
    dialled = plan.choose("default", None, "sip:9999@elsewhere.example", None)
    assert (dialled.pbx, dialled.target) == ("b", "sip:9999@elsewhere.example")


def test_source_addresses_name_the_pbx() -> None:
    plan = PbxPlan.from_config(config())
    assert plan.source_pbx("127.0.0.2") == "b"
    assert plan.source_pbx("127.0.0.1") == "default"
    assert plan.source_pbx("127.0.0.9") is None


def test_check_summarises_each_pbx_and_the_tenants() -> None:
    cfg = config(users=[user("ann", tenant="acme"), user("cy")])
    lines = dict(cli_check.summary(cfg))
    assert lines["PBX"] == "udp 127.0.0.1:5070, domain a.example, registration off"
    assert lines["PBX b"] == "tcp 127.0.0.2:5080, domain b.example, registration off; 1 users"
    assert lines["tenants"] == "acme, home"


def test_contacts_and_presence_stay_within_the_tenant() -> None:
    cfg = config(users=[user("ann", tenant="acme"), user("al", tenant="acme", sip="1002"), user("cy")])
    identity = identity_map_from_config(cfg, InMemoryPresence())
    users = {u.id: u for u in web_users_from_config(cfg)}
    assert may_see(users["ann"], users["al"], identity)  # the same tenant
    assert not may_see(users["ann"], users["cy"], identity) and not may_see(
        users["cy"], users["al"], identity
    )


def test_environment_overrides_a_named_pbx() -> None:
    env = {"GATEWAY_PBXS__B__ADDRESS": "127.0.0.9:5099", "GATEWAY_TENANTS__ACME__PBX": "default"}
    cfg = config_from_mapping(
        {"pbxs": {"b": {"address": "127.0.0.2"}}, "tenants": {"acme": {"pbx": "b"}}}, env
    )
    assert str(cfg.pbxs["b"].address) == "127.0.0.9:5099" and cfg.tenants["acme"].pbx == "default"
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"pbxs": {"b": {}}}, {"GATEWAY_PBXS__B__ADRESS": "127.0.0.9"})
    assert caught.value.errors == ("GATEWAY_PBXS__B__ADRESS: unknown setting 'pbxs.b.adress'",)
