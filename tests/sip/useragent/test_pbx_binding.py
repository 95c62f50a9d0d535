"""Users' PBX credentials answer challenges from the PBX only (toll-fraud protection): a far end
reached directly, or anyone else, that challenges gets no Authorization to replay."""

from __future__ import annotations

from gateway.sip.useragent.pbx_binding import PbxBinding
from gateway.sip.useragent.ua_events import Answered, Failed
from sipcore import Headers, Response
from tests.sip.ua_helpers import OFFER, ChallengingUAS, expect, identity, running_ua


def _challenge(realm: str) -> Response:
    value = f'Digest realm="{realm}", nonce="n1", algorithm=MD5, qop="auth"'
    return Response(401, "Unauthorized", Headers((("WWW-Authenticate", value),)))


def test_refusal_compares_ip_and_port_and_realm() -> None:
    binding = PbxBinding([("192.0.2.1", 5060), ("2001:db8::1", 5070)], realm="pbx")
    assert binding.refusal(("192.0.2.1", 5060), _challenge("pbx")) is None
    assert binding.refusal(("::ffff:192.0.2.1", 5060), _challenge("pbx")) is None
    assert binding.refusal(("[2001:db8::1]", 5070), _challenge("pbx")) is None
    assert "not the PBX" in (binding.refusal(("192.0.2.1", 5061), _challenge("pbx")) or "")
    assert "not the PBX" in (binding.refusal(("192.0.2.2", 5060), _challenge("pbx")) or "")
    assert "not the PBX" in (binding.refusal(None, _challenge("pbx")) or "")
    assert "realm" in (binding.refusal(("192.0.2.1", 5060), _challenge("evil")) or "")
    assert PbxBinding([("192.0.2.1", 5060)]).refusal(("192.0.2.1", 5060), _challenge("any")) is None
    assert PbxBinding([]).refusal(("192.0.2.1", 5060), _challenge("any")) is not None


async def test_far_end_challenging_a_reinvite_gets_no_credentials() -> None:
    """The call goes straight to a far end that is not the PBX; it accepts the INVITE, then
    challenges the re-INVITE: the user's PBX credentials must not answer it."""
    pbx = await ChallengingUAS("alice", "pw").start()
    far = await ChallengingUAS("alice", "pw", open_first=True).start()
    try:
        async with running_ua(outbound=pbx.hop) as a:
            call = await a.invite(far.uri, OFFER, identity("alice", "pw"), next_hop=far.hop)
            await expect(call, Answered)
            result = await call.hold()
            assert result.status == 401 and not result.ok
            assert (await call.info("application/dtmf-relay", "Signal=1\r\n")).status == 407
            await call.bye()
        assert [seen[2] for seen in far.seen] == [False] * len(far.seen) and len(far.seen) >= 3
        assert pbx.seen == []
    finally:
        await far.close()
        await pbx.close()


async def test_far_end_challenging_the_invite_gets_no_credentials() -> None:
    pbx = await ChallengingUAS("alice", "pw").start()
    far = await ChallengingUAS("alice", "pw").start()
    try:
        async with running_ua(outbound=pbx.hop) as a:
            call = await a.invite(far.uri, OFFER, identity("alice", "pw"), next_hop=far.hop)
            assert (await expect(call, Failed)).status == 401
        assert far.seen == [("INVITE", 1, False)]
    finally:
        await far.close()
        await pbx.close()


async def test_configured_realm_only() -> None:
    pbx = await ChallengingUAS("alice", "pw").start()
    try:
        async with running_ua(outbound=pbx.hop, pbx_realm="other.realm") as a:
            call = await a.invite(pbx.uri, OFFER, identity("alice", "pw"))
            assert (await expect(call, Failed)).status == 401
        async with running_ua(outbound=pbx.hop, pbx_realm=ChallengingUAS.realm) as a:
            call = await a.invite(pbx.uri, OFFER, identity("alice", "pw"))
            await expect(call, Answered)
            await call.bye()
        assert [s[2] for s in pbx.seen] == [False, False, True, False, True]
    finally:
        await pbx.close()
