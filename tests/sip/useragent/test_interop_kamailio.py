"""The user agent behind a real Kamailio registrar/proxy with digest auth: the gateway registers
as user `gateway` (and unregisters on close), a pjsua2 desk phone registered there reaches the
gateway through Kamailio by its address of record, and the gateway reaches the phone by its AOR;
in-dialog requests follow Kamailio's Record-Route both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sip.useragent.registrar_client import RegistrationSpec
from gateway.sip.useragent.ua_events import Answered, Bye, Confirmed, InfoReceived
from peers.kamailio import Kamailio, running_kamailio
from peers.phone import DeskPhone
from sipcore.registration import RegState
from sipcore.syntax.uri import SipURI
from tests.sip.ua_helpers import LOOPBACK, OFFER, answer_next, expect, identity, running_ua


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    """A running Kamailio with the test users (fails under CI=true when it is not installed)."""
    with running_kamailio(tmp_path) as server:
        yield server


def gateway_registration(kamailio: Kamailio) -> RegistrationSpec:
    aor = SipURI(kamailio.host, "gateway", port=kamailio.port)
    return RegistrationSpec(aor, "gateway", kamailio.users["gateway"], expires=300)


async def test_phone_calls_registered_gateway_through_kamailio(kamailio: Kamailio, tmp_path: Path) -> None:
    aor = kamailio.aor("gateway")
    async with running_ua(trusted_sources=LOOPBACK, registrations=(gateway_registration(kamailio),)) as ua:
        assert (
            await ua.registrations.wait_for(aor, RegState.REGISTERED, RegState.FAILED) is RegState.REGISTERED
        )
        async with DeskPhone(
            tmp_path, user="2000", register=kamailio.registrar, password=kamailio.users["2000"]
        ) as phone:
            await phone.wait_for("registered", code=200)
            number = await phone.call(aor)
            call = await answer_next(ua)
            assert call.request.headers.get_all("Record-Route")  # it came through Kamailio
            await expect(call, Confirmed, timeout=10)
            await phone.wait_for("state", call=number, state="CONFIRMED")
            await phone.send("info", content_type="application/dtmf-relay", body="Signal=9\r\nDuration=100")
            assert b"Signal=9" in (await expect(call, InfoReceived)).body
            await call.bye()  # along the route set, through Kamailio
            assert (await expect(call, Bye)).status == 200
            await phone.wait_for("state", call=number, state="DISCONNECTED", code=200)
    assert ua.registration_states() == {aor: "unregistered"}  # answered 200 to expires=0
    log = kamailio.log()
    assert "REGISTER sip:" in log and "INVITE sip:gateway@" in log and "BYE sip:" in log


async def test_gateway_calls_registered_phone_through_kamailio(kamailio: Kamailio, tmp_path: Path) -> None:
    async with (
        running_ua(trusted_sources=LOOPBACK) as ua,
        DeskPhone(
            tmp_path, user="2001", register=kamailio.registrar, password=kamailio.users["2001"]
        ) as phone,
    ):
        await phone.wait_for("registered", code=200)
        call = await ua.invite(kamailio.aor("2001"), OFFER, identity("gateway", host=kamailio.host))
        assert "m=audio" in (await expect(call, Answered, timeout=10)).sdp
        await phone.wait_for("state", state="CONFIRMED")
        await phone.hangup()  # the BYE follows the Record-Route back through Kamailio
        assert (await expect(call, Bye, timeout=10)).by_remote
