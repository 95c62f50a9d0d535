"""Busy lamps and voicemail (gateway/runtime/lamps/): the subscriptions the config gives, the config's
errors naming the field, and the lamps told to the owner's sessions only, on change only (an in-memory
session sink stands for a browser)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.config import ConfigError
from gateway.config.loader import config_from_mapping
from gateway.identity import InMemoryPresence, WebUser
from gateway.identity.lookup import identity_map_from_config
from gateway.runtime.lamps import Lamps, lamp_specs
from gateway.signaling.events import Event
from gateway.sip.useragent.subscriptions import Notice
from peers.demo import ALICE_HASH
from sipcore.event_bodies import DialogInfo, DialogSummary, MessageSummary
from sipcore.location.routing import Target

HASH = {"web_secret_hash": ALICE_HASH}


def mapping(alice: dict[str, Any], **pbx: Any) -> dict[str, Any]:
    return {
        "pbx": {"address": "127.0.0.1:5070", "domain": "pbx.example.org", **pbx},
        "users": [
            {
                "id": "alice",
                "sip": "1001",
                "pbx_auth": {"username": "1001", "password": "pw"},
                **HASH,
                **alice,
            },
            {"id": "bob", "sip": "1002", "watch": ["1001"], **HASH},
        ],
    }


async def specs_for(alice: dict[str, Any], **pbx: Any) -> list[tuple[str, str, str, str, str]]:
    config = config_from_mapping(mapping(alice, **pbx), {})
    users = await identity_map_from_config(config, InMemoryPresence()).store.all_users()
    return [
        (s.owner, s.kind, s.target, str(s.config.resource), s.config.event) for s in lamp_specs(config, users)
    ]


async def test_watch_and_voicemail_give_the_subscriptions() -> None:
    got = await specs_for({"watch": ["1002", "sip:2000@other.example.org"]})
    assert got == [
        ("alice", "contact", "1002", "sip:1002@pbx.example.org", "dialog"),
        ("alice", "contact", "2000", "sip:2000@other.example.org", "dialog"),
        ("alice", "voicemail", "1001", "sip:1001@pbx.example.org", "message-summary"),
        ("bob", "contact", "1001", "sip:1001@pbx.example.org", "dialog"),  # bob: no pbx_auth, no mailbox
    ]
    assert [g[1] for g in await specs_for({"voicemail": False})] == ["contact"]
    assert await specs_for({"voicemail": "*97"}) == [
        ("alice", "voicemail", "*97", "sip:*97@pbx.example.org", "message-summary"),
        ("bob", "contact", "1001", "sip:1001@pbx.example.org", "dialog"),
    ]


async def test_a_user_of_a_named_pbx_subscribes_there_as_she_registers() -> None:
    """Several PBXs: her PBX's domain, hop, expiry and realm (its `pickup_prefix` is for the lamps)."""
    raw = mapping({"watch": ["1002"], "tenant": "acme"})
    raw["pbxs"] = {"b": {"address": "127.0.0.2:5080", "domain": "b.example", "realm": "b.test",
                         "subscribe_expiry": 120}}  # fmt: skip
    raw["tenants"] = {"acme": {"pbx": "b"}}
    config = config_from_mapping(raw, {})
    users = await identity_map_from_config(config, InMemoryPresence()).store.all_users()
    hop = Target("UDP", "127.0.0.2", 5080)
    by_owner = {(s.owner, s.kind): s for s in lamp_specs(config, users, {"b": hop})}
    contact, mailbox = by_owner["alice", "contact"], by_owner["alice", "voicemail"]
    assert str(contact.config.resource) == "sip:1002@b.example" and str(mailbox.config.resource) == (
        "sip:1001@b.example"
    )
    assert (contact.hop, contact.realm, contact.config.expires, contact.username) == (
        hop,
        "b.test",
        120,
        "1001",
    )
    assert mailbox.hop == hop and mailbox.realm == "b.test"
    bobs = by_owner["bob", "contact"]  # bob is the default PBX's: its domain, the UA's outbound hop
    assert str(bobs.config.resource) == "sip:1001@pbx.example.org" and bobs.hop is None and bobs.realm is None


@pytest.mark.parametrize(
    ("alice", "pbx", "field"),
    [
        ({"voicemail": "not a mailbox"}, {}, "users[0].voicemail"),
        ({"watch": ["10 02"]}, {}, "users[0].watch[0]"),
        ({}, {"pickup_prefix": "pick"}, "pbx.pickup_prefix"),
        ({}, {"subscribe_expiry": 5}, "pbx.subscribe_expiry"),
    ],
)
def test_bad_values_name_their_field(alice: dict[str, Any], pbx: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        config_from_mapping(mapping(alice, **pbx), {})


class Sink:
    def __init__(self, user: WebUser) -> None:
        self.id = f"s-{user.id}"
        self.user = user
        self.closed = False
        self.events: list[dict[str, object]] = []

    async def send_event(self, event: Event) -> None:
        self.events.append(event.to_json())


async def test_changes_go_to_the_owner_once_and_partial_documents_merge() -> None:
    config = config_from_mapping(mapping({"watch": ["1002"]}), {})
    users = {u.id: u for u in await identity_map_from_config(config, InMemoryPresence()).store.all_users()}
    alice, bob = Sink(users["alice"]), Sink(users["bob"])
    tasks: list[asyncio.Task[None]] = []
    lamps = Lamps(lambda: (alice, bob), lambda coro: tasks.append(asyncio.ensure_future(coro)), "**")
    contact, mailbox = lamp_specs(config, users.values())[:2]

    def dialog(version: int, full: bool, *states: tuple[str, str]) -> Notice:
        dialogs = tuple(DialogSummary(i, s, "recipient") for i, s in states)
        return Notice(contact, "active", DialogInfo("sip:1002@pbx", version, full, dialogs))

    lamps.on_notice(dialog(0, True))
    lamps.on_notice(dialog(1, False, ("a", "early")))
    lamps.on_notice(dialog(2, False, ("b", "confirmed")))  # a second call: busy wins over ringing
    lamps.on_notice(dialog(3, False, ("b", "terminated")))  # back to the ringing one
    lamps.on_notice(dialog(4, False, ("a", "terminated")))
    lamps.on_notice(dialog(5, True))  # the same state again: not told
    lamps.on_notice(Notice(contact, "retry wait"))
    lamps.on_notice(Notice(mailbox, "active", MessageSummary(True, None, 2, 8)))
    await asyncio.gather(*tasks)
    states = [(e["state"], e["pickup"]) for e in alice.events if e["type"] == "contact_state"]
    assert states == [("idle", None), ("ringing", "**1002"), ("busy", None), ("ringing", "**1002"),
                      ("idle", None), ("unknown", None)]  # fmt: skip
    assert alice.events[-1] == {"type": "voicemail", "mailbox": "1001", "waiting": True, "new": 2, "old": 8,
                                "urgent_new": 0, "urgent_old": 0}  # fmt: skip
    assert bob.events == []  # not his lamps
    assert [e.to_json()["type"] for e in lamps.snapshot("alice")] == ["contact_state", "voicemail"]
    assert lamps.snapshot("bob") == ()
