"""The signature of requests forwarded between cluster instances (gateway/signaling/cluster_http.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gateway.signaling.cluster_http import MAX_SKEW, RELAYED, RelayMark, sign, verify

SECRET = b"unit-cluster-secret-0123"


def test_a_signature_names_its_instance_and_binds_method_path_and_time() -> None:
    header = sign(SECRET, "gw1", "POST", "/webrtc/close", 1_700_000_000)
    assert verify(SECRET, header, "POST", "/webrtc/close", 1_700_000_005) == "gw1"
    assert verify(SECRET, header, "GET", "/webrtc/close", 1_700_000_005) is None
    assert verify(SECRET, header, "POST", "/webrtc/offer", 1_700_000_005) is None
    assert verify(b"another-secret-of-16+", header, "POST", "/webrtc/close", 1_700_000_005) is None
    assert verify(SECRET, header, "POST", "/webrtc/close", 1_700_000_000 + MAX_SKEW + 1) is None
    forged = header.replace("gw1", "gw2", 1)
    assert verify(SECRET, forged, "POST", "/webrtc/close", 1_700_000_005) is None


def test_malformed_headers_are_refused_without_an_error() -> None:
    for header in ("", "gw1", "gw1;x;y", "gw1;1700000000", ";;", "gw1;99999999999999;ab", "a;1;b;c"):
        assert verify(SECRET, header, "GET", "/", 1_700_000_000) is None


def test_a_signature_binds_the_asserted_user_and_the_body() -> None:
    """A forward asserts its user (no credentials of hers travel): the same signature with another user
    or another body fails."""
    header = sign(SECRET, "gw1", "POST", "/webrtc/close", 1_700_000_000, "alice", b'{"session_id": "s1"}')
    now = 1_700_000_001
    assert verify(SECRET, header, "POST", "/webrtc/close", now, "alice", b'{"session_id": "s1"}') == "gw1"
    assert verify(SECRET, header, "POST", "/webrtc/close", now, "bob", b'{"session_id": "s1"}') is None
    assert verify(SECRET, header, "POST", "/webrtc/close", now, "alice", b'{"session_id": "s2"}') is None
    assert verify(SECRET, header, "POST", "/webrtc/close", now) is None  # no user: not the same request
    # fields cannot be shifted into one another (length-prefixed)
    shifted = sign(SECRET, "gw1", "POST", "/webrtc/close", 1_700_000_000, "alic", b"")
    assert verify(SECRET, shifted, "POST", "/webrtc/close", now, "alice", b"") is None


def upgrade(path: str, headers: dict[str, str]) -> Any:
    """What RelayMark reads of an upgrade request."""
    return SimpleNamespace(headers=headers, method="GET", path=path, remote="192.0.2.9")


def test_a_relay_mark_binds_the_path_the_secret_and_the_time_and_is_no_forward() -> None:
    """The mark one instance puts on a socket it relays (issue 34): valid for its path and under the
    cluster's secret, for MAX_SKEW seconds; it never passes for a forwarded request's signature (of no
    user, or of any user)."""
    now = 1_700_000_000.0
    mark = RelayMark("gw1", SECRET, clock=lambda: now)
    stamp = mark.stamp("/sip")
    assert mark.relayed(upgrade("/sip", stamp))
    assert not mark.relayed(upgrade("/ws", stamp))  # another path
    assert not RelayMark("gw2", b"another-secret-of-16+", clock=lambda: now).relayed(upgrade("/sip", stamp))
    later = RelayMark("gw2", SECRET, clock=lambda: now + MAX_SKEW + 1)
    assert not later.relayed(upgrade("/sip", stamp))  # stale: a replay after 30 s
    assert not mark.relayed(upgrade("/sip", {}))  # no mark: an ordinary upgrade, not counted as bad
    assert not mark.relayed(upgrade("/sip", {RELAYED: "gw1;1700000000;00"}))
    assert mark.refused == 2  # the other path and the malformed one (the others: their own checkers)
    again = RelayMark("gw1", SECRET, clock=lambda: now + 5)
    assert again.relayed(upgrade("/sip", stamp))
    assert not again.relayed(upgrade("/sip", stamp))  # taken once: a replay within MAX_SKEW is refused
    assert again.refused == 1
    assert again.relayed(upgrade("/sip", again.stamp("/sip")))  # each relay's mark is a new one
    signed, _, nonce = stamp[RELAYED].rpartition(";")
    assert not again.relayed(upgrade("/sip", {RELAYED: f"{signed};{nonce}x"}))  # the nonce is signed
    assert not again.relayed(upgrade("/sip", {RELAYED: signed}))  # no nonce
    # a mark names the instance it is for: one read on the way to B is none at C
    to_b = RelayMark("gw1", SECRET, clock=lambda: now).stamp("/sip", "http://b:8080/")
    at_c = RelayMark("gw3", SECRET, clock=lambda: now, url="http://c:8080")
    assert not at_c.relayed(upgrade("/sip", to_b))
    assert RelayMark("gw2", SECRET, clock=lambda: now, url="http://b:8080").relayed(upgrade("/sip", to_b))
    for user in ("", "relayed socket", "alice"):  # not a forward's signature, of any user
        assert verify(SECRET, stamp[RELAYED].rpartition(";")[0], "GET", "/sip", now, user) is None
        forward = sign(SECRET, "gw1", "GET", "/sip", now, user)  # nor a forward's a mark
        assert verify(SECRET, forward, "GET", "/sip", now, user) == "gw1"
        assert not mark.relayed(upgrade("/sip", {RELAYED: forward}))


def _node(instance_id: str, taker: object = None) -> Any:
    """A ClusterHttp of instance `instance_id` with nothing behind it but `taker` (its `take_over`)."""
    from gateway.signaling.cluster_http import ClusterHttp

    async def nothing() -> None:
        return None

    async def no_status() -> dict[str, object]:
        return {}

    async def no_instance(_instance_id: str) -> None:
        return None

    class NoOwners:
        async def owner(self, session_id: str) -> str | None:
            return None

    return ClusterHttp(instance_id, SECRET, NoOwners(), frozenset, no_instance, nothing, no_status, taker)  # type: ignore[arg-type]


async def test_a_draining_instance_hands_its_calls_over_signed() -> None:
    """`POST /cluster/takeover` (issue 34 item 4) takes only a request signed by the instance it names;
    `hand_over` signs it and reads back the calls taken; an unreachable instance takes none."""
    import json

    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from gateway.signaling.cluster_http import TAKEOVER

    asked: list[tuple[str, dict[str, str]]] = []

    async def take_over(instance: str, handovers: dict[str, str]) -> list[str]:
        asked.append((instance, handovers))
        return [call_id for call_id in handovers if call_id != "c2"]

    app = web.Application()
    survivor = _node("gw2", take_over)
    survivor.install(app)
    draining = _node("gw1")
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        base = str(server.make_url("")).rstrip("/")
        body = json.dumps({"instance": "gw1", "handovers": {"c1": "{}"}}).encode()
        async with http.post(base + TAKEOVER, data=body) as reply:
            assert reply.status == 403  # unsigned
        async with http.post(
            base + TAKEOVER, data=body, headers={"Authorization": f"Bearer {SECRET.decode()}"}
        ) as reply:
            assert reply.status == 403  # a bearer (an operator's drain) cannot hand calls over
        signed = sign(SECRET, "gw3", "POST", TAKEOVER, survivor.clock(), "", body)
        async with http.post(base + TAKEOVER, data=body, headers={"X-Gateway-Forwarded": signed}) as reply:
            assert reply.status == 400  # signed by gw3 for gw1's calls
        assert asked == []
        assert await draining.hand_over(base, {"c1": '{"a": 1}', "c2": '{"b": 2}'}) == ["c1"]
        assert asked == [("gw1", {"c1": '{"a": 1}', "c2": '{"b": 2}'})]
        assert await draining.hand_over("http://127.0.0.1:9", {"c1": "{}"}) == []  # nobody there
        await draining._close(app)


async def test_a_taker_tells_the_drained_instance_its_calls_move_signed() -> None:
    """`POST /cluster/moved` (issue 65 item 4, make before break): the instance that took a drained one's
    calls tells it, signed, that their SIP parties move now, and it lets go of their media; an unsigned
    request, one naming another instance and a malformed one are refused; an instance that is not there
    is not waited on."""
    import json

    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from gateway.signaling.cluster_http import MOVED

    released: list[list[str]] = []
    app = web.Application()
    drained = _node("gw1")
    drained.moved = released.append
    drained.install(app)
    taker = _node("gw2")
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        base = str(server.make_url("")).rstrip("/")
        body = json.dumps({"instance": "gw2", "calls": ["c1"]}).encode()
        async with http.post(base + MOVED, data=body) as reply:
            assert reply.status == 403  # unsigned
        signed = sign(SECRET, "gw3", "POST", MOVED, taker.clock(), "", body)
        async with http.post(base + MOVED, data=body, headers={"X-Gateway-Forwarded": signed}) as reply:
            assert reply.status == 400  # signed by gw3 for gw2's
        bad = json.dumps({"instance": "gw2", "calls": "c1"}).encode()
        signed = sign(SECRET, "gw2", "POST", MOVED, taker.clock(), "", bad)
        async with http.post(base + MOVED, data=bad, headers={"X-Gateway-Forwarded": signed}) as reply:
            assert reply.status == 400
        assert released == []
        assert await taker.tell_moved(base, ["c1", "c2"]) is True
        assert released == [["c1", "c2"]]
        assert await taker.tell_moved("http://127.0.0.1:9", ["c1"]) is False  # nobody there
        await taker._close(app)
