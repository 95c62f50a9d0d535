"""gateway.calls.setup.pbx_route: a web user's call with several PBXs (issue 37 item 5): the INVITE
command names the PBX, its Request-URI is rewritten, the From presents the caller ID, the credentials
are the user's at her own PBX and the trunk's elsewhere, and the choice survives to_dict/from_dict."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.calls import (
    CallSettings,
    MediaSipOfferReady,
    NotifyError,
    SipAccepted,
    SipInvite,
    SipRefer,
    WebTransfer,
)
from gateway.calls.machine import CallMachine
from gateway.config.loader import config_from_mapping
from gateway.identity.store import web_users_from_config
from tests.calls import flows as f

TOKEN = "a-token-of-sixteen-or-more"


def settings(**extra: Any) -> tuple[CallSettings, dict[str, Any]]:
    cfg = config_from_mapping(
        {
            "web_auth": {"mode": "token"},
            "sip": {"trusted_sources": ["127.0.0.2"]},
            "pbx": {"address": "127.0.0.1:5070", "domain": "a.example"},
            "pbxs": {
                "b": {
                    "address": "127.0.0.2:5080",
                    "domain": "b.example",
                    "auth": {"username": "trunk-b", "password": "trunk-secret"},
                    "rewrite": [{"match": "0(\\d+)", "replace": "+44\\1"}],
                }
            },
            "tenants": {"acme": {"pbx": "b"}},
            "routes": [
                {"match": "9.", "pbx": "b", "rewrite": [{"strip": 1}], "caller_id": {"display": "ACME Sales"}},
                {"match": "6.", "pbx": "b", "caller_id": {"user": "+442000", "privacy": True}},
            ],
            "users": [
                {"id": "ann", "sip": "1001", "web_token": TOKEN, "allow_outbound": ["."],
                 "display_name": "Ann", "pbx_auth": {"username": "1001", "password": "ann-pw"}},
                {"id": "bo", "sip": "1001", "tenant": "acme", "web_token": TOKEN, "allow_outbound": ["1xxx"],
                 "pbx_auth": {"username": "1001b", "password": "bo-pw"}},
            ],
            **extra,
        },
        {},
    )  # fmt: skip
    users = {user.id: user for user in web_users_from_config(cfg)}
    return CallSettings.from_config(cfg), users


def invite_for(destination: str, user_id: str) -> tuple[SipInvite, CallMachine]:
    call_settings, users = settings()
    call = f.machine(call_settings)
    call.handle(f.dial(destination, user=users[user_id]))
    [invite] = call.handle(MediaSipOfferReady(f.GW_SIP_OFFER))
    assert isinstance(invite, SipInvite)
    return invite, call


def test_each_tenant_reaches_its_own_pbx_with_its_own_credentials() -> None:
    a, _ = invite_for("1001", "ann")
    assert (a.pbx, a.target) == ("default", "sip:1001@a.example")
    assert a.identity.credentials is not None and a.identity.credentials.username == "1001"
    assert str(a.identity.aor) == "sip:1001@a.example"
    b, _ = invite_for("1001", "bo")
    assert (b.pbx, b.target) == ("b", "sip:1001@b.example")
    assert b.identity.credentials is not None and b.identity.credentials.username == "1001b"
    assert ("P-Asserted-Identity", "<sip:1001@b.example>") not in a.headers  # `default` is not trusted


def test_a_prefix_route_strips_rewrites_and_presents_the_caller_id() -> None:
    invite, call = invite_for("9 020 1234-5678", "ann")
    assert (invite.pbx, invite.target) == ("b", "sip:+442012345678@b.example")
    # b is not ann's PBX: the trunk's credentials, never hers; the From in b's domain, the route's name
    assert invite.identity.credentials is not None and invite.identity.credentials.username == "trunk-b"
    assert (str(invite.identity.aor), invite.identity.display_name) == ("sip:1001@b.example", "ACME Sales")
    # b's address is among sip.trusted_sources: P-Asserted-Identity goes there (RFC 3325)
    assert ("P-Asserted-Identity", '"ACME Sales" <sip:1001@b.example>') in invite.headers
    # the choice is part of the call's record (replicated calls, gateway/calls/records.py)
    record = call.to_dict()
    assert record["setup"]["pbx"] == "b" and record["setup"]["caller_id"]["display"] == "ACME Sales"


def test_privacy_sends_an_anonymous_from_and_asserts_the_number() -> None:
    invite, _ = invite_for("6123", "ann")
    assert str(invite.identity.aor) == "sip:anonymous@anonymous.invalid"
    assert ("Privacy", "id") in invite.headers
    assert ("P-Asserted-Identity", '"Ann" <sip:+442000@b.example>') in invite.headers


def test_allow_outbound_is_checked_on_what_was_dialled() -> None:
    call_settings, users = settings()
    call = f.machine(call_settings)
    out = call.handle(f.dial("9020", user=users["bo"]))  # bo may call 1xxx only
    assert any(isinstance(c, NotifyError) and c.code == "destination_not_allowed" for c in out)


def test_one_pbx_keeps_the_old_invite() -> None:
    call = f.machine(dataclasses.replace(f.SETTINGS))
    call.handle(f.dial("1002"))
    [invite] = call.handle(MediaSipOfferReady(f.GW_SIP_OFFER))
    assert isinstance(invite, SipInvite) and invite.pbx is None and invite.target == f"sip:1002@{f.DOMAIN}"
    assert invite.identity.aor == f.ALICE.aor


def test_a_blind_transfer_is_dialled_at_the_calls_pbx() -> None:
    _, call = invite_for("1001", "bo")  # bo's call went to his tenant's PBX b
    call.handle(SipAccepted(f.SIP_ANSWER))
    _, users = settings()
    out = call.handle(WebTransfer("s1", users["bo"], "1002"))
    assert SipRefer(call.call_id, target="sip:1002@b.example") in out


def test_pbx_alone_with_rewrite_and_caller_id() -> None:
    cfg = config_from_mapping(
        {
            "pbx": {
                "address": "127.0.0.1:5070",
                "domain": "a.example",
                "rewrite": [{"match": "0(\\d+)", "replace": "+49\\1"}],
                "caller_id": {"display": "Front Desk"},
            }
        },
        {},
    )
    call = f.machine(CallSettings.from_config(cfg))
    call.handle(f.dial("030 1234"))
    [invite] = call.handle(MediaSipOfferReady(f.GW_SIP_OFFER))
    assert isinstance(invite, SipInvite)
    assert (invite.pbx, invite.target, invite.identity.display_name) == (
        "default",
        "sip:+49301234@a.example",
        "Front Desk",
    )


def test_a_user_naming_an_unknown_pbx_is_refused_not_crashed() -> None:
    """Users are reloaded on SIGHUP, `pbxs:` only at a restart: a user moved to a new PBX is refused."""
    call_settings, users = settings()
    call = f.machine(call_settings)
    out = call.handle(f.dial("1001", user=dataclasses.replace(users["ann"], pbx="new")))
    [error] = [c for c in out if isinstance(c, NotifyError)]
    assert error.code == "bad_destination" and "no PBX named 'new'" in error.message
