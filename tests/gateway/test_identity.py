"""gateway.identity: the identity map built from config, lookups both ways, outbound policy, login."""

from __future__ import annotations

import asyncio
import logging
import textwrap
import threading
from pathlib import Path

import pytest

from gateway.config import Config, Secret, SecretSource
from gateway.config.loader import load_config, load_config_text
from gateway.identity import (
    DialPattern,
    Found,
    InMemoryIdentityStore,
    InMemoryPresence,
    LoginBusy,
    NoSuchUser,
    NotOnline,
    PbxCredentials,
    SipAddress,
    WebAuthMode,
    WebUser,
    hash_secret,
    may_call,
    web_users_from_config,
)
from gateway.identity.address import dialed_sip_uri
from gateway.identity.lookup import IdentityMap, identity_map_from_config
from gateway.identity.passwords import HashAlgorithm, PasswordHash

ROOT = Path(__file__).resolve().parents[2]
FAST = (HashAlgorithm.PBKDF2_SHA256, (1000,))


def fast_hash(secret: str) -> str:
    return str(hash_secret(secret, *FAST))


def config_with_users(
    users: str, extra: str = "pbx: {address: pbx.example.org:5060, domain: example.org}"
) -> Config:
    text = textwrap.dedent(extra) + "\nusers:\n" + textwrap.indent(textwrap.dedent(users), "  ")
    return load_config_text(text, {"ALICE_PBX_PASSWORD": "alice-pw"})


USERS = f"""
- id: alice
  display_name: Alice
  sip: "1001"
  pbx_auth: {{username: "1001", password: {{env: ALICE_PBX_PASSWORD}}}}
  aliases: [support, "+4930123456", "sip:sales@example.net"]
  inbound_patterns: ["10xx"]
  allow_outbound: ["2xxx", "0[1-9]x.", "sip:partner@partner.example.net"]
  web_secret_hash: "{fast_hash("alice-secret")}"
- id: bob
  sip: "sip:1002@other.example.org"
  inbound_patterns: ["1[0-2]xx", "3xxx"]
  web_secret_hash: "{fast_hash("bob-secret")}"
- id: carol
  sip: "1003"
  aliases: [support]
  inbound_patterns: ["3xxx"]
  allow_outbound: ["."]
  web_secret_hash: "{fast_hash("carol-secret")}"
- id: dave
  sip: "1004"
  inbound_patterns: ["."]
  web_secret_hash: "{fast_hash("dave-secret")}"
"""


@pytest.fixture
def config() -> Config:
    return config_with_users(USERS)


@pytest.fixture
def presence() -> InMemoryPresence:
    return InMemoryPresence()


@pytest.fixture
def identities(config: Config, presence: InMemoryPresence) -> IdentityMap:
    return identity_map_from_config(config, presence)


def ids(result: Found | NotOnline) -> list[str]:
    return [user.id for user in result.users]


# --- building the map from config -------------------------------------------------------------------


def test_users_from_config(config: Config) -> None:
    alice, bob, _carol, _dave = web_users_from_config(config)
    assert alice.aor == SipAddress("sip", "1001", "example.org")  # bare extension + pbx.domain
    assert bob.aor == SipAddress("sip", "1002", "other.example.org")
    assert alice.display_name == "Alice" and bob.display_name == "bob"
    assert alice.aliases == ("support", "+4930123456", "sales@example.net")
    assert alice.credentials is not None and alice.credentials.password.reveal() == "alice-pw"
    assert "alice-pw" not in repr(alice)
    assert bob.credentials is None


def test_domain_defaults_to_pbx_host() -> None:
    config = config_with_users(
        f'- {{id: a, sip: "7", web_secret_hash: "{fast_hash("x")}"}}',
        "pbx: {address: 'PBX.example.org:5070'}",
    )
    assert web_users_from_config(config)[0].aor == SipAddress("sip", "7", "pbx.example.org")


def test_store_rejects_duplicate_ids() -> None:
    user = WebUser("a", "A", SipAddress("sip", "1", "x"))
    with pytest.raises(ValueError, match="duplicate"):
        InMemoryIdentityStore([user, user])


async def test_store_get_and_all(identities: IdentityMap) -> None:
    alice = await identities.store.get("alice")
    assert alice is not None and alice.id == "alice"
    assert await identities.store.get("nobody") is None
    assert [u.id for u in await identities.store.all_users()] == ["alice", "bob", "carol", "dave"]


# --- web user -> SIP --------------------------------------------------------------------------------


async def test_sip_identity(identities: IdentityMap) -> None:
    identity = await identities.sip_identity("alice")
    assert identity is not None
    assert str(identity.aor) == "sip:1001@example.org" and identity.display_name == "Alice"
    assert identity.credentials is not None and identity.credentials.username == "1001"
    assert identity.credentials.password.reveal() == "alice-pw"
    assert await identities.sip_identity("nobody") is None


# --- SIP -> web user --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_uri", "expected"),
    [
        ("sip:1001@192.0.2.1:5060", ["alice"]),  # AOR user part, whatever the host
        ("sip:1001@example.org", ["alice"]),
        ("<sip:1002@other.example.org>", ["bob"]),
        ("sip:+4930123456@gw", ["alice"]),  # bare alias
        ("sip:sales@example.net", ["alice"]),  # URI alias, exact
        ("sip:support@gw", ["alice", "carol"]),  # shared alias rings both
        ("sip:1050@gw", ["alice"]),  # 10xx is more specific than bob's 1[0-2]xx and dave's "."
        ("sip:1150@gw", ["bob"]),  # 1[0-2]xx beats the catch-all
        ("sip:3000@gw", ["bob", "carol"]),  # equally specific patterns: both ring
        ("sip:9999@gw", ["dave"]),  # only the catch-all
        ("sip:1003@gw", ["carol"]),  # exact beats alice's 10xx and dave's "."
    ],
)
async def test_inbound_exact_and_patterns(
    identities: IdentityMap, presence: InMemoryPresence, request_uri: str, expected: list[str]
) -> None:
    for user in ("alice", "bob", "carol", "dave"):
        await presence.add(user, f"ws-{user}")
    result = await identities.resolve_inbound(request_uri)
    assert isinstance(result, Found)
    assert ids(result) == expected
    assert result.sip_status is None
    assert result.sessions == {user: (f"ws-{user}",) for user in expected}


async def test_exact_match_beats_pattern_even_when_offline(
    identities: IdentityMap, presence: InMemoryPresence
) -> None:
    await presence.add("alice", "ws-1")  # alice matches 1003 by pattern, carol exactly
    result = await identities.resolve_inbound("sip:1003@gw")
    assert isinstance(result, NotOnline) and ids(result) == ["carol"]


async def test_no_such_user_is_404(config: Config, presence: InMemoryPresence) -> None:
    # Without dave's catch-all, an unknown number matches nobody.
    users = USERS[: USERS.index("- id: dave")]
    identities = identity_map_from_config(config_with_users(users), presence)
    result = await identities.resolve_inbound("sip:9999@gw", to="sip:8888@gw")
    assert result == NoSuchUser("sip:9999@gw")
    assert result.sip_status == 404


async def test_not_online_is_480(identities: IdentityMap) -> None:
    result = await identities.resolve_inbound("sip:1001@gw")
    assert isinstance(result, NotOnline)
    assert ids(result) == ["alice"] and result.sip_status == 480


async def test_found_lists_only_online_users_and_all_their_sessions(
    identities: IdentityMap, presence: InMemoryPresence
) -> None:
    await presence.add("carol", "tab-1")
    await presence.add("carol", "tab-2")
    result = await identities.resolve_inbound("sip:support@gw")  # alice and carol; alice offline
    assert isinstance(result, Found)
    assert ids(result) == ["carol"] and result.sessions == {"carol": ("tab-1", "tab-2")}
    await presence.remove("carol", "tab-1")
    await presence.remove("carol", "tab-2")
    await presence.remove("carol", "tab-2")  # removing twice is harmless
    assert isinstance(await identities.resolve_inbound("sip:support@gw"), NotOnline)
    assert await presence.online_users() == ()


async def test_to_uri_is_used_when_request_uri_matches_nobody(
    identities: IdentityMap, presence: InMemoryPresence
) -> None:
    await presence.add("bob", "ws")
    result = await identities.resolve_inbound(
        "sip:gw.example.org", to='"Bob" <sip:1002@other.example.org>;tag=9'
    )
    assert isinstance(result, Found) and ids(result) == ["bob"]


async def test_unparseable_target_is_no_such_user(
    identities: IdentityMap, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert await identities.resolve_inbound("tel:+1555") == NoSuchUser("tel:+1555")
    assert "not understood" in caplog.text


# --- outbound policy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "allowed"),
    [
        ("2001", True),
        ("20011", False),
        ("0301234567", True),
        ("00", False),  # 0[1-9]x. needs a non-zero second digit
        ("*97", False),
        ("", False),
        ("   ", False),
        ("sip:2001@example.org", True),  # PBX domain: the user part is checked against patterns
        ("sip:2001@EXAMPLE.org;user=phone", True),
        ("2001@example.org", True),
        ("sip:2001@evil.example.com", False),  # a pattern never allows a foreign domain
        ("sip:partner@partner.example.net", True),  # listed exactly
        ("sip:partner@partner.example.net:5070", False),
        ("sip:other@partner.example.net", False),
        ("sip:@broken", False),
        ("sip:%32001@example.org", True),  # %32 is '2': the same URI as sip:2001@ (RFC 3261 §19.1.4)
        ("sip:%32%30%30%31@Example.ORG", True),
    ],
)
async def test_may_call(identities: IdentityMap, destination: str, allowed: bool) -> None:
    alice = await identities.store.get("alice")
    assert alice is not None
    assert identities.may_call(alice, destination) is allowed


async def test_empty_allow_list_denies_everything(identities: IdentityMap) -> None:
    bob = await identities.store.get("bob")
    assert bob is not None and bob.allow_outbound == ()
    for destination in ("2001", "1001", "sip:1001@example.org", "."):
        assert not identities.may_call(bob, destination)


async def test_catch_all_allows_everything_at_the_pbx(identities: IdentityMap) -> None:
    carol = await identities.store.get("carol")
    assert carol is not None
    assert all(identities.may_call(carol, d) for d in ("1", "+4930123", "*97", "sip:anyone@example.org"))
    assert not identities.may_call(carol, "sip:anyone@elsewhere.example.com")


def test_may_call_function_uses_users_own_domain() -> None:
    user = WebUser("u", "U", SipAddress("sip", "1", "home.example"), allow_outbound=(DialPattern("2x"),))
    assert may_call(user, "sip:21@home.example")
    assert not may_call(user, "sip:21@pbx.example")
    assert may_call(user, "sip:21@pbx.example", pbx_domain="pbx.example")


def test_dialed_sip_uri_tells_a_sip_uri_from_a_number() -> None:
    """The one check the policy, dialing and finding a web user share."""
    assert dialed_sip_uri("sip:21@pbx.example") == "sip:21@pbx.example"
    assert dialed_sip_uri("SIPS:21@pbx.example") == "SIPS:21@pbx.example"
    assert dialed_sip_uri("21@pbx.example") == "sip:21@pbx.example"
    assert dialed_sip_uri("sip:pbx.example") == "sip:pbx.example"  # parse_dialed refuses it later
    assert dialed_sip_uri("030 123-45") is None
    assert dialed_sip_uri("Alice") is None
    assert dialed_sip_uri("tel:+4930123") is None


# --- web login --------------------------------------------------------------------------------------


async def test_verify_web_login(identities: IdentityMap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    user = await identities.verify_web_login("alice", "alice-secret")
    assert user is not None and user.id == "alice"
    assert await identities.verify_web_login("alice", "bob-secret") is None
    assert await identities.verify_web_login("alice", "") is None
    assert await identities.verify_web_login("nobody", "alice-secret") is None
    assert await identities.verify_web_login("nobody", "x") is None  # the dummy hash is reused
    assert "alice-secret" not in caplog.text and "bob-secret" not in caplog.text
    assert "web login failed for user id 'nobody'" in caplog.text
    # with the address it came from (issue 36 item 7: an operator could not tell who was guessing)
    await identities.verify_web_login("alice", "wrong", client="198.51.100.7")
    assert "web login failed for user id 'alice' from 198.51.100.7" in caplog.text


async def test_token_login(presence: InMemoryPresence) -> None:
    text = """
    web_auth: {mode: token}
    pbx: {domain: example.org}
    users:
      - {id: alice, sip: "1001", web_token: {env: ALICE_TOKEN}}
      - {id: bob, sip: "1002", web_token: bob-token}
    """
    config = load_config_text(textwrap.dedent(text), {"ALICE_TOKEN": "tok-a"})
    identities = identity_map_from_config(config, presence)
    assert identities.login_mode is WebAuthMode.TOKEN
    alice = await identities.verify_web_login("alice", "tok-a")
    assert alice is not None and alice.id == "alice"
    assert await identities.verify_web_login("alice", "bob-token") is None
    bob = await identities.verify_web_login("bob", "bob-token")
    assert bob is not None and bob.id == "bob"
    assert await identities.verify_web_login("carol", "tok-a") is None
    assert "tok-a" not in repr(alice)


async def test_secret_mode_ignores_token_and_token_mode_ignores_hash() -> None:
    user = WebUser(
        "u", "U", SipAddress("sip", "1", "x"), web_secret_hash=hash_secret("pw", *FAST), web_token=None
    )
    store = InMemoryIdentityStore([user])
    assert await IdentityMap(store, InMemoryPresence()).verify_web_login("u", "pw") is user
    assert (
        await IdentityMap(store, InMemoryPresence(), login_mode=WebAuthMode.TOKEN).verify_web_login("u", "pw")
        is None
    )


async def test_shipped_demo_users(presence: InMemoryPresence) -> None:
    config = load_config(ROOT / "gateway.yaml", {})
    identities = identity_map_from_config(config, presence)
    alice = await identities.verify_web_login("alice", "alice-demo")
    assert alice is not None and str(alice.aor) == "sip:1001@127.0.0.1"
    assert await identities.verify_web_login("bob", "bob-demo") is not None
    assert identities.may_call(alice, "2000")  # the demo desk phone
    await presence.add("bob", "s1")
    # 1002 is in alice's pattern 10[0-4]x, but bob has it exactly.
    result = await identities.resolve_inbound("sip:1002@127.0.0.1")
    assert isinstance(result, Found) and ids(result) == ["bob"]
    assert isinstance(await identities.resolve_inbound("sip:1040@127.0.0.1"), NotOnline)
    assert isinstance(await identities.resolve_inbound("sip:2000@127.0.0.1"), NoSuchUser)


def test_web_user_validation() -> None:
    with pytest.raises(ValueError):
        WebUser("", "x", SipAddress("sip", "1", "x"))
    with pytest.raises(ValueError):
        WebUser("a", "x", SipAddress("sip", None, "x"))
    creds = PbxCredentials("1001", Secret(SecretSource.INLINE, "", "s3cr3t"))
    assert "s3cr3t" not in repr(creds) and "s3cr3t" not in str(creds)


@pytest.mark.parametrize(
    "destination",
    [
        "sip:2001@example.org;maddr=evil.example",  # the PBX would relay to maddr (RFC 3261 §16.5)
        "2001@example.org;maddr=evil.example",
        "sip:2001@example.org;transport=udp;maddr=192.0.2.1;lr",
        "sip:partner@partner.example.net;maddr=evil.example",  # an exact rule does not bless maddr
        "sip:2001@example.org?Route=%3Csip:evil.example%3E",
        "sip:2001@example.org:6666",  # a pattern allows the PBX domain, not any port of it
        "sip:2001@evil.example@example.org",
        "sip:2001@evil.example<sip:2001@example.org>",
        "<sip:2001@example.org>",
        "sip:2001:secret@example.org",
        "sip:2%zz1@example.org",
        "sip:20%3Bmaddr=evil.example@example.org",  # an escaped ';' is still no dial character
        "sip:2001%40evil.example@example.org",  # an escaped '@'
        "sip:20 01@example.org",  # a space is no URI character
        "sip:2001@example.org?",  # an empty header part
        "tel:2001",  # a tel: URI is neither a dialled number nor a SIP URI
    ],
)
async def test_may_call_refuses_uris_that_reach_past_the_policy(
    identities: IdentityMap, destination: str
) -> None:
    carol = await identities.store.get("carol")  # catch-all pattern: only the URI's form can refuse
    alice = await identities.store.get("alice")
    assert carol is not None and alice is not None
    assert not identities.may_call(alice, destination)
    assert not identities.may_call(carol, destination)


@pytest.mark.parametrize(
    "destination", ["1;maddr=evil.example", "1>", "1%40evil.example", "tel:+1900", "1 2"]
)
async def test_wildcard_pattern_allows_only_numbers_outside_sip_uris(
    identities: IdentityMap, destination: str
) -> None:
    carol = await identities.store.get("carol")
    assert carol is not None
    assert identities.may_call(carol, "1") and identities.may_call(carol, "+49*97#")
    assert not identities.may_call(carol, destination)


async def test_may_call_keeps_harmless_uri_parameters(identities: IdentityMap) -> None:
    alice = await identities.store.get("alice")
    assert alice is not None
    assert identities.may_call(alice, "sip:2001@example.org;user=phone;transport=tcp")
    assert identities.may_call(alice, "sips:2001@example.org")


async def test_login_hashing_runs_off_the_event_loop(
    identities: IdentityMap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scrypt costs ~50 ms: in the loop, a flood of bad logins would stall SIP timers and media."""
    threads: list[int] = []
    real_verify = PasswordHash.verify

    def verify(self: PasswordHash, secret: str) -> bool:
        threads.append(threading.get_ident())
        return real_verify(self, secret)

    monkeypatch.setattr(PasswordHash, "verify", verify)
    assert await identities.verify_web_login("alice", "alice-secret") is not None
    assert await identities.verify_web_login("nobody", "x") is None
    assert len(threads) == 2 and threading.get_ident() not in threads


async def test_too_many_waiting_logins_are_refused(
    identities: IdentityMap, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    monkeypatch.setattr(PasswordHash, "verify", lambda self, secret: release.wait(5) and False)
    identities.verifying.max_waiting = 3
    waiting = [asyncio.create_task(identities.verify_web_login("alice", "x")) for _ in range(3)]
    await asyncio.sleep(0.01)
    with pytest.raises(LoginBusy):
        await identities.verify_web_login("alice", "x")
    release.set()
    assert await asyncio.gather(*waiting) == [None, None, None]
    assert await identities.verify_web_login("alice", "alice-secret") is None  # patched: never matches


async def test_unencodable_secret_is_a_failed_login(identities: IdentityMap) -> None:
    assert await identities.verify_web_login("alice", "\ud800") is None
