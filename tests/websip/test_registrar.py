"""The SIP WebSocket registrar: bindings per user and flow, expiry, refresh order, wildcard removal."""

from __future__ import annotations

from gateway.websip.flows import identities
from gateway.websip.registrar import Flow, Registrar, identities_of
from sipcore.syntax.message import Request
from sipcore.syntax.parser import parse_message

FLOW = Flow("WS", ("192.0.2.1", 50000))
OTHER = Flow("WS", ("192.0.2.2", 50001))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def register(
    contact: str, *, expires: str | None = "600", cseq: int = 1, call_id: str = "c1", supported: str = ""
) -> Request:
    extra = f"Expires: {expires}\r\n" if expires is not None else ""
    extra += f"Supported: {supported}\r\n" if supported else ""
    text = (
        "REGISTER sip:gw SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
        f"To: <sip:alice@gw>\r\nFrom: <sip:alice@gw>;tag=1\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
        f"Contact: {contact}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def test_bind_list_refresh_expire() -> None:
    clock = Clock()
    registrar = Registrar(clock, min_expires=60, max_expires=3600)
    result = registrar.register(register("<sip:a@x.invalid;transport=ws>;+sip.ice;reg-id=1"), "alice", FLOW)
    assert result.status == 200
    assert result.headers == (("Contact", "<sip:a@x.invalid;transport=ws>;+sip.ice;reg-id=1;expires=600"),)
    assert [b.flow for b in registrar.bindings("alice")] == [FLOW]
    clock.now += 500
    assert registrar.register(register("<sip:a@x.invalid;transport=ws>", cseq=2), "alice", FLOW).status == 200
    clock.now += 500
    assert len(registrar.bindings("alice")) == 1  # refreshed at 600 s from the second REGISTER
    clock.now += 101
    assert registrar.expire() and len(registrar) == 0


def test_expiry_bounds_and_out_of_order() -> None:
    clock = Clock()
    registrar = Registrar(clock, min_expires=60, max_expires=3600)
    result = registrar.register(register("<sip:a@x.invalid>", expires="30"), "alice", FLOW)
    assert result.status == 423 and result.headers == (("Min-Expires", "60"),)
    result = registrar.register(register("<sip:a@x.invalid>;expires=99999", cseq=2), "alice", FLOW)
    assert result.status == 200 and result.headers[0][1].endswith(";expires=3600")
    # an older CSeq of the same Call-ID does not remove it
    assert registrar.register(register("<sip:a@x.invalid>", expires="0", cseq=1), "alice", FLOW).status == 200
    assert len(registrar) == 1


def test_wildcard_and_flow_close() -> None:
    clock = Clock()
    registrar = Registrar(clock)
    registrar.register(register("<sip:a@x.invalid>"), "alice", FLOW)
    registrar.register(register("<sip:b@y.invalid>", call_id="c2"), "alice", OTHER)
    assert len(registrar) == 2
    assert [str(b.contact.uri) for b in registrar.flow_closed(OTHER)] == ["sip:b@y.invalid"]
    assert registrar.register(register("*", expires="600", cseq=5), "alice", FLOW).status == 400
    assert registrar.register(register("*", expires="0", cseq=5), "alice", FLOW).status == 200
    assert len(registrar) == 0


INSTANCE = '+sip.instance="<urn:uuid:0d5b6e1c-2c39-4a5f-9d3e-0a9c4b6f2e11>"'


def outbound(
    contact: str, *, reg_id: int = 1, expires: str = "600", cseq: int = 1, call_id: str = "c1"
) -> Request:
    contact = f"{contact};reg-id={reg_id};{INSTANCE}"
    return register(contact, expires=expires, cseq=cseq, call_id=call_id, supported="path, gruu, outbound")


def test_outbound_reconnect_replaces_the_binding_on_the_old_flow() -> None:
    """RFC 5626 §6: same instance and reg-id from a new flow (a reconnected browser) replaces the old
    binding whatever its Call-ID; the 200 says Require: outbound and keeps the Contact's parameters
    (JsSIP finds its binding by +sip.instance and reg-id)."""
    registrar = Registrar(Clock())
    first = registrar.register(outbound("<sip:a@x.invalid;transport=ws>"), "alice", FLOW)
    assert first.status == 200 and first.headers[0] == ("Require", "outbound")
    assert first.headers[1] == ("Flow-Timer", "120")  # keep-alives at least this often (RFC 5626 §5.4)
    assert INSTANCE in first.headers[2][1] and "reg-id=1" in first.headers[2][1]
    again = registrar.register(outbound("<sip:b@y.invalid;transport=ws>", call_id="c9"), "alice", OTHER)
    assert again.status == 200 and len(again.headers) == 3  # Require, Flow-Timer + the one binding
    assert [b.flow for b in registrar.bindings("alice")] == [OTHER]
    assert registrar.on_flow(FLOW) == []


def test_outbound_needs_the_option_tag_and_an_instance() -> None:
    registrar = Registrar(Clock())
    plain = registrar.register(register(f"<sip:a@x.invalid>;reg-id=1;{INSTANCE}"), "alice", FLOW)
    assert plain.status == 200 and ("Require", "outbound") not in plain.headers  # no Supported: outbound
    assert "Flow-Timer" not in dict(plain.headers)
    no_instance = registrar.register(
        register("<sip:b@x.invalid>;reg-id=1", call_id="c2", supported="outbound"), "alice", OTHER
    )
    assert ("Require", "outbound") not in no_instance.headers
    assert len(registrar) == 2  # both kept as ordinary bindings, by Contact URI


def test_outbound_two_reg_ids_in_one_register_is_400_and_requests_take_the_newest_flow() -> None:
    clock = Clock()
    registrar = Registrar(clock)
    both = register(
        f"<sip:a@x.invalid>;reg-id=1;{INSTANCE}, <sip:a@x.invalid>;reg-id=2;{INSTANCE}", supported="outbound"
    )
    assert registrar.register(both, "alice", FLOW).status == 400
    registrar.register(outbound("<sip:a@x.invalid>", reg_id=1), "alice", FLOW)
    clock.now += 1
    registrar.register(outbound("<sip:a@x.invalid>", reg_id=2, call_id="c2"), "alice", OTHER)
    bindings = registrar.bindings("alice")
    assert len(bindings) == 2  # two flows of one instance (RFC 5626 §4.2): one is used
    assert [b.flow for b in bindings if registrar.reachable(b)] == [OTHER]
    registrar.flow_closed(OTHER)
    assert [b.flow for b in registrar.bindings("alice") if registrar.reachable(b)] == [FLOW]
    removed = registrar.register(outbound("<sip:a@x.invalid>", reg_id=1, expires="0", cseq=2), "alice", FLOW)
    assert removed.status == 200 and len(registrar) == 0


def test_bindings_past_the_cap_are_refused_403_and_nothing_changes() -> None:
    """Issue 32, item 6: at most max_bindings per user; a REGISTER that would leave more (and more than
    before) binds nothing and gets 403 with a Warning; refreshes and removals always pass; another user
    has a cap of its own."""
    registrar = Registrar(Clock(), max_bindings=2)
    for n in range(2):
        assert registrar.register(register(f"<sip:t{n}@x.invalid>", cseq=n + 1), "alice", FLOW).status == 200
    refused = registrar.register(register("<sip:t2@x.invalid>", cseq=3), "alice", FLOW)
    assert (refused.status, refused.reason) == (403, "Too Many Bindings")
    assert refused.headers == (
        (
            "Warning",
            '399 sip-webrtc-gateway "at most 2 bindings per user (sip.websocket.max_bindings_per_user)"',
        ),
    )
    three = "<sip:a@x.invalid>, <sip:b@x.invalid>, <sip:c@x.invalid>"
    assert registrar.register(register(three), "bob", OTHER).status == 403
    assert len(registrar) == 2 and registrar.bindings("bob") == []
    # swapping one for another keeps the count: accepted
    swap = register("<sip:t0@x.invalid>;expires=0, <sip:t2@x.invalid>", cseq=4)
    result = registrar.register(swap, "alice", FLOW)
    assert result.status == 200 and [h[1].split(";")[0] for h in result.headers] == [
        "<sip:t1@x.invalid>",
        "<sip:t2@x.invalid>",
    ]
    registrar.max_bindings = 1  # lowered (a reload): refreshing the two is still accepted
    assert registrar.register(register("<sip:t1@x.invalid>", cseq=5), "alice", FLOW).status == 200


def test_a_new_flows_first_register_names_the_browser_as_its_bindings_do() -> None:
    """`identities_of` reads a REGISTER not yet authenticated (a flow's first message, which a cluster
    relays to the instance holding that browser's calls) and names what its bindings would be known
    by (`flows.identities`): the outbound instance, else the Contact URI."""
    for request, expected in (
        (
            outbound("<sip:a@x.invalid;transport=ws>"),
            "instance <urn:uuid:0d5b6e1c-2c39-4a5f-9d3e-0a9c4b6f2e11>",
        ),
        (register("<sip:b@y.invalid;transport=ws>"), "contact sip:b@y.invalid;transport=ws"),
        (register(f"<sip:c@y.invalid>;reg-id=1;{INSTANCE}"), "contact sip:c@y.invalid"),  # no outbound tag
    ):
        registrar = Registrar(Clock())
        assert registrar.register(request, "alice", FLOW).status == 200
        assert identities_of(request.serialize()) == identities(registrar.on_flow(FLOW)) == {expected}


def test_identities_of_anything_but_a_register_is_empty() -> None:
    invite = register("<sip:a@x.invalid>").serialize().replace(b"REGISTER", b"INVITE")
    assert identities_of(invite) == frozenset()
    assert identities_of(b"SIP/2.0 200 OK\r\n\r\n") == frozenset()
    assert identities_of(b"\x00\xffnot SIP at all") == frozenset()
    assert identities_of(b"") == frozenset()
